"""The summary of one import: counts, coercions and outcomes, rendered in ``en`` or ``zh-CN``.

``data.importer.import_file`` fills an ``ImportSummary``; ``format()`` renders the lines that
``leadscore data import`` prints. Numbers, paths, column names and problem codes are the same
in every locale.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data.folder import CustomAttribute
from data.import_messages import coercion_text, list_text, problem_label, summary_text
from leadscore.i18n import DEFAULT_LOCALE, Locale


@dataclass
class ImportSummary:
    """Counts, coercions and outcomes of one import; ``format()`` renders them for people."""

    source: Path
    table: str
    output: Path
    rejects_path: Path
    file_format: str
    encoding: str | None = None
    delimiter: str | None = None
    read: int = 0
    blank_rows: int = 0
    accepted: int = 0
    rejected: int = 0
    coercions: dict[str, Counter[str]] = field(default_factory=dict)
    placeholders: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    attributes_kept: list[CustomAttribute] = field(default_factory=list)
    attributes_missing: list[str] = field(default_factory=list)
    duplicates_collapsed: int = 0
    duplicates_merged: int = 0
    values_filled: int = 0
    existing_rows: int = 0
    existing_replaced: int = 0
    rows_written: int = 0
    rejects_by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)
    locale: Locale = DEFAULT_LOCALE

    @property
    def coerced(self) -> int:
        """Number of values whose text was changed to parse it (see ``coercions``).

        Values of rows rejected for another reason are counted too.
        """
        return sum(sum(counter.values()) for counter in self.coercions.values())

    @property
    def placeholder_count(self) -> int:
        return sum(self.placeholders.values())

    def format(self, locale: Locale | None = None) -> str:
        """Render the summary as the lines ``leadscore data import`` prints, in ``locale``.

        ``locale`` defaults to the locale of the import. Numbers and paths are never translated.
        """
        chosen = locale or self.locale
        lines = [self._source_line(chosen), *self._count_lines(chosen)]
        lines += self._coercion_lines(chosen)
        lines += self._duplicate_lines(chosen)
        lines += self._column_lines(chosen)
        if self.existing_rows:
            lines.append(
                summary_text("existing", chosen, existing=self.existing_rows, replaced=self.existing_replaced)
            )
        lines.append(summary_text("rows_written", chosen, count=self.rows_written))
        lines += self._reject_lines(chosen)
        return "\n".join(lines)

    def _source_line(self, locale: Locale) -> str:
        details = self.file_format
        if self.encoding:
            details += summary_text("encoding", locale, encoding=self.encoding)
        if self.delimiter:
            details += summary_text("delimiter", locale, delimiter=repr(self.delimiter))
        return summary_text("imported", locale, source=self.source, details=details, output=self.output)

    def _count_lines(self, locale: Locale) -> list[str]:
        read = summary_text("rows_read", locale, count=self.read)
        if self.blank_rows:
            read += summary_text("blank_rows", locale, count=self.blank_rows)
        rejected = summary_text("rejected", locale, count=self.rejected)
        if self.rejected:
            rejected += summary_text("rejects_path", locale, path=self.rejects_path)
        return [read, summary_text("accepted", locale, count=self.accepted), rejected]

    def _coercion_lines(self, locale: Locale) -> list[str]:
        lines = [summary_text("coerced", locale, count=self.coerced)]
        for column, counter in sorted(self.coercions.items()):
            details = [
                summary_text("count_times", locale, label=coercion_text(label, locale), count=count)
                for label, count in counter.most_common()
            ]
            lines.append(
                summary_text("column_detail", locale, column=column, detail=list_text(details, locale))
            )
        lines.append(summary_text("placeholders", locale, count=self.placeholder_count))
        for column, count in sorted(self.placeholders.items()):
            lines.append(summary_text("column_detail", locale, column=column, detail=count))
        return lines

    def _duplicate_lines(self, locale: Locale) -> list[str]:
        lines = [
            summary_text(
                "duplicates",
                locale,
                collapsed=self.duplicates_collapsed,
                merged=self.duplicates_merged,
                filled=self.values_filled,
            )
        ]
        if self.duplicates_merged or self.existing_replaced:
            lines.append(summary_text("merge_policy", locale))
        return lines

    def _column_lines(self, locale: Locale) -> list[str]:
        ignored = list_text(self.ignored_columns, locale) or summary_text("none", locale)
        lines = [summary_text("ignored", locale, columns=ignored)]
        if self.attributes_kept:
            kept_attributes = [
                summary_text(
                    "attribute_post_contact" if attribute.post_contact else "attribute",
                    locale,
                    name=attribute.name,
                    type=attribute.type,
                )
                for attribute in self.attributes_kept
            ]
            lines.append(summary_text("attributes", locale, attributes=list_text(kept_attributes, locale)))
        if self.attributes_missing:
            missing = list_text(self.attributes_missing, locale)
            lines.append(summary_text("attributes_missing", locale, attributes=missing))
        return lines

    def _reject_lines(self, locale: Locale) -> list[str]:
        if not self.rejects_by_reason:
            return []
        lines = [summary_text("rejects_heading", locale)]
        for (column, code), count in self.rejects_by_reason.most_common(15):
            lines.append(
                summary_text(
                    "reject_count",
                    locale,
                    column=column or summary_text("whole_row", locale),
                    problem=problem_label(code, locale),
                    count=count,
                )
            )
        return lines
