"""The facts every report states about its inputs, so that each number can be traced to its source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from data.folder import CanonicalTables
from data.schema import TABLE_NAMES
from leadscore import __version__
from leadscore.i18n import Locale
from serving.reports.formatting import format_count, format_time
from serving.reports.messages import text


@dataclass(frozen=True)
class ReportContext:
    """Sources of the numbers: data folder, row counts, time window, time zone and run time."""

    data_dir: Path | None
    row_counts: dict[str, int]
    created_first: pd.Timestamp | None
    created_last: pd.Timestamp | None
    as_of: pd.Timestamp | None
    generated_at: pd.Timestamp
    timezone: str
    csv_files: tuple[str, ...] = ()

    def sources(self, locale: Locale, options: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """Return the (label, value) facts in ``locale``; ``options`` come before the generation time."""
        facts: list[tuple[str, str]] = []
        if self.data_dir is not None:
            facts.append((text("report.source.data_dir", locale), str(self.data_dir)))
        if self.row_counts:
            counts = ", ".join(f"{name} {format_count(count)}" for name, count in self.row_counts.items())
            facts.append((text("report.source.rows", locale), counts))
        if self.created_first is not None:
            window = text(
                "report.source.window_value",
                locale,
                first=format_time(self.created_first, self.timezone),
                last=format_time(self.created_last, self.timezone),
            )
            facts.append((text("report.source.window", locale), window))
        if self.as_of is not None:
            facts.append((text("report.source.as_of", locale), format_time(self.as_of, self.timezone)))
        facts.append((text("report.source.timezone", locale), self.timezone))
        if self.csv_files:
            facts.append((text("report.source.csv_files", locale), ", ".join(self.csv_files)))
        facts += options
        facts.append(
            (
                text("report.source.generated_at", locale),
                text(
                    "report.source.generated_value",
                    locale,
                    time=format_time(self.generated_at, self.timezone),
                    version=__version__,
                ),
            )
        )
        return facts


def context_for_tables(
    tables: CanonicalTables,
    *,
    data_dir: Path | None,
    as_of: pd.Timestamp | None,
    timezone: str,
    generated_at: pd.Timestamp | None = None,
    csv_files: tuple[str, ...] = (),
) -> ReportContext:
    """Return the report context of a data folder: row counts and the lead creation window."""
    created = tables.leads["created_at"].dropna() if "created_at" in tables.leads.columns else pd.Series()
    return ReportContext(
        data_dir=data_dir.resolve() if data_dir is not None else None,
        row_counts={name: len(tables.table(name)) for name in TABLE_NAMES},
        created_first=created.min() if len(created) else None,
        created_last=created.max() if len(created) else None,
        as_of=as_of,
        generated_at=generated_at if generated_at is not None else pd.Timestamp.now(tz="UTC"),
        timezone=timezone,
        csv_files=csv_files,
    )
