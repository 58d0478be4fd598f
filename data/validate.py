"""Checks of canonical tables against the one schema in ``data.schema``.

Three levels, from strict to tolerant:

* ``coerce_canonical_dtypes`` turns a frame into the exact storage dtypes (see
  ``storage_dtype``) or raises ``SchemaError`` naming the column and its dtype.
* ``validate_table`` raises ``SchemaError`` only when a required column is absent; every
  other defect becomes a ``RowProblem`` in the returned ``ValidationReport``.
* ``validate_tables`` validates each table of a data folder and adds cross-table checks
  (activities of unknown leads, orders of unknown customers, ...). It reports and never drops.

Row numbers: ``RowProblem.row`` is the 1-based data row as a user sees it in the source
file, header excluded, so the first data row is row 1. For a frame without a source file it
is the frame position plus 1; the importer passes the file's row numbers in ``source_rows``.
Row 0 marks a problem of the table as a whole (an undeclared column, for example).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api.types import pandas_dtype

from data.folder import CanonicalTables, CustomAttribute
from data.import_messages import (
    Message,
    MessageList,
    import_error,
    problem_label,
    reason,
    validation_text,
)
from data.schema import Column, Table, get_table
from data.stages import STAGE_CODES, normalize_stage
from leadscore.errors import SchemaError
from leadscore.i18n import DEFAULT_LOCALE, Locale

# Storage dtypes per column kind. Required int and bool columns use numpy dtypes; optional
# ones use pandas' nullable dtypes so a missing value survives a Parquet round trip.
TIMESTAMP_DTYPE = "datetime64[us, UTC]"
_STRING_KINDS = frozenset({"id", "text", "category"})
_REQUIRED_DTYPES: dict[str, str] = {
    "id": "str",
    "text": "str",
    "category": "str",
    "timestamp": TIMESTAMP_DTYPE,
    "float": "float64",
    "int": "int64",
    "bool": "bool",
    "list": "object",
}
_OPTIONAL_DTYPES: dict[str, str] = {**_REQUIRED_DTYPES, "int": "Int64", "bool": "boolean"}

MAX_VALUE_CHARS = 80  # values in problems and messages are cut to this length

_FailFactory = Callable[[str], SchemaError]


def storage_dtype(kind: str, *, required: bool) -> str:
    """Return the pandas dtype that a column of ``kind`` is stored with."""
    table = _REQUIRED_DTYPES if required else _OPTIONAL_DTYPES
    return table[kind]


def attribute_column(attribute: CustomAttribute) -> Column:
    """Return a custom lead attribute as an optional schema column of the same kind."""
    return Column(attribute.name, attribute.type, False, attribute.description, attribute.description)


def empty_table(name: str) -> pd.DataFrame:
    """Return a frame with the canonical columns and storage dtypes of table ``name`` and no rows."""
    table = get_table(name)
    return pd.DataFrame(
        {
            column.name: pd.Series([], dtype=storage_dtype(column.kind, required=column.required))
            for column in table.columns
        }
    )


# ---------------------------------------------------------------------------------------
# Coercion to storage dtypes


def coerce_canonical_dtypes(
    name: str, frame: pd.DataFrame, attributes: Sequence[CustomAttribute] = ()
) -> pd.DataFrame:
    """Return ``frame`` with the canonical columns of ``name`` in order and in storage dtypes.

    Optional canonical columns that are absent are added as missing values. Columns of
    declared ``attributes`` follow the canonical ones in their declared dtype; other extra
    columns are kept unchanged at the end. Raises ``SchemaError`` naming the column, its
    dtype and the expected dtype when a conversion would lose or invent information
    (float ids, naive timestamps, text in a numeric column, missing values in a required
    int or bool column).
    """
    table = get_table(name)
    missing = [column for column in table.required_columns if column not in frame.columns]
    if missing:
        raise SchemaError(missing_columns_message(table, missing))

    columns: dict[str, pd.Series] = {}
    for column in table.columns:
        if column.name in frame.columns:
            columns[column.name] = _coerce_column(table.name, column, frame[column.name])
        else:
            dtype = storage_dtype(column.kind, required=column.required)
            columns[column.name] = _empty_like(column.kind, dtype, frame.index)

    for attribute in attributes:
        if attribute.name in frame.columns and attribute.name not in columns:
            columns[attribute.name] = _coerce_column(
                table.name, attribute_column(attribute), frame[attribute.name]
            )
    for extra in frame.columns:
        if extra not in columns:
            columns[str(extra)] = frame[extra]

    return pd.DataFrame(columns, index=frame.index)


def _empty_like(kind: str, dtype: str, index: pd.Index) -> pd.Series:
    if kind == "list":
        return pd.Series([[] for _ in range(len(index))], index=index, dtype="object")
    return pd.Series(pd.NA if dtype in ("Int64", "boolean") else None, index=index, dtype=dtype)


def _coerce_column(table: str, column: Column, series: pd.Series) -> pd.Series:
    dtype = storage_dtype(column.kind, required=column.required)

    def fail(expected: str) -> SchemaError:
        return SchemaError(
            f"table {table!r}, column {column.name!r}: cannot store dtype {series.dtype} as {dtype} "
            f"({expected})"
        )

    if column.kind in _STRING_KINDS:
        return _coerce_strings(series, dtype, fail)
    if column.kind == "timestamp":
        return _coerce_timestamps(series, fail)
    if column.kind == "float":
        return _coerce_floats(series, fail)
    if column.kind == "int":
        return _coerce_ints(series, dtype, fail)
    if column.kind == "bool":
        return _coerce_bools(series, dtype, fail)
    return _coerce_lists(series, fail)


def _coerce_strings(series: pd.Series, dtype: str, fail: _FailFactory) -> pd.Series:
    if pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(series.dtype):
        return series.astype(pandas_dtype(dtype))
    if pd.api.types.is_float_dtype(series.dtype):
        raise fail("floats lose digits and leading zeros; read ids and codes as strings")
    if pd.api.types.is_integer_dtype(series.dtype):
        return (
            series.astype("object")
            .map(lambda value: None if _is_missing(value) else str(value))
            .astype(pandas_dtype(dtype))
        )
    if pd.api.types.is_object_dtype(series.dtype):
        for value in series:
            if _is_missing(value) or isinstance(value, str):
                continue
            if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
                continue
            raise fail(f"found the {type(value).__name__} value {_cap(value)!r}; expected strings")
        return series.map(lambda value: None if _is_missing(value) else str(value)).astype(
            pandas_dtype(dtype)
        )
    raise fail("expected strings")


def _coerce_timestamps(series: pd.Series, fail: _FailFactory) -> pd.Series:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype(pandas_dtype(TIMESTAMP_DTYPE))
    if pd.api.types.is_datetime64_dtype(series.dtype):
        raise fail("naive timestamps; localize them to their time zone first")
    if pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype):
        values: list[object] = []
        for value in series:
            if _is_missing(value):
                values.append(pd.NaT)
            elif isinstance(value, dt.datetime) and value.tzinfo is not None:
                values.append(pd.Timestamp(value).tz_convert("UTC"))
            elif isinstance(value, dt.datetime):
                raise fail(f"the naive timestamp {value!s} has no time zone")
            else:
                raise fail(f"found {_cap(value)!r}; parse text with data.parsing.parse_timestamps first")
        return pd.Series(pd.DatetimeIndex(values, tz="UTC"), index=series.index).astype(
            pandas_dtype(TIMESTAMP_DTYPE)
        )
    raise fail("expected tz-aware timestamps")


def _coerce_floats(series: pd.Series, fail: _FailFactory) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        raise fail("booleans are not amounts")
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype(pandas_dtype("float64"))
    if pd.api.types.is_object_dtype(series.dtype):
        for value in series:
            if not (_is_missing(value) or _is_number(value)):
                raise fail(f"found {_cap(value)!r}; parse text with data.parsing.parse_numbers first")
        return series.map(lambda value: math.nan if _is_missing(value) else float(value)).astype(
            pandas_dtype("float64")
        )
    raise fail("expected numbers")


_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _coerce_ints(series: pd.Series, dtype: str, fail: _FailFactory) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        raise fail("booleans are not counts")
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_object_dtype(series.dtype):
        values: list[int | None] = []
        for value in series:
            if _is_missing(value):
                values.append(None)
            elif _is_number(value) and float(value).is_integer():
                if not _INT64_MIN <= int(value) <= _INT64_MAX:
                    raise fail(
                        f"found {_cap(value)!r}; expected whole numbers from {_INT64_MIN} to {_INT64_MAX}"
                    )
                values.append(int(value))
            else:
                raise fail(f"found {_cap(value)!r}; expected whole numbers")
        if dtype == "int64" and any(value is None for value in values):
            raise fail("a required int column cannot hold missing values")
        return pd.Series(pd.array(values, dtype="Int64"), index=series.index).astype(pandas_dtype(dtype))
    raise fail("expected whole numbers")


def _coerce_bools(series: pd.Series, dtype: str, fail: _FailFactory) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        if dtype == "bool" and series.isna().any():
            raise fail("a required bool column cannot hold missing values")
        return series.astype(pandas_dtype(dtype))
    if pd.api.types.is_object_dtype(series.dtype):
        values: list[bool | None] = []
        for value in series:
            if _is_missing(value):
                values.append(None)
            elif isinstance(value, (bool, np.bool_)):
                values.append(bool(value))
            else:
                raise fail(f"found {_cap(value)!r}; parse text with data.parsing.parse_booleans first")
        if dtype == "bool" and any(value is None for value in values):
            raise fail("a required bool column cannot hold missing values")
        return pd.Series(pd.array(values, dtype="boolean"), index=series.index).astype(pandas_dtype(dtype))
    raise fail("expected booleans")


def _coerce_lists(series: pd.Series, fail: _FailFactory) -> pd.Series:
    values: list[list[str]] = []
    for value in series:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            values.append([])
        elif isinstance(value, (list, tuple, np.ndarray)):
            items = list(value)
            if not all(isinstance(item, str) for item in items):
                raise fail(f"found {_cap(items)!r}; expected lists of strings")
            values.append(items)
        else:
            raise fail(f"found {_cap(value)!r}; split text with data.parsing.parse_lists first")
    return pd.Series(values, index=series.index, dtype="object")


# ---------------------------------------------------------------------------------------
# Row-level validation


@dataclass
class RowProblem:
    """One defect in one cell: the source row (see module docstring), column, value and reason.

    ``reason`` is the English text. ``message``, when set, renders the same reason in any locale.
    """

    row: int
    column: str
    value: str
    reason: str
    code: str = "invalid"
    message: Message | None = None

    def text(self, locale: Locale = DEFAULT_LOCALE) -> str:
        """Return the reason in ``locale``. A problem without a ``message`` has only its English reason."""
        return self.message.text(locale) if self.message is not None else self.reason


def _problem(row: int, column: str, value: str, message: Message, code: str) -> RowProblem:
    return RowProblem(row, column, value, message.text(), code, message)


@dataclass
class ValidationReport:
    """The outcome of validating one table: its row count and every problem found."""

    table: str
    rows: int
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problem_rows(self) -> set[int]:
        """Source row numbers that have at least one problem (0, the whole table, excluded)."""
        return {problem.row for problem in self.problems if problem.row > 0}

    def counts(self) -> dict[tuple[str, str], int]:
        """Return the number of problems per (column, problem code)."""
        counts: dict[tuple[str, str], int] = {}
        for problem in self.problems:
            key = (problem.column, problem.code)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def format(self, max_examples: int = 20, locale: Locale = DEFAULT_LOCALE) -> str:
        """Render the report in ``locale``: a status line, counts per column and problem, then examples.

        Table names, column names, values and problem codes are the same in every locale.
        """
        if self.ok:
            return validation_text("report.clean", table=self.table, rows=self.rows).text(locale)
        status = validation_text(
            "report.status",
            table=self.table,
            rows=self.rows,
            problems=len(self.problems),
            problem_rows=len(self.problem_rows),
        )
        lines = [status.text(locale)]
        for (column, code), count in sorted(self.counts().items()):
            label = problem_label(code, locale)
            lines.append(
                validation_text("report.count", column=column, problem=label, count=count).text(locale)
            )
        lines += [_example_line(problem, locale) for problem in self.problems[:max_examples]]
        if len(self.problems) > max_examples:
            more = validation_text("report.more", count=len(self.problems) - max_examples)
            lines.append(more.text(locale))
        return "\n".join(lines)


def _example_line(problem: RowProblem, locale: Locale) -> str:
    if problem.row == 0:
        where = validation_text("report.whole_table")
    else:
        where = Message("import.origin.row", {"row": problem.row})
    example = validation_text(
        "report.example",
        where=where,
        column=problem.column,
        value=repr(problem.value),
        reason=problem.text(locale),
    )
    return example.text(locale)


def missing_columns_message(table: Table, missing: Iterable[str]) -> Message:
    """Return the error for absent required columns, listing the accepted headers of each."""
    parts = []
    for name in missing:
        column = table.column(name)
        accepted = ", ".join((column.name, *column.aliases))
        parts.append(import_error("missing_column", name=name, accepted=accepted))
    columns = MessageList(tuple(parts), "import.clause_separator")
    return import_error("missing_columns", table=repr(table.name), columns=columns)


def validate_table(
    name: str,
    frame: pd.DataFrame,
    attributes: Sequence[CustomAttribute] = (),
    *,
    source_rows: Sequence[int] | None = None,
) -> ValidationReport:
    """Check ``frame`` against the canonical table ``name`` and return every row problem.

    Raises ``SchemaError`` naming each absent required column and its accepted headers.
    Otherwise reports: missing required values, values of the wrong type (float ids,
    text in numeric columns, naive timestamps), categories outside their closed set, unknown
    stages, values below a column's minimum, duplicate keys, and columns that are neither canonical
    nor declared attributes. ``source_rows`` gives the file row number of each frame row.
    """
    table = get_table(name)
    missing = [column for column in table.required_columns if column not in frame.columns]
    if missing:
        raise SchemaError(missing_columns_message(table, missing))

    rows = list(source_rows) if source_rows is not None else list(range(1, len(frame) + 1))
    if len(rows) != len(frame):
        raise ValueError(f"source_rows has {len(rows)} entries for {len(frame)} frame rows")

    report = ValidationReport(table=table.name, rows=len(frame))
    declared = {attribute.name: attribute for attribute in attributes}
    for column in table.columns:
        if column.name in frame.columns:
            report.problems.extend(_check_column(table, column, frame[column.name], rows))
    for attribute in attributes:
        if not table.allows_custom_attributes:
            message = validation_text("reason.no_attributes", table=repr(table.name))
            report.problems.append(_problem(0, attribute.name, "", message, "schema"))
        elif attribute.name in frame.columns:
            column = attribute_column(attribute)
            report.problems.extend(_check_column(table, column, frame[attribute.name], rows))
        else:
            message = validation_text("reason.attribute_without_column")
            report.problems.append(_problem(0, attribute.name, "", message, "schema"))
    for extra in frame.columns:
        if extra not in table.column_names and extra not in declared:
            message = validation_text("reason.undeclared_column", table=repr(table.name))
            report.problems.append(_problem(0, str(extra), "", message, "undeclared_column"))
    report.problems.extend(_check_duplicate_keys(table, frame, rows))
    report.problems.sort(key=lambda problem: problem.row)
    return report


def _check_column(table: Table, column: Column, series: pd.Series, rows: list[int]) -> list[RowProblem]:
    problems: list[RowProblem] = []
    naive_dtype = column.kind == "timestamp" and pd.api.types.is_datetime64_dtype(series.dtype)
    for row, value in zip(rows, series.tolist(), strict=True):
        if _is_missing(value) or (isinstance(value, str) and not value.strip()):
            if column.required:
                problems.append(
                    _problem(row, column.name, "", reason("missing_required"), "missing_required")
                )
            continue
        if naive_dtype:
            message = reason("naive_timestamp")
            problems.append(_problem(row, column.name, str(value), message, "naive_timestamp"))
            continue
        finding = _check_value(column, value)
        if finding is not None:
            message, code = finding
            problems.append(_problem(row, column.name, _cap(value), message, code))
    return problems


_Finding = tuple[Message, str] | None  # (reason, problem code) or no problem


def _check_value(column: Column, value: object) -> _Finding:
    if column.kind in _STRING_KINDS:
        return _check_string(column, value)
    if column.kind == "timestamp":
        return _check_timestamp(value)
    if column.kind in ("float", "int"):
        return _check_number(column, value)
    return _check_bool_or_list(column, value)


def _check_bool_or_list(column: Column, value: object) -> _Finding:
    if column.kind == "bool":
        if isinstance(value, (bool, np.bool_)):
            return None
        return validation_text("reason.expected_bool", found=type(value).__name__), "wrong_type"
    if isinstance(value, (list, tuple, np.ndarray)) and all(isinstance(item, str) for item in value):
        return None
    return validation_text("reason.expected_list"), "wrong_type"


def _check_string(column: Column, value: object) -> _Finding:
    if not isinstance(value, str):
        hint: object = validation_text("reason.id_as_text") if column.kind == "id" else ""
        return validation_text("reason.expected_text", found=type(value).__name__, hint=hint), "wrong_type"
    if column.kind == "id" and value != value.strip():
        return reason("invalid_id"), "invalid_id"
    if column.allowed is None or value in column.allowed:
        return None
    if column.allowed == STAGE_CODES:
        codes = ", ".join(STAGE_CODES)
        suggestion = normalize_stage(value)
        if suggestion:
            return reason("unknown_stage_code", suggestion=repr(suggestion), codes=codes), "unknown_stage"
        return reason("unknown_stage_no_hint", codes=codes), "unknown_stage"
    return reason("not_allowed", allowed=", ".join(column.allowed)), "not_allowed"


def _check_timestamp(value: object) -> _Finding:
    if not isinstance(value, dt.datetime):
        return validation_text("reason.expected_timestamp", found=type(value).__name__), "wrong_type"
    if value.tzinfo is None:
        return reason("naive_timestamp"), "naive_timestamp"
    return None


def _check_number(column: Column, value: object) -> _Finding:
    if not _is_number(value):
        return validation_text("reason.expected_number", found=type(value).__name__), "wrong_type"
    number = float(value)  # type: ignore[arg-type]
    if math.isinf(number):
        return validation_text("reason.infinite"), "wrong_type"
    if column.kind == "int" and not number.is_integer():
        return validation_text("reason.expected_whole"), "wrong_type"
    if column.min_value is not None and number < column.min_value:
        return reason("below_minimum", minimum=f"{column.min_value:g}"), "below_minimum"
    return None


def _check_duplicate_keys(table: Table, frame: pd.DataFrame, rows: list[int]) -> list[RowProblem]:
    if not all(key in frame.columns for key in table.key) or frame.empty:
        return []
    keys = frame.loc[:, list(table.key)]
    complete = keys.notna().all(axis=1)
    duplicated = keys.duplicated(keep="first") & complete
    if not duplicated.any():
        return []
    first_row: dict[tuple[object, ...], int] = {}
    problems = []
    for position, key in enumerate(keys.itertuples(index=False, name=None)):
        if not complete.iloc[position]:
            continue
        if key not in first_row:
            first_row[key] = rows[position]
        elif duplicated.iloc[position]:
            shown = ", ".join(f"{name}={_cap(value)}" for name, value in zip(table.key, key, strict=True))
            message = validation_text("reason.duplicate_key", values=shown, first_row=first_row[key])
            problems.append(_problem(rows[position], table.key[0], _cap(key[0]), message, "duplicate_key"))
    return problems


# ---------------------------------------------------------------------------------------
# Cross-table validation


def validate_tables(tables: CanonicalTables) -> dict[str, ValidationReport]:
    """Validate every table of ``tables`` and the references between them.

    Cross-table checks, each reported on the referring table: activities and stage changes
    whose lead_id is not in leads; orders whose customer_id no lead carries (only when some
    lead carries a customer_id, otherwise one table-level problem reports that orders cannot be
    linked); lead owners, activity reps and rep managers missing from reps (only when the
    reps table has rows). Nothing is dropped.
    """
    reports = {
        name: validate_table(name, tables.table(name), tables.attributes if name == "leads" else ())
        for name in ("leads", "activities", "stage_changes", "orders", "reps")
    }
    lead_ids = _id_set(tables.leads, "lead_id")
    for name in ("activities", "stage_changes"):
        reports[name].problems.extend(
            _check_references(tables.table(name), "lead_id", lead_ids, "leads", "lead_id")
        )

    customer_ids = _id_set(tables.leads, "customer_id")
    if not tables.orders.empty:
        if customer_ids:
            reports["orders"].problems.extend(
                _check_references(tables.orders, "customer_id", customer_ids, "leads", "customer_id")
            )
        elif not tables.leads.empty:
            message = validation_text("reason.orders_unlinked")
            reports["orders"].problems.append(_problem(0, "customer_id", "", message, "unknown_reference"))

    rep_ids = _id_set(tables.reps, "rep_id")
    if rep_ids:
        for name, column in (("leads", "owner_rep_id"), ("activities", "rep_id"), ("reps", "manager_id")):
            reports[name].problems.extend(
                _check_references(tables.table(name), column, rep_ids, "reps", "rep_id")
            )
    for report in reports.values():
        report.problems.sort(key=lambda problem: problem.row)
    return reports


def _id_set(frame: pd.DataFrame, column: str) -> set[str]:
    if column not in frame.columns:
        return set()
    return {value for value in frame[column].tolist() if isinstance(value, str)}


def _check_references(
    frame: pd.DataFrame, column: str, known: set[str], target_table: str, target_column: str
) -> list[RowProblem]:
    if column not in frame.columns:
        return []
    problems = []
    for position, value in enumerate(frame[column].tolist()):
        if isinstance(value, str) and value not in known:
            message = validation_text(
                "reason.unknown_reference", column=column, target=f"{target_table}.{target_column}"
            )
            problems.append(_problem(position + 1, column, _cap(value), message, "unknown_reference"))
    return problems


# ---------------------------------------------------------------------------------------
# Small value helpers


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return False


def _is_number(value: object) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, float, np.integer, np.floating))


def _cap(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
