"""Import one CRM export (CSV, XLSX or Parquet) into one canonical table of a data folder.

Steps: read every cell as text (``data.readers``), map headers onto the table
(``data.headers``, ``data.mapping``), clean placeholders (``data.governance``), parse each
column by its kind (``data.parsing``), validate (``data.validate``), apply the duplicate
merge policy against the rows already in the folder (``data.governance``), then write
``DIR/TABLE.parquet`` in canonical dtypes and ``DIR/TABLE.rejects.csv``.

Counts: every data row of the file is either accepted or rejected, so ``read == accepted +
rejected`` always holds (checked before anything is written). An accepted row is in the
table, or it was an identical copy of a row that is (``duplicates_collapsed``). A rejected
row is in the rejects file with one line per problem. Rows already in the folder that a
file row replaced under the merge policy are listed in the rejects file too, as
``existing`` rows, and counted in ``existing_replaced``.

The rejects file collects the rejects of every file imported into the folder: an import
replaces only the lines of a source file with the same name. Its columns are
``REJECT_COLUMNS``: ``code`` is the problem code (``unparseable``, ``placeholder``, ...),
the same in every locale, and ``reason`` is the text in the import's ``locale``. ``code``
comes last, so a reader that takes the first five columns by position still gets
``reason`` fifth. Cells that a spreadsheet would run as a formula (starting with ``=``,
``+``, ``-`` or ``@``, plain numbers excepted) are written with a leading ``'``, and values
are cut to ``MAX_VALUE_CHARS``.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import zoneinfo
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from data import governance, parsing
from data.encoding import read_text
from data.folder import (
    CustomAttribute,
    read_attributes,
    read_table,
    table_path,
    write_attributes,
    write_table,
)
from data.headers import resolve_headers
from data.import_messages import Message, import_error, reason
from data.import_summary import ImportSummary
from data.mapping import ImportMapping, check_date_formats, load_mapping
from data.readers import RawTable, read_raw
from data.schema import DEFAULT_TIMEZONE, Column, Table, get_table
from data.stages import STAGE_CODES, normalize_stage
from data.validate import (
    MAX_VALUE_CHARS,
    RowProblem,
    attribute_column,
    coerce_canonical_dtypes,
    validate_table,
)
from leadscore.errors import ConfigError, InputFileError, SchemaError
from leadscore.i18n import DEFAULT_LOCALE, Locale, error_message

logger = logging.getLogger(__name__)

REJECT_COLUMNS = ("source", "row", "column", "value", "reason", "code")
_OLD_REJECT_COLUMNS = REJECT_COLUMNS[:5]  # files written before the code column existed
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
_PERSON_NAME_COLUMNS = frozenset({("reps", "name")})


@dataclass
class ImportProblem:
    """One problem of one row: the source row number, column, cell text, problem code and reason."""

    row: int
    column: str
    value: str
    code: str
    message: Message

    @property
    def reason(self) -> str:
        """Return the reason in English."""
        return self.message.text()


@dataclass
class _ParsedFile:
    frame: pd.DataFrame  # one column per mapped target, parsed values, object dtype
    row_numbers: list[int]
    problems: dict[int, list[ImportProblem]]  # frame position -> problems
    attributes: list[CustomAttribute]


def import_file(
    path: Path,
    table: str,
    out_dir: Path,
    mapping: ImportMapping | Path | None = None,
    timezone: str | None = None,
    date_formats: Sequence[str] = (),
    sheet: str | None = None,
    locale: Locale = DEFAULT_LOCALE,
) -> ImportSummary:
    """Import ``path`` into ``out_dir/<table>.parquet`` and return the summary.

    ``mapping`` is a parsed mapping or the path of a mapping file. ``timezone`` (default:
    the mapping's, else Asia/Shanghai) applies to timestamps without an offset;
    ``date_formats`` are tried before the mapping's and the built-in formats. ``locale``
    (``en`` or ``zh-CN``) is the language of the reasons in the rejects file and of the
    summary's ``format()``. Raises
    ``InputFileError`` when the file cannot be read, ``SchemaError`` when a required column
    is missing and ``ConfigError`` for an invalid mapping or time zone.
    """
    path, out_dir = Path(path), Path(out_dir)
    table_def = get_table(table)
    import_mapping = _load(mapping)
    table_mapping = import_mapping.for_table(table)
    zone = timezone or table_mapping.timezone or import_mapping.timezone or DEFAULT_TIMEZONE
    _check_timezone(zone)
    _check_date_format_option(date_formats)
    formats = [*date_formats, *table_mapping.date_formats, *import_mapping.date_formats]
    declared = [declaration.to_attribute() for declaration in table_mapping.attributes]

    raw = read_raw(path, sheet=sheet)
    summary = ImportSummary(
        source=path,
        table=table,
        output=table_path(out_dir, table),
        rejects_path=rejects_path(out_dir, table),
        file_format=raw.format,
        encoding=raw.encoding,
        delimiter=raw.delimiter,
        read=len(raw.rows),
        blank_rows=raw.blank_rows,
        locale=locale,
    )
    try:
        parsed = _parse_file(raw, table_def, import_mapping, declared, zone, formats, summary)
    except SchemaError as error:
        raise _with_sheet_hint(error, raw, sheet) from error
    summary.attributes_kept = parsed.attributes
    summary.attributes_missing = [a.name for a in declared if a not in parsed.attributes]

    rejected_positions = set(parsed.problems)
    accepted_frame = parsed.frame.drop(index=list(rejected_positions)).reset_index(drop=True)
    accepted_rows = [
        row for position, row in enumerate(parsed.row_numbers) if position not in rejected_positions
    ]
    if table == "orders" and "currency" not in accepted_frame.columns:
        accepted_frame["currency"] = parsing.DEFAULT_CURRENCY
        summary.coercions.setdefault("currency", Counter())[
            f"default currency {parsing.DEFAULT_CURRENCY}"
        ] += len(accepted_frame)

    attributes = _merge_attribute_declarations(
        read_attributes(out_dir) if table == "leads" else [], parsed.attributes
    )
    existing = _read_existing(out_dir, table)
    existing_frame = (
        coerce_canonical_dtypes(table, existing, attributes) if existing is not None else pd.DataFrame()
    )
    summary.existing_rows = len(existing_frame)
    new_frame = coerce_canonical_dtypes(table, accepted_frame, attributes)
    combined = pd.concat([existing_frame, new_frame], ignore_index=True) if len(existing_frame) else new_frame
    origins = [governance.RowOrigin(True, index + 1) for index in range(len(existing_frame))]
    origins += [governance.RowOrigin(False, row) for row in accepted_rows]
    merge = governance.merge_duplicates(table_def, combined, origins)

    extra_rejects = _apply_merge_outcomes(merge, parsed, summary, rejected_positions, table_def)
    final = coerce_canonical_dtypes(table, merge.frame, attributes)
    summary.rows_written = len(final)
    summary.rejected = len(rejected_positions)
    summary.accepted = summary.read - summary.rejected
    _check_counts(summary, merge)

    # Read before writing anything, so that an unreadable rejects file leaves the folder unchanged.
    earlier_rejects = read_earlier_rejects(summary.rejects_path, path.name)
    write_table(final, out_dir, table)
    if table == "leads" and attributes:
        write_attributes(out_dir, attributes)
    problems = [problem for position in sorted(parsed.problems) for problem in parsed.problems[position]]
    write_rejects(
        summary.rejects_path, path.name, problems, extra_rejects, earlier=earlier_rejects, locale=locale
    )
    for problem in problems:
        summary.rejects_by_reason[(problem.column, problem.code)] += 1
    logger.info(
        "imported %s into %s: read %d, accepted %d, rejected %d, rows in table %d",
        path,
        summary.output,
        summary.read,
        summary.accepted,
        summary.rejected,
        summary.rows_written,
    )
    return summary


def rejects_path(out_dir: Path, table: str) -> Path:
    """Return the path of the rejects file of ``table`` in a data folder."""
    return Path(out_dir) / f"{table}.rejects.csv"


def _load(mapping: ImportMapping | Path | None) -> ImportMapping:
    if mapping is None:
        return ImportMapping.model_validate({})
    if isinstance(mapping, ImportMapping):
        return mapping
    return load_mapping(Path(mapping))


def _read_existing(out_dir: Path, table: str) -> pd.DataFrame | None:
    import pyarrow as pa

    try:
        return read_table(out_dir, table)
    except (OSError, ValueError, pa.ArrowException, InputFileError) as error:
        raise InputFileError(
            import_error("existing_table", path=table_path(out_dir, table), detail=error_message(error))
        ) from error


def _check_date_format_option(date_formats: Sequence[str]) -> None:
    try:
        check_date_formats(list(date_formats))
    except ValueError as error:
        raise ConfigError(
            import_error("option", option="--date-format", problem=error_message(error))
        ) from None


def _with_sheet_hint(error: SchemaError, raw: RawTable, sheet: str | None) -> SchemaError:
    """Return ``error``, naming the other worksheets when the first one was read by default."""
    if sheet is not None or len(raw.sheets) < 2:
        return error
    others = ", ".join(repr(name) for name in raw.sheets if name != raw.sheet)
    return SchemaError(
        import_error("sheet_hint", error=error_message(error), sheet=repr(raw.sheet), others=others)
    )


def _check_timezone(zone: str) -> None:
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ConfigError(import_error("unknown_timezone", zone=repr(zone))) from error


# ---------------------------------------------------------------------------------------
# Parsing the file's columns


def _parse_file(
    raw: RawTable,
    table: Table,
    mapping: ImportMapping,
    declared: list[CustomAttribute],
    zone: str,
    formats: Sequence[str],
    summary: ImportSummary,
) -> _ParsedFile:
    resolution = resolve_headers(table, raw.headers, renames=mapping.renames(table.name), attributes=declared)
    summary.ignored_columns = resolution.ignored
    placeholders = governance.placeholder_set(mapping.placeholders)
    value_maps = mapping.for_table(table.name).values
    attributes_by_name = {attribute.name: attribute for attribute in declared}

    problems: dict[int, list[ImportProblem]] = {}
    position_of_row = {row: position for position, row in enumerate(raw.row_numbers)}
    for row, message in raw.row_problems.items():
        problems.setdefault(position_of_row[row], []).append(
            ImportProblem(row, "", "", "malformed_row", message)
        )

    columns: dict[str, list[object]] = {}
    cell_texts: dict[str, list[str | None]] = {}
    for position, target in resolution.columns.items():
        if target in attributes_by_name:
            column = attribute_column(attributes_by_name[target])
        else:
            column = table.column(target)
        raw_cells = raw.column_values(position)
        cleaned = governance.clean_cells(
            raw_cells, placeholders=placeholders, person_name=(table.name, target) in _PERSON_NAME_COLUMNS
        )
        if cleaned.placeholders:
            summary.placeholders[target] = len(cleaned.placeholders)
        cell_texts[target] = raw_cells
        merged_fills = raw.merged_fills.get(position, 0)
        if merged_fills:
            summary.coercions.setdefault(target, Counter())["merged cell value copied"] += merged_fills
        if cleaned.unwrapped_formulas:
            summary.coercions.setdefault(target, Counter())["Excel text formula unwrapped"] += (
                cleaned.unwrapped_formulas
            )

        parsed = _parse_column(
            table, column, cleaned.values, value_maps.get(target), zone, formats, raw.excel_serial_dates
        )
        if parsed.coercions:
            summary.coercions.setdefault(target, Counter()).update(parsed.coercions)
        for index, message in parsed.messages.items():
            cell = _cap(raw_cells[index] or "")
            problems.setdefault(index, []).append(
                ImportProblem(raw.row_numbers[index], target, cell, "unparseable", message)
            )
        for (row, column_position), reference in raw.formulas_without_result.items():
            if column_position == position and row in position_of_row:
                problems.setdefault(position_of_row[row], []).append(
                    ImportProblem(
                        row,
                        target,
                        "",
                        "formula_without_result",
                        reason("formula_without_result", cell=reference),
                    )
                )
        columns[target] = parsed.values

    frame = pd.DataFrame({name: pd.Series(values, dtype="object") for name, values in columns.items()})
    frame.index = pd.RangeIndex(len(raw.rows))
    present = [attribute for attribute in declared if attribute.name in columns]
    _add_validation_problems(table, frame, present, raw.row_numbers, problems, cell_texts)
    return _ParsedFile(frame=frame, row_numbers=raw.row_numbers, problems=problems, attributes=present)


def _parse_column(  # noqa: PLR0911 - one parser per column kind
    table: Table,
    column: Column,
    cells: list[str | None],
    value_map: dict[str, str] | None,
    zone: str,
    formats: Sequence[str],
    excel_serial: bool,
) -> parsing.ParsedColumn:
    if column.kind == "id":
        return parsing.parse_ids(cells)
    if column.kind == "text":
        return parsing.parse_text(cells)
    if column.kind == "timestamp":
        return parsing.parse_timestamps(cells, timezone=zone, formats=formats, excel_serial=excel_serial)
    if column.kind in ("float", "int"):
        return parsing.parse_numbers(cells, integer=column.kind == "int")
    if column.kind == "bool":
        return parsing.parse_booleans(cells)
    if column.kind == "list":
        return parsing.parse_lists(cells)
    if table.name == "stage_changes" and column.name == "stage":
        return parsing.parse_stages(cells, value_map=value_map)
    if table.name == "orders" and column.name == "currency":
        return parsing.parse_currencies(cells)
    return parsing.parse_categories(
        cells,
        allowed=column.allowed,
        value_map=value_map,
        synonyms=parsing.BUILTIN_SYNONYMS.get(column.name) if column.allowed else None,
        column=column.name,
        table=table.name,
    )


def _add_validation_problems(
    table: Table,
    frame: pd.DataFrame,
    attributes: list[CustomAttribute],
    row_numbers: list[int],
    problems: dict[int, list[ImportProblem]],
    cell_texts: dict[str, list[str | None]],
) -> None:
    """Add the validator's findings on parsed values, showing the cell text as it is in the file.

    Duplicate keys are left to the merge policy.
    """
    report = validate_table(table.name, frame, attributes, source_rows=row_numbers)
    position_of_row = {row: position for position, row in enumerate(row_numbers)}
    columns = {column.name: column for column in table.columns}
    columns.update({attribute.name: attribute_column(attribute) for attribute in attributes})
    for problem in report.problems:
        if problem.code == "duplicate_key" or problem.row == 0:
            continue
        position = position_of_row[problem.row]
        known = problems.setdefault(position, [])
        if any(existing.column == problem.column for existing in known):
            continue  # the cell already failed to parse, which left it missing
        cell = _cap((cell_texts[problem.column][position] or "").strip())
        if problem.code == "missing_required" and cell:
            message = reason("placeholder", value=repr(cell))
            known.append(ImportProblem(problem.row, problem.column, cell, "placeholder", message))
        else:
            value = frame.at[position, problem.column]
            message = _validation_message(problem, columns[problem.column], value)
            known.append(ImportProblem(problem.row, problem.column, cell, problem.code, message))


def _validation_message(problem: RowProblem, column: Column, value: object) -> Message:  # noqa: PLR0911
    """Return the validator's finding as a message, rebuilt from its code and the column's schema.

    ``data.validate`` writes English text only, so each code gets the parameters its text names.
    """
    if problem.code == "missing_required":
        return reason("missing_required")
    if problem.code == "below_minimum" and column.min_value is not None:
        return reason("below_minimum", minimum=f"{column.min_value:g}")
    if problem.code == "not_allowed" and column.allowed is not None:
        return reason("not_allowed", allowed=", ".join(column.allowed))
    if problem.code == "unknown_stage":
        suggestion = normalize_stage(value) if isinstance(value, str) else None
        if suggestion:
            return reason("unknown_stage_code", suggestion=repr(suggestion), codes=", ".join(STAGE_CODES))
        return reason("unknown_stage_no_hint", codes=", ".join(STAGE_CODES))
    if problem.code in ("invalid_id", "naive_timestamp"):
        return reason(problem.code)
    if problem.code == "wrong_type":
        return reason("wrong_type", kind=column.kind, found=type(value).__name__)
    return reason("validation_other", code=problem.code, detail=problem.reason)


# ---------------------------------------------------------------------------------------
# Merging, counting and writing


def _merge_attribute_declarations(
    existing: list[CustomAttribute], new: list[CustomAttribute]
) -> list[CustomAttribute]:
    merged = {attribute.name: attribute for attribute in existing}
    for attribute in new:
        previous = merged.get(attribute.name)
        if previous is not None and (previous.type, previous.post_contact) != (
            attribute.type,
            attribute.post_contact,
        ):
            raise ConfigError(
                import_error(
                    "attribute_conflict",
                    name=repr(attribute.name),
                    type=attribute.type,
                    post_contact=attribute.post_contact,
                    folder_type=previous.type,
                    folder_post_contact=previous.post_contact,
                )
            )
        merged[attribute.name] = attribute
    return list(merged.values())


def _apply_merge_outcomes(
    merge: governance.MergeResult,
    parsed: _ParsedFile,
    summary: ImportSummary,
    rejected_positions: set[int],
    table: Table,
) -> list[tuple[str, ImportProblem]]:
    """Turn removed duplicates into rejects and counts; return rejects of existing rows."""
    position_of_row = {row: position for position, row in enumerate(parsed.row_numbers)}
    existing_rejects: list[tuple[str, ImportProblem]] = []
    summary.values_filled = merge.filled_values
    for outcome in merge.removed:
        problem = ImportProblem(
            outcome.origin.row,
            outcome.key_column,
            outcome.key_value,
            "duplicate_merged",
            _duplicate_message(outcome, table),
        )
        if outcome.origin.existing:
            if not outcome.identical:
                summary.existing_replaced += 1
                existing_rejects.append((f"existing {summary.table}.parquet", problem))
            continue
        if outcome.identical:
            summary.duplicates_collapsed += 1
            continue
        summary.duplicates_merged += 1
        position = position_of_row[outcome.origin.row]
        parsed.problems.setdefault(position, []).append(problem)
        rejected_positions.add(position)
    return existing_rejects


def _duplicate_message(outcome: governance.DuplicateOutcome, table: Table) -> Message:
    """Return the reason of a merged duplicate, with the same parts as ``outcome.reason``."""
    kept_key = "existing_row" if outcome.kept.existing else "row"
    if table.time_column:
        rule = Message("import.merge_rule.time", {"time_column": table.time_column})
    else:
        rule = Message("import.merge_rule.complete")
    items = [
        Message(
            "import.duplicate.difference",
            {"column": item.column, "value": item.value, "kept": item.kept_value},
        )
        for item in outcome.differences
    ]
    if outcome.more_differences:
        items.append(Message("import.duplicate.more", {"count": outcome.more_differences}))
    differences: object = Message("import.duplicate.differences", {"items": tuple(items)}) if items else ""
    return reason(
        "duplicate_merged",
        label=outcome.label,
        kept=Message(f"import.origin.{kept_key}", {"row": outcome.kept.row}),
        rule=rule,
        differences=differences,
    )


def _check_counts(summary: ImportSummary, merge: governance.MergeResult) -> None:
    """Raise when the counts do not add up; a failure here is a bug in the importer."""
    new_rows_kept = sum(1 for origin in merge.origins if not origin.existing)
    accepted = new_rows_kept + summary.duplicates_collapsed
    if summary.read != summary.accepted + summary.rejected or accepted != summary.accepted:
        raise RuntimeError(
            f"import counts do not add up: read {summary.read}, accepted {summary.accepted} "
            f"(rows kept {new_rows_kept} + collapsed {summary.duplicates_collapsed}), "
            f"rejected {summary.rejected}"
        )


def write_rejects(
    path: Path,
    source: str,
    problems: Sequence[ImportProblem],
    extra: Sequence[tuple[str, ImportProblem]] = (),
    *,
    earlier: Sequence[Sequence[str]] | None = None,
    locale: Locale = DEFAULT_LOCALE,
) -> None:
    """Write rejects as CSV in UTF-8 with a BOM (so Excel opens it), one line per problem.

    Lines of other sources already in the file are kept, in the language they were written
    in, and those of ``source`` are replaced. ``earlier`` is what ``read_earlier_rejects``
    returned, when the caller read it already. Reasons are written in ``locale``.
    """
    earlier_lines = read_earlier_rejects(path, source) if earlier is None else earlier
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REJECT_COLUMNS)
        writer.writerows(earlier_lines)
        for problem in problems:
            writer.writerow(_reject_line(source, problem, locale))
        for origin, problem in extra:
            writer.writerow(_reject_line(origin, problem, locale))


def read_earlier_rejects(path: Path, source: str) -> list[list[str]]:
    """Return the lines of an existing rejects file whose source is not ``source``.

    Lines come back in the order of ``REJECT_COLUMNS``. A file written before the ``code``
    column existed gets an empty code.
    """
    if not path.exists():
        return []
    text = read_text(path).text  # GBK too: Excel on Chinese Windows saves CSV files as GBK
    try:
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise InputFileError(import_error("existing_rejects", path=path, detail=str(error))) from error
    if not lines:
        return []
    escaped_source = _escape_formula(source)
    aligned = [_align_reject_line(lines[0], line) for line in lines[1:] if line]
    return [line for line in aligned if line[0] != escaped_source]


def _align_reject_line(header: list[str], line: list[str]) -> list[str]:
    """Reorder ``line`` of a rejects file with ``header`` into ``REJECT_COLUMNS`` order."""
    names = [name.lstrip("\ufeff") for name in header]
    if not set(_OLD_REJECT_COLUMNS) <= set(names):
        names = list(REJECT_COLUMNS)  # no usable header: read the columns by position
    values = dict(zip(names, line, strict=False))
    return [values.get(name, "") for name in REJECT_COLUMNS]


def _reject_line(source: str, problem: ImportProblem, locale: Locale) -> tuple[str, int, str, str, str, str]:
    return (
        _escape_formula(source),
        problem.row,
        _escape_formula(problem.column),
        _escape_formula(problem.value),
        _escape_formula(problem.message.text(locale)),
        _escape_formula(problem.code),
    )


def _escape_formula(text: str) -> str:
    """Prefix ``'`` to text that Excel would run as a formula, so the rejects file is safe to open."""
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def _cap(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
