"""Match the headers of a CRM export to canonical columns and declared custom attributes.

A header matches a column when its normalized form equals the normalized form of the
column name, one of its ``Column.aliases`` or a rename from the mapping file. Normalizing
applies Unicode NFKC (full-width letters, digits, spaces and parentheses become their ASCII
forms), drops a BOM and zero-width characters, folds case and removes whitespace,
underscores, hyphens and the ``*`` that import templates put on required headers. So
``Lead ID``, ``lead_id``, ``LEADID`` and ``　线索ID　`` all match. A header that still does
not match is tried once more without a trailing parenthesized note: ``金额（元）`` matches
``金额``. A note naming another unit (``金额（万元）``, ``Amount (USD)``) is an error instead,
because the values would be read as yuan. Renames from the mapping file win over the
built-in aliases.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from data.folder import CustomAttribute
from data.import_messages import import_error
from data.schema import Table
from data.validate import missing_columns_message
from leadscore.errors import ConfigError, SchemaError

_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060"))
_SEPARATORS = re.compile(r"[\s_\-*]+")
_TRAILING_NOTE = re.compile(r"\([^()]*\)$")
_YUAN_NOTES = frozenset({"", "元", "人民币", "rmb", "cny", "¥", "人民币元"})
_UNIT_WORDS = re.compile(r"万|千|亿|百|元|美元|usd|\$|%|k$|rmb|cny|hkd|eur", re.IGNORECASE)


def normalize_header(header: str) -> str:
    """Return the form of ``header`` that matching compares (see the module docstring)."""
    text = unicodedata.normalize("NFKC", header).translate(_INVISIBLE).casefold()
    return _SEPARATORS.sub("", text)


def _without_note(normalized: str) -> str:
    return _TRAILING_NOTE.sub("", normalized)


def _reject_other_unit(table: Table, header: str, normalized: str, target: str) -> None:
    note = normalized[len(_without_note(normalized)) :].strip("()")
    if note in _YUAN_NOTES or not _UNIT_WORDS.search(note):
        return
    raise SchemaError(
        import_error(
            "other_unit",
            table=repr(table.name),
            header=repr(header),
            target=repr(target),
            note=note,
            mapping_key=f"[tables.{table.name}.columns]",
        )
    )


@dataclass
class HeaderResolution:
    """Mapping of file columns onto canonical columns or custom attributes, and the ignored headers."""

    columns: dict[int, str] = field(default_factory=dict)  # file column position -> target name
    sources: dict[str, str] = field(default_factory=dict)  # target name -> header in the file
    ignored: list[str] = field(default_factory=list)


def header_lookup(table: Table, renames: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return normalized header -> target name for ``table``'s columns, aliases and ``renames``.

    Raises ``ConfigError`` when one normalized alias would name two columns, which would make
    matching depend on column order.
    """
    lookup: dict[str, str] = {}
    for column in table.columns:
        for spelling in (column.name, *column.aliases):
            key = normalize_header(spelling)
            if lookup.get(key, column.name) != column.name:
                raise ConfigError(
                    import_error(
                        "alias_conflict",
                        table=repr(table.name),
                        header=repr(spelling),
                        first=repr(lookup[key]),
                        second=repr(column.name),
                    )
                )
            lookup[key] = column.name
    for source, target in (renames or {}).items():
        lookup[normalize_header(source)] = target
    return lookup


def resolve_headers(
    table: Table,
    headers: Sequence[str],
    *,
    renames: Mapping[str, str] | None = None,
    attributes: Sequence[CustomAttribute] = (),
) -> HeaderResolution:
    """Map each header of a file onto ``table``.

    Headers that match no canonical column and no declared attribute are listed in
    ``ignored``. Raises ``SchemaError`` when two headers map to the same target, or when a
    required column has no header (naming the accepted headers and the headers found).
    """
    lookup = header_lookup(table, renames)
    for attribute in attributes:
        lookup.setdefault(normalize_header(attribute.name), attribute.name)
    targets = set(table.column_names) | {attribute.name for attribute in attributes}

    resolution = HeaderResolution()
    for position, header in enumerate(headers):
        label = header or f"(unnamed column {position + 1})"
        normalized = normalize_header(header)
        target = lookup.get(normalized)
        if target is None and lookup.get(_without_note(normalized)) is not None:
            target = lookup[_without_note(normalized)]
            _reject_other_unit(table, header, normalized, target)
        if not header or target is None:
            resolution.ignored.append(label)
            continue
        if target not in targets:
            raise ConfigError(
                import_error(
                    "rename_target",
                    table=repr(table.name),
                    header=repr(header),
                    target=repr(target),
                    columns=", ".join(table.column_names),
                )
            )
        if target in resolution.sources:
            raise SchemaError(
                import_error(
                    "two_headers",
                    table=repr(table.name),
                    first=repr(resolution.sources[target]),
                    second=repr(header),
                    target=repr(target),
                    mapping_key=f"[tables.{table.name}.columns]",
                )
            )
        resolution.columns[position] = target
        resolution.sources[target] = header

    missing = [name for name in table.required_columns if name not in resolution.sources]
    if missing:
        found = ", ".join(repr(header) for header in headers)
        raise SchemaError(
            import_error("headers_found", missing=missing_columns_message(table, missing), found=found)
        )
    return resolution
