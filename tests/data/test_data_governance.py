"""Placeholders, title-only names and the duplicate merge policy."""

from __future__ import annotations

import pandas as pd
import pytest

from data.governance import (
    RowOrigin,
    clean_cells,
    is_placeholder,
    is_title_only_name,
    merge_duplicates,
    placeholder_set,
)
from data.schema import LEADS, REPS, STAGE_CHANGES
from data.validate import coerce_canonical_dtypes


@pytest.mark.parametrize(
    "text",
    ["Select", "unknown", "-", "N/A", "n/a", "无", "null", "--", "—", "未知", "请选择", "NULL", "?", "Ｎ/Ａ"],
)
def test_placeholders(text: str) -> None:
    assert is_placeholder(text)


@pytest.mark.parametrize("text", ["0", "-300", "百度", "No", "无锡", "N"])
def test_not_placeholders(text: str) -> None:
    assert not is_placeholder(text)


@pytest.mark.parametrize("text", ["张经理", "王总", "李老师", "欧阳先生", "陈女士", "刘主管", "赵总监"])
def test_title_only_names(text: str) -> None:
    assert is_title_only_name(text)


@pytest.mark.parametrize("text", ["张伟", "王小明", "欧阳娜娜", "Zhang Wei", "张经理人事部专员"])
def test_real_names(text: str) -> None:
    assert not is_title_only_name(text)


def test_clean_cells_counts_placeholders() -> None:
    cleaned = clean_cells(
        [" 百度 ", "N/A", None, '="00123"', "张经理", "待跟进"], placeholders=placeholder_set(["待跟进"])
    )
    assert cleaned.values == ["百度", None, None, "00123", "张经理", None]
    assert cleaned.placeholders == {1: "N/A", 5: "待跟进"}
    assert cleaned.unwrapped_formulas == 1


def test_clean_cells_person_names() -> None:
    cleaned = clean_cells(["张经理", "张伟"], person_name=True)
    assert cleaned.values == [None, "张伟"]
    assert cleaned.placeholders == {0: "张经理"}


def leads(rows: list[dict[str, object]]) -> pd.DataFrame:
    return coerce_canonical_dtypes("leads", pd.DataFrame(rows))


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_identical_duplicates_collapse() -> None:
    frame = leads([{"lead_id": "L1", "created_at": at("2024-03-01"), "channel": "百度"}] * 3)
    origins = [RowOrigin(False, row) for row in (1, 2, 3)]
    result = merge_duplicates(LEADS, frame, origins)
    assert len(result.frame) == 1
    assert [outcome.origin.row for outcome in result.collapsed] == [2, 3]
    assert result.merged == []
    assert result.origins == [RowOrigin(False, 1)]


def test_conflict_keeps_earliest_and_fills() -> None:
    frame = leads(
        [
            {"lead_id": "L1", "created_at": at("2024-03-05"), "channel": "微信", "region": "华东"},
            {"lead_id": "L1", "created_at": at("2024-03-01"), "channel": "百度"},
            {"lead_id": "L2", "created_at": at("2024-03-02")},
        ]
    )
    origins = [RowOrigin(True, 1), RowOrigin(False, 1), RowOrigin(False, 2)]
    result = merge_duplicates(LEADS, frame, origins)
    assert result.frame["lead_id"].tolist() == ["L1", "L2"]
    kept = result.frame.iloc[0]
    assert kept["created_at"] == at("2024-03-01")
    assert kept["channel"] == "百度"
    assert kept["region"] == "华东"
    assert result.filled_values == 1
    assert result.origins == [RowOrigin(False, 1), RowOrigin(False, 2)]
    [outcome] = result.merged
    assert outcome.origin == RowOrigin(True, 1)
    assert outcome.reason.startswith("duplicate of lead_id L1 (merged): kept row 1")
    assert "channel='微信' (kept '百度')" in outcome.reason


def test_tie_keeps_most_complete() -> None:
    frame = leads(
        [
            {"lead_id": "L1", "created_at": at("2024-03-01")},
            {"lead_id": "L1", "created_at": at("2024-03-01"), "channel": "百度", "region": "华东"},
        ]
    )
    result = merge_duplicates(LEADS, frame, [RowOrigin(False, 1), RowOrigin(False, 2)])
    assert result.frame["channel"].tolist() == ["百度"]
    assert [outcome.origin.row for outcome in result.merged] == [1]


def test_reps_without_time_keep_most_complete() -> None:
    reps = coerce_canonical_dtypes(
        "reps",
        pd.DataFrame(
            {
                "rep_id": ["R1", "R1"],
                "name": ["张伟", "张伟"],
                "tier": ["senior", "senior"],
                "capacity": [10, 10],
                "active": [True, True],
                "regions": [[], ["华东"]],
            }
        ),
    )
    result = merge_duplicates(REPS, reps, [RowOrigin(False, 1), RowOrigin(False, 2)])
    assert result.frame["regions"].tolist() == [["华东"]]
    assert "most complete" in result.merged[0].reason


def test_stage_change_duplicates_are_identical() -> None:
    frame = coerce_canonical_dtypes(
        "stage_changes",
        pd.DataFrame(
            {"lead_id": ["L1", "L1"], "stage": ["won", "won"], "changed_at": [at("2024-03-01")] * 2}
        ),
    )
    result = merge_duplicates(STAGE_CHANGES, frame, [RowOrigin(False, 1), RowOrigin(False, 2)])
    assert len(result.frame) == 1
    assert len(result.collapsed) == 1


def test_no_duplicates_is_unchanged() -> None:
    frame = leads(
        [{"lead_id": "L1", "created_at": at("2024-03-01")}, {"lead_id": "L2", "created_at": at("2024-03-01")}]
    )
    result = merge_duplicates(LEADS, frame, [RowOrigin(False, 1), RowOrigin(False, 2)])
    assert result.frame.equals(frame)
    assert result.removed == []
