"""Raw API or CRM records to canonical tables, validated like an import."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from data.folder import CustomAttribute
from data.records import tables_from_records
from leadscore.errors import DataValidationError

LEAD = {"lead_id": "L1", "created_at": "2024-03-01T09:30:00", "channel": "百度推广"}


def test_naive_times_use_the_timezone() -> None:
    tables = tables_from_records(
        [LEAD],
        [
            {
                "activity_id": "a1",
                "lead_id": "L1",
                "occurred_at": "2024-03-01T10:00:00+00:00",
                "type": "call",
                "direction": "outbound",
            },
            {
                "activity_id": "a2",
                "lead_id": "L1",
                "occurred_at": dt.datetime(2024, 3, 2, 8, 0),
                "type": "wechat",
                "direction": "inbound",
            },
        ],
    )

    assert tables.leads["created_at"].tolist() == [pd.Timestamp("2024-03-01 01:30", tz="UTC")]
    assert tables.activities["occurred_at"].tolist() == [
        pd.Timestamp("2024-03-01 10:00", tz="UTC"),
        pd.Timestamp("2024-03-02 00:00", tz="UTC"),
    ]
    assert str(tables.activities["occurred_at"].dtype) == "datetime64[us, UTC]"
    assert str(tables.leads["channel"].dtype) == "str"


def test_other_timezone_and_empty_tables() -> None:
    tables = tables_from_records([LEAD], timezone="UTC")

    assert tables.leads["created_at"].tolist() == [pd.Timestamp("2024-03-01 09:30", tz="UTC")]
    assert tables.activities.empty
    assert list(tables.orders.columns)[:4] == ["order_id", "customer_id", "ordered_at", "amount"]


def test_chinese_stage_names_are_normalized() -> None:
    tables = tables_from_records(
        [LEAD],
        stage_changes=[
            {"lead_id": "L1", "stage": "初步沟通", "changed_at": "2024-03-02T00:00:00"},
            {"lead_id": "L1", "stage": "签约执行", "changed_at": "2024-03-09T00:00:00"},
        ],
    )

    assert tables.stage_changes["stage"].tolist() == ["contacted", "won"]


def test_declared_attributes_are_kept() -> None:
    attributes = [CustomAttribute("trial_started", "timestamp"), CustomAttribute("tier", "category")]

    tables = tables_from_records(
        [{**LEAD, "trial_started": "2024-03-05T00:00:00+08:00", "tier": "A"}], attributes=attributes
    )

    assert tables.leads["trial_started"].tolist() == [pd.Timestamp("2024-03-04 16:00", tz="UTC")]
    assert tables.attributes == attributes


def test_invalid_timestamp_names_record_and_field() -> None:
    with pytest.raises(
        DataValidationError, match=r"leads record 2, field 'created_at': '03/05/2024' is not an ISO 8601"
    ):
        tables_from_records([LEAD, {"lead_id": "L2", "created_at": "03/05/2024"}])


def test_undeclared_field_is_rejected() -> None:
    with pytest.raises(
        DataValidationError, match=r"phone.*not part of table 'leads' and is not a declared custom"
    ):
        tables_from_records([{**LEAD, "phone": "13800000000"}])


def test_unknown_stage_is_rejected() -> None:
    with pytest.raises(DataValidationError, match=r"unknown stage"):
        tables_from_records(
            [LEAD], stage_changes=[{"lead_id": "L1", "stage": "maybe", "changed_at": "2024-03-02"}]
        )


def test_activity_of_unknown_lead_is_rejected() -> None:
    activity = {
        "activity_id": "a1",
        "lead_id": "L9",
        "occurred_at": "2024-03-02T00:00:00",
        "type": "call",
        "direction": "outbound",
    }

    with pytest.raises(DataValidationError, match=r"lead_id not found in leads.lead_id"):
        tables_from_records([LEAD], [activity])


def test_missing_required_field_is_rejected() -> None:
    activity = {
        "activity_id": "a1",
        "lead_id": "L1",
        "occurred_at": "2024-03-02T00:00:00",
        "direction": "outbound",
    }

    with pytest.raises(
        DataValidationError, match=r"invalid activities records: .*lacks required column\(s\): type"
    ):
        tables_from_records([LEAD], [activity])


def test_record_must_be_an_object() -> None:
    with pytest.raises(DataValidationError, match="leads record 1 is a list; expected an object"):
        tables_from_records([["L1", "2024-03-01"]])  # type: ignore[list-item]
