"""Raw API or CRM records (one dict per row) to canonical tables, checked like a file import.

The service and batch jobs receive leads with their recent activities, stage changes and
orders as JSON objects. ``tables_from_records`` parses their timestamps (ISO 8601; naive
values are read in ``timezone``), normalizes stage names (Chinese names accepted), coerces
the canonical dtypes and runs the same validation as ``leadscore data import``. Any problem
raises ``DataValidationError`` listing the table, record number, field and value.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from data.folder import CanonicalTables, CustomAttribute
from data.schema import DEFAULT_TIMEZONE, get_table
from data.stages import normalize_stage
from data.validate import coerce_canonical_dtypes, empty_table, validate_tables
from leadscore.errors import DataValidationError, SchemaError

Record = Mapping[str, Any]
_MAX_SHOWN = 80


def tables_from_records(
    leads: Sequence[Record],
    activities: Sequence[Record] = (),
    stage_changes: Sequence[Record] = (),
    orders: Sequence[Record] = (),
    *,
    timezone: str = DEFAULT_TIMEZONE,
    attributes: Sequence[CustomAttribute] = (),
) -> CanonicalTables:
    """Return canonical tables built from record dicts, validated like an import.

    ``attributes`` declares custom lead fields; any other field outside the canonical model
    is rejected. Record numbers in errors count from 1 within each table.
    """
    declared = list(attributes)
    frames = {
        "leads": _frame("leads", leads, timezone, declared),
        "activities": _frame("activities", activities, timezone, []),
        "stage_changes": _frame("stage_changes", stage_changes, timezone, []),
        "orders": _frame("orders", orders, timezone, []),
    }
    tables = CanonicalTables(**frames, reps=empty_table("reps"), attributes=declared)
    problems = [
        report.format(max_examples=10) for report in validate_tables(tables).values() if not report.ok
    ]
    if problems:
        raise DataValidationError("invalid records:\n" + "\n".join(problems))
    return tables


def _frame(
    name: str, records: Sequence[Record], timezone: str, attributes: list[CustomAttribute]
) -> pd.DataFrame:
    rows = _checked_records(name, records)
    if not rows:
        return empty_table(name)
    frame = pd.DataFrame.from_records(rows)
    table = get_table(name)
    timestamp_columns = [column.name for column in table.columns if column.kind == "timestamp"]
    timestamp_columns += [attribute.name for attribute in attributes if attribute.type == "timestamp"]
    for column in timestamp_columns:
        if column in frame.columns:
            frame[column] = _parse_timestamps(name, column, frame[column].tolist(), timezone)
    if name == "stage_changes" and "stage" in frame.columns:
        frame["stage"] = [_stage_code(value) for value in frame["stage"].tolist()]
    try:
        return coerce_canonical_dtypes(name, frame, attributes)
    except SchemaError as error:
        raise DataValidationError(f"invalid {name} records: {error}") from None


def _checked_records(name: str, records: Iterable[Record]) -> list[dict[str, Any]]:
    rows = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            raise DataValidationError(
                f"{name} record {number} is a {type(record).__name__}; expected an object of field: value"
            )
        rows.append(dict(record))
    return rows


def _parse_timestamps(table: str, column: str, values: list[Any], timezone: str) -> pd.Series:
    parsed: list[object] = []
    for number, value in enumerate(values, start=1):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
            parsed.append(pd.NaT)
            continue
        try:
            timestamp = timestamp_in_utc(value, timezone)
        except DataValidationError as error:
            raise DataValidationError(f"{table} record {number}, field {column!r}: {error}") from None
        if timestamp is not None:
            parsed.append(timestamp)
            continue
        shown = str(value)[:_MAX_SHOWN]
        raise DataValidationError(
            f"{table} record {number}, field {column!r}: {shown!r} is not an ISO 8601 timestamp; "
            f"send for example '2024-03-01T09:30:00+08:00' (without an offset it is read in {timezone})"
        )
    return pd.Series(pd.DatetimeIndex(parsed, tz="UTC").as_unit("us"))


FIRST_SUPPORTED_YEAR = 1678
LAST_SUPPORTED_YEAR = 2261
"""Years of the timestamps accepted: the whole years that nanosecond arithmetic in pandas can hold."""


def timestamp_in_utc(value: Any, timezone: str) -> pd.Timestamp | None:
    """Return an ISO 8601 string, datetime or date as a UTC timestamp; None for any other value.

    A value without an offset is read in ``timezone``. Raises DataValidationError for a
    local time that a daylight-saving change skips or repeats, and for a year outside
    ``FIRST_SUPPORTED_YEAR`` to ``LAST_SUPPORTED_YEAR``.
    """
    try:
        timestamp = _read_timestamp(value)
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        timestamp = pd.Timestamp.max
    if timestamp is None:
        return None
    if not FIRST_SUPPORTED_YEAR <= timestamp.year <= LAST_SUPPORTED_YEAR:
        raise DataValidationError(
            f"{str(value)[:_MAX_SHOWN]!r} is outside the supported years "
            f"{FIRST_SUPPORTED_YEAR} to {LAST_SUPPORTED_YEAR}; check the date"
        )
    if timestamp.tzinfo is None:
        try:
            timestamp = timestamp.tz_localize(timezone)
        except ValueError:
            raise DataValidationError(
                f"{str(value)[:_MAX_SHOWN]!r} has no offset and is skipped or repeated by a daylight-saving "
                f"change in {timezone}; send it with the UTC offset it was recorded in, as +HH:MM"
            ) from None
    return timestamp.tz_convert("UTC")


def _read_timestamp(value: Any) -> pd.Timestamp | None:
    """Return a timestamp from an ISO 8601 string, datetime or date; None for anything else.

    Only ISO 8601 text is accepted, because forms like 03/05/2024 are ambiguous.
    """
    if isinstance(value, str):
        try:
            return pd.Timestamp(dt.datetime.fromisoformat(value.strip()))
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        return pd.Timestamp(value)
    if isinstance(value, dt.date):
        return pd.Timestamp(dt.datetime(value.year, value.month, value.day))
    return None


def _stage_code(value: Any) -> Any:
    if isinstance(value, str):
        code = normalize_stage(value)
        return code if code is not None else value
    return value
