"""Lead attributes, stage, activity windows, first contact, reps and engagement trend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.folder import CustomAttribute
from features.catalog import attribute_feature_name
from features.config import FeatureConfig
from features.pipeline import build_features, feature_definitions
from leadscore.errors import ConfigError, SchemaError
from tests.features.builders import make_tables, spine_of


def _activity(
    lead: str, time: str, kind: str = "call", direction: str = "outbound", rep: str | None = "R1"
) -> dict[str, str | None]:
    return {"lead_id": lead, "occurred_at": time, "type": kind, "direction": direction, "rep_id": rep}


LEAD = {
    "lead_id": "L1",
    "created_at": "2024-01-01 02:00",  # 10:00 in Shanghai, a Monday
    "channel": "baidu",
    "campaign": "spring",
    "region": "east",
    "industry": "retail",
    "company_size": "50-199",
    "declared_budget": 20000.0,
}


def test_columns_follow_definitions() -> None:
    tables = make_tables([LEAD])
    config = FeatureConfig()

    features = build_features(spine_of(("L1", "2024-01-02 00:00")), tables, config)

    names = [definition.name for definition in feature_definitions(config, [])]
    assert list(features.columns) == ["lead_id", "cutoff", *names]
    assert len(names) == len(set(names))


def test_static_attributes_and_lead_age() -> None:
    tables = make_tables([LEAD])

    row = build_features(spine_of(("L1", "2024-01-03 02:00")), tables, FeatureConfig()).iloc[0]

    assert (row["channel"], row["campaign"], row["region"]) == ("baidu", "spring", "east")
    assert (row["industry"], row["company_size"]) == ("retail", "50-199")
    assert row["declared_budget"] == 20000.0
    assert row["lead_age_days"] == 2.0
    assert row["created_hour_local"] == 10
    assert row["created_weekday_local"] == 0


def test_window_counts_by_type_and_direction() -> None:
    activities = [
        _activity("L1", "2024-03-30 00:00", "call", "outbound"),
        _activity("L1", "2024-03-29 00:00", "wechat", "inbound"),
        _activity("L1", "2024-03-10 00:00", "wechat", "inbound"),
        _activity("L1", "2024-01-20 00:00", "demo", "outbound"),
    ]
    tables = make_tables([LEAD], activities)

    row = build_features(spine_of(("L1", "2024-04-01 00:00")), tables, FeatureConfig()).iloc[0]

    assert (row["activities_7d"], row["activities_30d"], row["activities_90d"]) == (2, 3, 4)
    assert (row["activities_inbound_7d"], row["activities_outbound_7d"]) == (1, 1)
    assert (row["activities_wechat_30d"], row["activities_demo_30d"], row["activities_demo_90d"]) == (2, 0, 1)
    assert row["activities_total"] == 4
    assert row["days_since_last_activity"] == 2.0
    assert row["days_since_last_inbound"] == 3.0
    # 2 per 7 days recently against 1 in the 23 days before.
    assert row["engagement_trend"] == pytest.approx(2 / 7 - 1 / 23)


def test_first_contact_time_and_sla() -> None:
    activities = [
        _activity("L1", "2024-01-01 03:00", "form", "inbound"),
        _activity("L1", "2024-01-03 14:00", "call", "outbound"),
    ]
    tables = make_tables([LEAD], activities)
    spine = spine_of(("L1", "2024-01-02 00:00"), ("L1", "2024-01-03 01:00"), ("L1", "2024-01-05 00:00"))

    features = build_features(spine, tables, FeatureConfig(first_contact_sla_hours=48.0))

    # Not contacted yet: hours waited so far, flagged once the wait passes 48 h.
    assert features["contacted"].tolist() == [0, 0, 1]
    assert features["hours_to_first_contact"].tolist() == [22.0, 47.0, 60.0]
    assert features["first_contact_sla_breached"].tolist() == [0, 0, 1]


def test_uncontacted_lead_breaches_sla_after_48_hours() -> None:
    tables = make_tables([LEAD])

    features = build_features(
        spine_of(("L1", "2024-01-03 02:00"), ("L1", "2024-01-03 02:00:01")), tables, FeatureConfig()
    )

    assert features["first_contact_sla_breached"].tolist() == [0, 1]
    assert features["hours_to_first_contact"].iloc[0] == 48.0


def test_distinct_reps_counts_first_touches() -> None:
    activities = [
        _activity("L1", "2024-01-02 00:00", rep="R1"),
        _activity("L1", "2024-01-03 00:00", rep="R1"),
        _activity("L1", "2024-01-04 00:00", rep="R2"),
        _activity("L1", "2024-01-05 00:00", rep=None),
        _activity("L1", "2024-01-06 00:00", rep="R3"),
    ]
    tables = make_tables([LEAD], activities)
    spine = spine_of(("L1", "2024-01-01 12:00"), ("L1", "2024-01-04 00:00"), ("L1", "2024-02-01 00:00"))

    features = build_features(spine, tables, FeatureConfig())

    assert features["distinct_reps"].tolist() == [0, 1, 3]


def test_stage_at_cutoff_and_days_in_stage() -> None:
    stage_changes = [
        {"lead_id": "L1", "stage": "contacted", "changed_at": "2024-01-02 00:00"},
        {"lead_id": "L1", "stage": "qualified", "changed_at": "2024-01-05 00:00"},
        {"lead_id": "L1", "stage": "qualified", "changed_at": "2024-01-07 00:00"},
        {"lead_id": "L1", "stage": "contacted", "changed_at": "2024-01-10 00:00"},
    ]
    tables = make_tables([LEAD], stage_changes=stage_changes)
    spine = spine_of(("L1", "2024-01-01 12:00"), ("L1", "2024-01-08 00:00"), ("L1", "2024-01-12 00:00"))

    features = build_features(spine, tables, FeatureConfig())

    assert features["stage"].tolist() == ["lead", "qualified", "contacted"]
    # A repeated entry of the same stage does not restart the clock.
    assert features["days_in_stage"].tolist() == [pytest.approx(10 / 24), 3.0, 2.0]
    assert features["stage_changes_count"].tolist() == [0, 3, 4]
    assert features["furthest_stage_order"].tolist() == [0, 2, 2]


def test_simultaneous_stage_changes_order_by_funnel() -> None:
    rows = [
        {"lead_id": "L1", "stage": "proposal", "changed_at": "2024-01-05 00:00"},
        {"lead_id": "L1", "stage": "qualified", "changed_at": "2024-01-05 00:00"},
    ]
    spine = spine_of(("L1", "2024-01-06 00:00"))

    forward = build_features(spine, make_tables([LEAD], stage_changes=rows), FeatureConfig())
    backward = build_features(spine, make_tables([LEAD], stage_changes=rows[::-1]), FeatureConfig())

    assert forward["stage"].tolist() == backward["stage"].tolist() == ["proposal"]


def test_lost_does_not_raise_furthest_stage() -> None:
    rows = [{"lead_id": "L1", "stage": "lost", "changed_at": "2024-01-05 00:00"}]
    tables = make_tables([LEAD], stage_changes=rows)

    row = build_features(spine_of(("L1", "2024-01-06 00:00")), tables, FeatureConfig()).iloc[0]

    assert row["stage"] == "lost"
    assert row["furthest_stage_order"] == 0


def test_custom_attributes_by_type() -> None:
    attributes = [
        CustomAttribute("Lead Quality", "category", post_contact=True),
        CustomAttribute("employees", "int"),
        CustomAttribute("has_website", "bool"),
        CustomAttribute("score", "float"),
        CustomAttribute("notes", "text"),
        CustomAttribute("来源城市", "category"),
    ]
    leads = [
        {
            **LEAD,
            "Lead Quality": "High",
            "employees": 120,
            "has_website": True,
            "score": 0.5,
            "notes": "x",
            "来源城市": "杭州",
        },
        {
            **LEAD,
            "lead_id": "L2",
            "Lead Quality": None,
            "employees": None,
            "has_website": None,
            "score": None,
        },
    ]
    tables = make_tables(leads, attributes=attributes)
    spine = spine_of(("L1", "2024-01-02 00:00"), ("L2", "2024-01-02 00:00"))

    at_intake = build_features(spine, tables, FeatureConfig())
    with_post_contact = build_features(spine, tables, FeatureConfig(include_post_contact=True))

    assert "attr_Lead_Quality" not in at_intake.columns
    assert "attr_notes" not in at_intake.columns
    assert at_intake["attr_employees"].tolist()[0] == 120.0
    assert np.isnan(at_intake["attr_employees"].tolist()[1])
    assert at_intake["attr_has_website"].tolist()[0] == 1.0
    assert at_intake["attr_score"].tolist()[0] == 0.5
    assert at_intake["attr_来源城市"].tolist()[0] == "杭州"
    assert with_post_contact["attr_Lead_Quality"].tolist()[0] == "High"
    definition = next(
        d
        for d in feature_definitions(FeatureConfig(include_post_contact=True), attributes)
        if d.attribute == "Lead Quality"
    )
    assert definition.post_contact
    assert definition.kind == "categorical"


def test_declared_attribute_without_column() -> None:
    tables = make_tables([LEAD])
    tables.attributes = [CustomAttribute("tier", "category")]

    with pytest.raises(SchemaError, match=r"custom attribute 'tier' is declared in leads\.attributes\.json"):
        build_features(spine_of(("L1", "2024-01-02 00:00")), tables, FeatureConfig())


def test_attribute_names_that_collide() -> None:
    attributes = [CustomAttribute("lead quality", "category"), CustomAttribute("lead-quality", "category")]

    with pytest.raises(ConfigError, match="both map to feature 'attr_lead_quality'"):
        feature_definitions(FeatureConfig(), attributes)


def test_attribute_feature_name_cleans_punctuation() -> None:
    assert attribute_feature_name("Lead Quality") == "attr_Lead_Quality"
    assert attribute_feature_name(" What: is [it]? ") == "attr_What_is_it"
    with pytest.raises(ConfigError, match="has no letters or digits"):
        attribute_feature_name("???")


def test_two_windows_or_one() -> None:
    tables = make_tables([LEAD], [_activity("L1", "2024-01-02 00:00")])
    spine = spine_of(("L1", "2024-01-03 00:00"))

    single = build_features(spine, tables, FeatureConfig(windows_days=(14,)))

    assert "engagement_trend" not in single.columns
    assert single["activities_14d"].tolist() == [1]
    assert "activities_7d" not in single.columns


def test_spine_index_and_order_are_kept() -> None:
    tables = make_tables([LEAD, {**LEAD, "lead_id": "L2", "channel": "wecom"}])
    spine = spine_of(("L2", "2024-01-05 00:00"), ("L1", "2024-01-02 00:00"), ("L2", "2024-01-03 00:00"))
    spine.index = pd.Index([10, 5, 7])

    features = build_features(spine, tables, FeatureConfig())

    assert features.index.tolist() == [10, 5, 7]
    assert features["channel"].tolist() == ["wecom", "baidu", "wecom"]
    assert features["lead_age_days"].tolist() == pytest.approx([3 + 22 / 24, 22 / 24, 1 + 22 / 24])
