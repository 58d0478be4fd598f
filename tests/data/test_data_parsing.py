"""Cell parsers: ids, timestamps, numbers, booleans, lists, currencies, categories and stages."""

from __future__ import annotations

import pandas as pd
import pytest

from data import parsing

SHANGHAI = "Asia/Shanghai"
MARCH_5_1402_UTC = pd.Timestamp("2024-03-05 06:02", tz="UTC")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-05T14:02:00+08:00", MARCH_5_1402_UTC),
        ("2024-03-05T06:02:00Z", MARCH_5_1402_UTC),
        ("2024-03-05 14:02", MARCH_5_1402_UTC),
        ("2024/3/5 14:02", MARCH_5_1402_UTC),
        ("2024/03/05 14:02:00", MARCH_5_1402_UTC),
        ("2024年3月5日 14:02", MARCH_5_1402_UTC),
        ("2024.3.5 14:02", MARCH_5_1402_UTC),
        ("2024-03-05", pd.Timestamp("2024-03-04 16:00", tz="UTC")),
        ("2024-3-5", pd.Timestamp("2024-03-04 16:00", tz="UTC")),
        ("20240305", pd.Timestamp("2024-03-04 16:00", tz="UTC")),
        ("2024年3月5日", pd.Timestamp("2024-03-04 16:00", tz="UTC")),
        ("25/03/2024", pd.Timestamp("2024-03-24 16:00", tz="UTC")),
        ("03/25/2024 14:02", pd.Timestamp("2024-03-25 06:02", tz="UTC")),
        ("05/05/2024", pd.Timestamp("2024-05-04 16:00", tz="UTC")),
        ("２０２４-03-05 14:02", MARCH_5_1402_UTC),
    ],
)
def test_timestamp_formats(text: str, expected: pd.Timestamp) -> None:
    parsed = parsing.parse_timestamps([text], timezone=SHANGHAI)
    assert parsed.errors == {}
    assert parsed.values == [expected]


def test_timestamps_are_utc_aware() -> None:
    parsed = parsing.parse_timestamps(["2024-03-05 14:02", "2024-03-05T14:02:00+08:00"], timezone=SHANGHAI)
    assert all(value.tzinfo is not None for value in parsed.values)  # type: ignore[union-attr]
    assert parsed.values[0] == parsed.values[1]
    assert parsed.coercions == {"assumed Asia/Shanghai": 1}


def test_ambiguous_day_month_is_rejected() -> None:
    parsed = parsing.parse_timestamps(["03/05/2024", "25/03/2024"], timezone=SHANGHAI)
    assert parsed.values[0] is None
    assert "ambiguous date '03/05/2024'" in parsed.errors[0]
    assert "2024-03-05" in parsed.errors[0]
    assert "2024-05-03" in parsed.errors[0]
    assert 1 not in parsed.errors


def test_explicit_format_resolves_ambiguity() -> None:
    parsed = parsing.parse_timestamps(["03/05/2024"], timezone=SHANGHAI, formats=["%d/%m/%Y"])
    assert parsed.values == [pd.Timestamp("2024-05-02 16:00", tz="UTC")]


def test_other_timezone_for_naive_values() -> None:
    parsed = parsing.parse_timestamps(["2024-03-05 14:02"], timezone="UTC")
    assert parsed.values == [pd.Timestamp("2024-03-05 14:02", tz="UTC")]


def test_unrecognized_date_is_rejected() -> None:
    parsed = parsing.parse_timestamps(["next Tuesday", "2024-13-45"], timezone=SHANGHAI)
    assert parsed.values == [None, None]
    assert "not a recognized date" in parsed.errors[0]
    assert 1 in parsed.errors


def test_excel_serial_only_when_enabled() -> None:
    from_xlsx = parsing.parse_timestamps(["45356.5"], timezone=SHANGHAI, excel_serial=True)
    from_csv = parsing.parse_timestamps(["45356.5"], timezone=SHANGHAI)
    assert from_xlsx.values == [pd.Timestamp("2024-03-05 04:00", tz="UTC")]
    assert from_xlsx.coercions["Excel serial date"] == 1
    assert from_csv.values == [None]
    assert "not a date" in from_csv.errors[0]


def test_excel_serial_out_of_range() -> None:
    parsed = parsing.parse_timestamps(["12"], timezone=SHANGHAI, excel_serial=True)
    assert parsed.values == [None]
    assert "1950-2099" in parsed.errors[0]


def test_daylight_saving_gaps_are_rejected() -> None:
    parsed = parsing.parse_timestamps(["2024-03-10 02:30", "2024-11-03 01:30"], timezone="America/New_York")
    assert parsed.values == [None, None]
    assert "does not exist" in parsed.errors[0]
    assert "occurs twice" in parsed.errors[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("¥1,234.50", 1234.5),
        ("￥1,234.50", 1234.5),
        ("1,234.5元", 1234.5),
        ("RMB 2,000", 2000.0),
        ("-300", -300.0),
        ("(300)", -300.0),
        ("１２３４.５", 1234.5),
        ("1.5万", 15000.0),
        ("12", 12.0),
        ("1e3", 1000.0),
    ],
)
def test_amounts(text: str, expected: float) -> None:
    parsed = parsing.parse_numbers([text])
    assert parsed.errors == {}
    assert parsed.values == [expected]


@pytest.mark.parametrize("text", ["1,5", "abc", "12 34", "$100", "inf"])
def test_invalid_amounts(text: str) -> None:
    parsed = parsing.parse_numbers([text])
    assert parsed.values == [None]
    assert text in parsed.errors[0]


def test_amount_coercions_are_counted() -> None:
    parsed = parsing.parse_numbers(["¥1,234.50", "5"])
    assert parsed.coercions == {"currency sign removed": 1, "thousands separators removed": 1}


def test_integers_must_be_whole() -> None:
    parsed = parsing.parse_numbers(["3", "3.5"], integer=True)
    assert parsed.values == [3, None]
    assert "whole number" in parsed.errors[1]


def test_ids_keep_exact_digits() -> None:
    parsed = parsing.parse_ids(["00123", "1234567890123456789", None, "Ａ００１", "123.0"])
    assert parsed.values == ["00123", "1234567890123456789", None, "A001", "123"]
    assert parsed.errors == {}


def test_scientific_id_is_rejected() -> None:
    parsed = parsing.parse_ids(["1.23457E+18", "1.234567890123457e+18"])
    assert parsed.values == [None, None]
    assert "scientific notation" in parsed.errors[0]
    assert 1 in parsed.errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("是", True),
        ("否", False),
        ("Y", True),
        ("n", False),
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        ("在岗", True),
        ("离职", False),
    ],
)
def test_booleans(text: str, expected: bool) -> None:
    parsed = parsing.parse_booleans([text])
    assert parsed.values == [expected]


def test_invalid_boolean() -> None:
    parsed = parsing.parse_booleans(["maybe"])
    assert parsed.values == [None]
    assert "yes/no" in parsed.errors[0]


@pytest.mark.parametrize(
    "text", ["华东;华南", "华东、华南", "华东,华南", "华东，华南", "华东； 华南;", "华东|华南|华东"]
)
def test_lists(text: str) -> None:
    assert parsing.parse_lists([text]).values == [["华东", "华南"]]


def test_missing_list_is_empty() -> None:
    assert parsing.parse_lists([None]).values == [[]]


def test_currencies() -> None:
    parsed = parsing.parse_currencies(["人民币", "usd", None, "¥", "dollars"])
    assert parsed.values == ["CNY", "USD", "CNY", "CNY", None]
    assert "dollars" in parsed.errors[4]
    assert parsed.coercions["default currency CNY"] == 1


def test_activity_types_and_directions() -> None:
    types = parsing.parse_categories(
        ["电话", "微信", "CALL", "上门拜访", "传真"],
        allowed=("call", "wechat", "email", "visit"),
        synonyms=parsing.ACTIVITY_TYPE_SYNONYMS,
        column="type",
        table="activities",
    )
    assert types.values == ["call", "wechat", "call", "visit", None]
    assert "[tables.activities.values.type]" in types.errors[4]
    directions = parsing.parse_categories(
        ["呼入", "呼出", "Inbound"], allowed=("inbound", "outbound"), synonyms=parsing.DIRECTION_SYNONYMS
    )
    assert directions.values == ["inbound", "outbound", "inbound"]


def test_value_map_wins_over_synonyms() -> None:
    parsed = parsing.parse_categories(
        ["来电"],
        allowed=("inbound", "outbound"),
        synonyms=parsing.DIRECTION_SYNONYMS,
        value_map={"来电": "outbound"},
    )
    assert parsed.values == ["outbound"]


def test_open_category_keeps_value() -> None:
    parsed = parsing.parse_categories(["百度ＳＥＭ", "微信"])
    assert parsed.values == ["百度SEM", "微信"]
    assert parsed.errors == {}


def test_stages_in_chinese_and_english() -> None:
    parsed = parsing.parse_stages(
        ["签约执行", "Won", "需求确认", "初步沟通", "输单", "丢单", "proposal", "阶段X"]
    )
    assert parsed.values == ["won", "won", "qualified", "contacted", "lost", "lost", "proposal", None]
    assert "unknown stage '阶段X'" in parsed.errors[7]
    assert "won/签约执行" in parsed.errors[7]


def test_stage_value_map() -> None:
    parsed = parsing.parse_stages(["意向客户"], value_map={"意向客户": "qualified"})
    assert parsed.values == ["qualified"]
