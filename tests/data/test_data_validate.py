"""Canonical dtypes, row validation and cross-table checks, with cases derived from data.schema."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from data.folder import CanonicalTables, CustomAttribute, read_data_dir, write_table
from data.schema import TABLE_NAMES, TABLES, Column
from data.validate import (
    coerce_canonical_dtypes,
    empty_table,
    storage_dtype,
    validate_table,
    validate_tables,
)
from leadscore.errors import SchemaError

UTC_TIME = pd.Timestamp("2024-03-05 06:02", tz="UTC")


def good_value(column: Column) -> object:
    """Return a valid value for ``column``, derived from its kind and allowed set."""
    if column.allowed:
        return column.allowed[0]
    return {
        "id": f"{column.name}-0001",
        "text": "some text",
        "category": "some category",
        "timestamp": UTC_TIME,
        "float": 10.5,
        "int": 3,
        "bool": True,
        "list": ["a", "b"],
    }[column.kind]


def good_frame(table_name: str, rows: int = 2) -> pd.DataFrame:
    """Return ``rows`` valid rows of ``table_name`` with distinct keys."""
    table = TABLES[table_name]
    data: dict[str, list[object]] = {}
    for column in table.columns:
        values = [good_value(column) for _ in range(rows)]
        if column.kind == "id":
            values = [f"{column.name}-{index:04d}" for index in range(rows)]
        if column.kind == "timestamp":
            values = [UTC_TIME + pd.Timedelta(hours=index) for index in range(rows)]
        data[column.name] = values
    return pd.DataFrame(data)


def consistent_tables() -> CanonicalTables:
    """Return one lead with an activity, a stage change, an order and a rep, all linked."""
    leads = good_frame("leads", 1).assign(lead_id="L1", customer_id="C1", owner_rep_id="R1")
    activities = good_frame("activities", 1).assign(lead_id="L1", rep_id="R1")
    stage_changes = good_frame("stage_changes", 1).assign(lead_id="L1")
    orders = good_frame("orders", 1).assign(customer_id="C1")
    reps = good_frame("reps", 1).assign(rep_id="R1", manager_id=None)
    return CanonicalTables(
        leads=coerce_canonical_dtypes("leads", leads),
        activities=coerce_canonical_dtypes("activities", activities),
        stage_changes=coerce_canonical_dtypes("stage_changes", stage_changes),
        orders=coerce_canonical_dtypes("orders", orders),
        reps=coerce_canonical_dtypes("reps", reps),
    )


# ---------------------------------------------------------------------------------------
# Storage dtypes


@pytest.mark.parametrize("table_name", TABLE_NAMES)
def test_empty_table_has_storage_dtypes(table_name: str) -> None:
    frame = empty_table(table_name)
    table = TABLES[table_name]
    assert list(frame.columns) == list(table.column_names)
    assert len(frame) == 0
    for column in table.columns:
        assert str(frame[column.name].dtype) == storage_dtype(column.kind, required=column.required), (
            column.name
        )


@pytest.mark.parametrize("table_name", TABLE_NAMES)
def test_coerced_frame_survives_parquet(table_name: str, tmp_path: Path) -> None:
    frame = coerce_canonical_dtypes(table_name, good_frame(table_name))
    write_table(frame, tmp_path, table_name)
    back = pd.read_parquet(tmp_path / f"{table_name}.parquet")
    again = coerce_canonical_dtypes(table_name, back)
    assert list(again.dtypes.astype(str)) == list(frame.dtypes.astype(str))
    assert again.drop(columns=["regions", "skills"], errors="ignore").equals(
        frame.drop(columns=["regions", "skills"], errors="ignore")
    )
    if table_name == "reps":
        assert again["regions"].tolist() == [["a", "b"], ["a", "b"]]


@pytest.mark.parametrize("table_name", TABLE_NAMES)
def test_coerce_is_idempotent(table_name: str) -> None:
    once = coerce_canonical_dtypes(table_name, good_frame(table_name))
    twice = coerce_canonical_dtypes(table_name, once)
    assert list(twice.dtypes.astype(str)) == list(once.dtypes.astype(str))


def test_read_data_dir_fills_absent_tables(tmp_path: Path) -> None:
    write_table(coerce_canonical_dtypes("leads", good_frame("leads")), tmp_path, "leads")
    tables = read_data_dir(tmp_path)
    assert len(tables.leads) == 2
    assert tables.orders.empty
    assert list(tables.orders.columns) == list(TABLES["orders"].column_names)


def test_coerce_adds_missing_optional_columns() -> None:
    frame = pd.DataFrame({"lead_id": ["007"], "created_at": [UTC_TIME]})
    coerced = coerce_canonical_dtypes("leads", frame)
    assert list(coerced.columns) == list(TABLES["leads"].column_names)
    assert coerced["lead_id"].tolist() == ["007"]
    assert coerced["channel"].isna().all()


def test_coerce_converts_integer_ids_to_strings() -> None:
    frame = pd.DataFrame({"lead_id": [1234567890123456789], "created_at": [UTC_TIME]})
    coerced = coerce_canonical_dtypes("leads", frame)
    assert coerced["lead_id"].tolist() == ["1234567890123456789"]


def test_coerce_converts_offsets_to_utc() -> None:
    frame = pd.DataFrame(
        {"lead_id": ["1"], "created_at": [pd.Timestamp("2024-03-05 14:02", tz="Asia/Shanghai")]}
    )
    coerced = coerce_canonical_dtypes("leads", frame)
    assert str(coerced["created_at"].dtype) == "datetime64[us, UTC]"
    assert coerced["created_at"].iloc[0] == UTC_TIME


def test_coerce_rejects_float_ids() -> None:
    frame = pd.DataFrame({"lead_id": [1.0, None], "created_at": [UTC_TIME, UTC_TIME]})
    with pytest.raises(SchemaError, match=r"'lead_id'.*float64.*strings"):
        coerce_canonical_dtypes("leads", frame)


def test_coerce_rejects_naive_timestamps() -> None:
    frame = pd.DataFrame({"lead_id": ["1"], "created_at": [pd.Timestamp("2024-03-05")]})
    with pytest.raises(SchemaError, match=r"'created_at'.*naive"):
        coerce_canonical_dtypes("leads", frame)


def test_coerce_rejects_text_timestamps() -> None:
    frame = pd.DataFrame({"lead_id": ["1"], "created_at": ["2024-03-05"]})
    with pytest.raises(SchemaError, match=r"'created_at'.*parse_timestamps"):
        coerce_canonical_dtypes("leads", frame)


def test_coerce_rejects_missing_required_int() -> None:
    frame = good_frame("reps").assign(capacity=[3, None])
    with pytest.raises(SchemaError, match=r"'capacity'.*missing values"):
        coerce_canonical_dtypes("reps", frame)


def test_coerce_rejects_text_lists() -> None:
    frame = good_frame("reps").assign(regions=["华东;华南", None])
    with pytest.raises(SchemaError, match=r"'regions'.*parse_lists"):
        coerce_canonical_dtypes("reps", frame)


def test_coerce_keeps_declared_attribute_dtype() -> None:
    attributes = [CustomAttribute("visits", "int", post_contact=True)]
    frame = good_frame("leads").assign(visits=[2.0, None])
    coerced = coerce_canonical_dtypes("leads", frame, attributes)
    assert str(coerced["visits"].dtype) == "Int64"
    assert coerced["visits"].tolist()[0] == 2


# ---------------------------------------------------------------------------------------
# Cases derived from the schema declaration


@pytest.mark.parametrize("table_name", TABLE_NAMES)
def test_good_rows_have_no_problems(table_name: str) -> None:
    report = validate_table(table_name, good_frame(table_name))
    assert report.ok, report.format()
    assert report.rows == 2


REQUIRED = [(table.name, column) for table in TABLES.values() for column in table.columns if column.required]


@pytest.mark.parametrize(("table_name", "column"), REQUIRED, ids=lambda value: getattr(value, "name", value))
def test_missing_required_column_raises(table_name: str, column: Column) -> None:
    frame = good_frame(table_name).drop(columns=[column.name])
    with pytest.raises(SchemaError) as raised:
        validate_table(table_name, frame)
    message = str(raised.value)
    assert column.name in message
    for alias in column.aliases:
        assert alias in message
    with pytest.raises(SchemaError, match=column.name):
        coerce_canonical_dtypes(table_name, frame)


@pytest.mark.parametrize(("table_name", "column"), REQUIRED, ids=lambda value: getattr(value, "name", value))
def test_null_required_value_is_problem(table_name: str, column: Column) -> None:
    frame = good_frame(table_name)
    frame[column.name] = frame[column.name].astype("object")
    frame.at[1, column.name] = None
    report = validate_table(table_name, frame)
    if column.kind == "list":
        pytest.skip("a missing list is an empty list")
    codes = [(problem.row, problem.column, problem.code) for problem in report.problems]
    assert (2, column.name, "missing_required") in codes


CLOSED = [(table.name, column) for table in TABLES.values() for column in table.columns if column.allowed]


@pytest.mark.parametrize(("table_name", "column"), CLOSED, ids=lambda value: getattr(value, "name", value))
def test_value_outside_closed_set_is_problem(table_name: str, column: Column) -> None:
    frame = good_frame(table_name)
    frame.at[0, column.name] = "not-a-member"
    report = validate_table(table_name, frame)
    assert [problem.row for problem in report.problems] == [1]
    assert report.problems[0].column == column.name
    assert report.problems[0].code in ("not_allowed", "unknown_stage")
    assert column.allowed is not None
    assert column.allowed[-1] in report.problems[0].reason


MINIMUMS = [
    (table.name, column)
    for table in TABLES.values()
    for column in table.columns
    if column.min_value is not None
]


@pytest.mark.parametrize(("table_name", "column"), MINIMUMS, ids=lambda value: getattr(value, "name", value))
def test_value_below_minimum_is_problem(table_name: str, column: Column) -> None:
    assert column.min_value is not None
    frame = good_frame(table_name)
    frame.at[1, column.name] = column.min_value - 1
    report = validate_table(table_name, frame)
    assert [(problem.row, problem.code) for problem in report.problems] == [(2, "below_minimum")]


TIMESTAMPS = [
    (table.name, column)
    for table in TABLES.values()
    for column in table.columns
    if column.kind == "timestamp"
]


@pytest.mark.parametrize(
    ("table_name", "column"), TIMESTAMPS, ids=lambda value: getattr(value, "name", value)
)
def test_naive_timestamp_is_problem(table_name: str, column: Column) -> None:
    frame = good_frame(table_name)
    frame[column.name] = frame[column.name].astype("object")
    frame.at[0, column.name] = dt.datetime(2024, 3, 5, 14, 2)
    report = validate_table(table_name, frame)
    assert [(problem.row, problem.code) for problem in report.problems] == [(1, "naive_timestamp")]


IDS = [(table.name, column) for table in TABLES.values() for column in table.columns if column.kind == "id"]


@pytest.mark.parametrize(("table_name", "column"), IDS, ids=lambda value: getattr(value, "name", value))
def test_float_id_is_problem(table_name: str, column: Column) -> None:
    frame = good_frame(table_name)
    frame[column.name] = frame[column.name].astype("object")
    frame.at[0, column.name] = 123.0
    report = validate_table(table_name, frame)
    problems = [(problem.row, problem.column, problem.code) for problem in report.problems]
    assert (1, column.name, "wrong_type") in problems


@pytest.mark.parametrize("table_name", TABLE_NAMES)
def test_duplicate_key_is_problem(table_name: str) -> None:
    frame = good_frame(table_name)
    duplicated = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    report = validate_table(table_name, duplicated)
    assert [(problem.row, problem.code) for problem in report.problems] == [(3, "duplicate_key")]
    assert "first at row 1" in report.problems[0].reason


# ---------------------------------------------------------------------------------------
# Other row checks


def test_naive_datetime_column_is_problem() -> None:
    frame = good_frame("leads").assign(created_at=pd.to_datetime(["2024-03-05", "2024-03-06"]))
    report = validate_table("leads", frame)
    assert [problem.code for problem in report.problems] == ["naive_timestamp", "naive_timestamp"]


def test_chinese_stage_name_suggests_code() -> None:
    frame = good_frame("stage_changes").assign(stage=["签约执行", "won"])
    report = validate_table("stage_changes", frame)
    assert len(report.problems) == 1
    assert "'won'" in report.problems[0].reason


def test_source_rows_number_the_problems() -> None:
    frame = good_frame("leads").assign(declared_budget=[-1.0, 5.0])
    report = validate_table("leads", frame, source_rows=[7, 9])
    assert [problem.row for problem in report.problems] == [7]


def test_undeclared_column_is_problem() -> None:
    frame = good_frame("leads").assign(budget_band=["a", "b"])
    report = validate_table("leads", frame)
    assert [(problem.row, problem.column, problem.code) for problem in report.problems] == [
        (0, "budget_band", "undeclared_column")
    ]
    declared = validate_table("leads", frame, [CustomAttribute("budget_band", "category")])
    assert declared.ok


def test_attribute_values_are_checked() -> None:
    frame = good_frame("leads").assign(visits=[2, "many"])
    report = validate_table("leads", frame, [CustomAttribute("visits", "int")])
    assert [(problem.row, problem.column, problem.code) for problem in report.problems] == [
        (2, "visits", "wrong_type")
    ]


def test_report_format_lists_counts_and_examples() -> None:
    frame = good_frame("leads").assign(declared_budget=[-1.0, -2.0])
    text = validate_table("leads", frame).format()
    assert "2 problems in 2 rows" in text
    assert "declared_budget: below_minimum x2" in text
    assert "row 1" in text


# ---------------------------------------------------------------------------------------
# Cross-table checks


def test_consistent_tables_have_no_problems() -> None:
    reports = validate_tables(consistent_tables())
    assert set(reports) == set(TABLE_NAMES)
    for report in reports.values():
        assert report.ok, report.format()


def test_unknown_lead_ids_are_reported_not_dropped() -> None:
    tables = consistent_tables()
    tables.activities = coerce_canonical_dtypes(
        "activities",
        pd.concat([tables.activities, tables.activities.assign(activity_id="A2", lead_id="L404")]),
    )
    tables.stage_changes = tables.stage_changes.assign(lead_id="L405")
    reports = validate_tables(tables)
    assert len(tables.activities) == 2
    assert [(problem.row, problem.value) for problem in reports["activities"].problems] == [(2, "L404")]
    assert [(problem.row, problem.value) for problem in reports["stage_changes"].problems] == [(1, "L405")]
    assert "not found in leads.lead_id" in reports["activities"].problems[0].reason


def test_unknown_customer_ids_are_reported() -> None:
    tables = consistent_tables()
    tables.orders = tables.orders.assign(customer_id="C404")
    reports = validate_tables(tables)
    assert [(problem.column, problem.value) for problem in reports["orders"].problems] == [
        ("customer_id", "C404")
    ]


def test_orders_without_linked_leads_are_reported() -> None:
    tables = consistent_tables()
    tables.leads = tables.leads.assign(customer_id=pd.Series([None], dtype="str"))
    reports = validate_tables(tables)
    assert [(problem.row, problem.code) for problem in reports["orders"].problems] == [
        (0, "unknown_reference")
    ]


def test_unknown_reps_are_reported() -> None:
    tables = consistent_tables()
    tables.leads = tables.leads.assign(owner_rep_id="R404")
    tables.reps = tables.reps.assign(manager_id="R405")
    reports = validate_tables(tables)
    assert [problem.value for problem in reports["leads"].problems] == ["R404"]
    assert [problem.value for problem in reports["reps"].problems] == ["R405"]


def test_empty_reps_skip_rep_references() -> None:
    tables = consistent_tables()
    tables.reps = empty_table("reps")
    reports = validate_tables(tables)
    assert reports["leads"].ok
    assert reports["activities"].ok
