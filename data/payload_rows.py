"""Typed rows of a small scoring payload, checked without building pandas tables.

``payload_rows`` converts the record lists of ``training.scorer.split_records`` into plain
Python values for the scorer's row path: text as ``str``, numbers as ``float``, booleans as
``bool`` and timestamps as int microseconds since the epoch (UTC). It reads the column kinds,
closed category sets and minimums from ``data.schema``, the same declarations that
``data.records.tables_from_records`` validates against.

It accepts a strict subset of what ``tables_from_records`` accepts and returns None for
everything else: any invalid value, and valid but unusual ones (integer ids, blank text,
numpy integers, dates outside 1900-2199, duplicate keys). The caller then takes the table
path, which raises its usual error or converts the unusual value itself.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from data.folder import CustomAttribute
from data.records import timestamp_in_utc
from data.schema import ACTIVITIES, LEADS, ORDERS, STAGE_CHANGES, Column, Table
from data.stages import normalize_stage
from data.validate import attribute_column
from leadscore.errors import DataValidationError

Record = Mapping[str, Any]

# Timestamps outside these years take the table path: every microsecond value in between,
# and every difference of two, is exact in float64, as the table path's arithmetic needs.
_FIRST_YEAR = 1900
_LAST_YEAR = 2199
# Whole numbers up to this size convert to float64 without rounding.
_MAX_EXACT_INT = 2**53


class _UnsupportedError(Exception):
    """A record the row path does not convert; the table path handles it instead."""


@dataclass(frozen=True)
class ActivityRow:
    """One activity of a lead: time (microseconds, UTC), type, direction and rep."""

    occurred_at: int
    type: str
    direction: str
    rep_id: str | None


@dataclass(frozen=True)
class StageChangeRow:
    """One stage change of a lead: time (microseconds, UTC) and stage code."""

    changed_at: int
    stage: str


@dataclass(frozen=True)
class OrderRow:
    """One order line of a customer: time (microseconds, UTC) and amount (negative for refunds)."""

    ordered_at: int
    amount: float


@dataclass
class LeadRow:
    """One lead with its own events.

    ``values`` contains every canonical lead column and declared custom attribute, None
    when missing; timestamp attributes are microseconds since the epoch.
    """

    lead_id: str
    created_at: int
    values: dict[str, Any]
    activities: list[ActivityRow] = field(default_factory=list)
    stage_changes: list[StageChangeRow] = field(default_factory=list)

    @property
    def customer_id(self) -> str | None:
        customer: str | None = self.values.get("customer_id")
        return customer


@dataclass
class PayloadRows:
    """The leads of a payload in input order, and the order lines per customer_id."""

    leads: list[LeadRow]
    orders_by_customer: dict[str, list[OrderRow]]


def payload_rows(
    leads: Sequence[Record],
    activities: Sequence[Record] = (),
    stage_changes: Sequence[Record] = (),
    orders: Sequence[Record] = (),
    *,
    timezone: str,
    attributes: Sequence[CustomAttribute] = (),
) -> PayloadRows | None:
    """Return the payload as typed rows, or None when the table path must handle it.

    Nested records must carry their lead's ``lead_id`` and every order a ``customer_id``, as
    ``training.scorer.split_records`` fills them in.
    """
    try:
        return _convert_payload(leads, activities, stage_changes, orders, timezone, attributes)
    except _UnsupportedError:
        return None


def _convert_payload(
    leads: Sequence[Record],
    activities: Sequence[Record],
    stage_changes: Sequence[Record],
    orders: Sequence[Record],
    timezone: str,
    attributes: Sequence[CustomAttribute],
) -> PayloadRows:
    lead_columns = _lead_columns(attributes)
    rows: dict[str, LeadRow] = {}
    for record in leads:
        values = _converted(record, lead_columns, timezone)
        lead_id = values["lead_id"]
        if lead_id in rows:
            raise _UnsupportedError
        rows[lead_id] = LeadRow(lead_id, values["created_at"], values)

    activity_columns = _table_columns(ACTIVITIES)
    activity_ids: set[str] = set()
    for record in activities:
        values = _converted(record, activity_columns, timezone)
        if values["activity_id"] in activity_ids:
            raise _UnsupportedError
        activity_ids.add(values["activity_id"])
        _lead_of(rows, values).activities.append(
            ActivityRow(values["occurred_at"], values["type"], values["direction"], values["rep_id"])
        )

    stage_columns = _table_columns(STAGE_CHANGES)
    stage_keys: set[tuple[str, str, int]] = set()
    for record in stage_changes:
        stage = record.get("stage")
        code = normalize_stage(stage) if isinstance(stage, str) else None
        values = _converted({**record, "stage": code if code is not None else stage}, stage_columns, timezone)
        key = (values["lead_id"], values["stage"], values["changed_at"])
        if key in stage_keys:
            raise _UnsupportedError
        stage_keys.add(key)
        _lead_of(rows, values).stage_changes.append(StageChangeRow(values["changed_at"], values["stage"]))

    customers = {row.customer_id for row in rows.values() if row.customer_id is not None}
    order_columns = _table_columns(ORDERS)
    order_ids: set[str] = set()
    orders_by_customer: dict[str, list[OrderRow]] = {}
    for record in orders:
        values = _converted(record, order_columns, timezone)
        if values["order_id"] in order_ids or values["customer_id"] not in customers:
            raise _UnsupportedError
        order_ids.add(values["order_id"])
        line = OrderRow(values["ordered_at"], values["amount"])
        orders_by_customer.setdefault(values["customer_id"], []).append(line)
    return PayloadRows(list(rows.values()), orders_by_customer)


def _lead_columns(attributes: Sequence[CustomAttribute]) -> dict[str, Column]:
    columns = _table_columns(LEADS)
    for attribute in attributes:
        if attribute.name in columns:
            raise _UnsupportedError
        columns[attribute.name] = attribute_column(attribute)
    return columns


def _table_columns(table: Table) -> dict[str, Column]:
    return {column.name: column for column in table.columns}


def _lead_of(rows: Mapping[str, LeadRow], values: Mapping[str, Any]) -> LeadRow:
    lead = rows.get(values["lead_id"])
    if lead is None:
        raise _UnsupportedError
    return lead


def _converted(record: Record, columns: Mapping[str, Column], timezone: str) -> dict[str, Any]:
    """Return every column's converted value (None when missing), raising on any other key."""
    if any(key not in columns for key in record):
        raise _UnsupportedError
    return {name: _value(column, record.get(name), timezone) for name, column in columns.items()}


def _value(column: Column, value: Any, timezone: str) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if column.required:
            raise _UnsupportedError
        return None
    kind = column.kind
    if kind in ("id", "category", "text"):
        return _text(column, value)
    if kind == "timestamp":
        return _micros(value, timezone)
    if kind in ("float", "int"):
        return _number(column, value)
    if kind == "bool" and isinstance(value, bool):
        return value
    raise _UnsupportedError


def _text(column: Column, value: Any) -> str:
    # A str subclass (an Enum member, say) may print differently from its value, and the
    # table path stores str(value), so only plain str takes the row path.
    if type(value) is not str or not value.strip():
        raise _UnsupportedError
    if column.kind == "id" and value != value.strip():
        raise _UnsupportedError
    if column.allowed is not None and value not in column.allowed:
        raise _UnsupportedError
    return value


def _number(column: Column, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _UnsupportedError
    if isinstance(value, int) and abs(value) >= _MAX_EXACT_INT:
        raise _UnsupportedError
    if column.kind == "int" and isinstance(value, float) and abs(value) >= _MAX_EXACT_INT:
        raise _UnsupportedError
    if math.isinf(value) or (column.kind == "int" and not float(value).is_integer()):
        raise _UnsupportedError
    if column.min_value is not None and value < column.min_value:
        raise _UnsupportedError
    return int(value) if column.kind == "int" else float(value)


def _micros(value: Any, timezone: str) -> int:
    if not isinstance(value, str | dt.datetime) or isinstance(value, pd.Timestamp):
        raise _UnsupportedError
    try:
        timestamp = timestamp_in_utc(value, timezone)
    except (ValueError, DataValidationError):
        # The table path raises the error with the record and field named.
        raise _UnsupportedError from None
    if timestamp is None or not _FIRST_YEAR <= timestamp.year <= _LAST_YEAR:
        raise _UnsupportedError
    return int(timestamp.value) // 1000
