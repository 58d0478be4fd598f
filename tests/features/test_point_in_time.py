"""The cutoff rule: features see events strictly before the cutoff, never at or after it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.folder import CustomAttribute
from data.schema import ACTIVITY_TYPES, DIRECTIONS
from features.config import FeatureConfig
from features.pipeline import build_features
from leadscore.errors import DataValidationError
from tests.features.builders import at, make_tables, spine_of

CUTOFF = "2024-03-01 00:00"
LEADS = [
    {"lead_id": "L1", "created_at": "2024-01-01 00:00", "channel": "baidu", "customer_id": "C1"},
    {"lead_id": "L2", "created_at": "2024-02-01 00:00", "channel": "wecom", "customer_id": "C2"},
]


def _features(
    activities: list[dict[str, Any]], stage_changes: list[dict[str, Any]], orders: list[dict[str, Any]]
) -> pd.DataFrame:
    tables = make_tables(LEADS, activities, stage_changes, orders)
    spine = spine_of(("L1", CUTOFF), ("L2", CUTOFF))
    return build_features(spine, tables, FeatureConfig())


def test_activity_at_cutoff_is_excluded() -> None:
    before = {
        "lead_id": "L1",
        "occurred_at": "2024-02-29 23:59:59.999999",
        "type": "call",
        "direction": "inbound",
    }
    at_cutoff = {"lead_id": "L1", "occurred_at": CUTOFF, "type": "visit", "direction": "outbound"}

    features = _features([before, at_cutoff], [], [])

    row = features.iloc[0]
    assert row["activities_total"] == 1
    assert row["activities_call_7d"] == 1
    assert row["activities_visit_7d"] == 0
    assert row["contacted"] == 0
    assert row["days_since_last_activity"] == pytest.approx(1 / 86_400_000_000)


def test_window_start_is_inclusive() -> None:
    on_edge = {"lead_id": "L1", "occurred_at": "2024-02-23 00:00", "type": "call", "direction": "inbound"}
    just_outside = {
        "lead_id": "L1",
        "occurred_at": "2024-02-22 23:59:59",
        "type": "call",
        "direction": "inbound",
    }

    features = _features([on_edge, just_outside], [], [])

    assert features.iloc[0]["activities_7d"] == 1
    assert features.iloc[0]["activities_30d"] == 2


def test_stage_change_at_cutoff_is_excluded() -> None:
    stage_changes = [
        {"lead_id": "L1", "stage": "contacted", "changed_at": "2024-02-01 00:00"},
        {"lead_id": "L1", "stage": "won", "changed_at": CUTOFF},
    ]

    row = _features([], stage_changes, []).iloc[0]

    assert row["stage"] == "contacted"
    assert row["days_in_stage"] == 29
    assert row["furthest_stage_order"] == 1
    assert row["stage_changes_count"] == 1


def test_order_at_cutoff_is_excluded() -> None:
    orders = [
        {"customer_id": "C1", "ordered_at": "2024-01-10 00:00", "amount": 100.0},
        {"customer_id": "C1", "ordered_at": CUTOFF, "amount": 999.0},
    ]

    row = _features([], [], orders).iloc[0]

    assert row["customer_order_count"] == 1
    assert row["customer_total_net_value"] == 100.0
    assert row["is_existing_customer"] == 1


def test_timestamp_attribute_at_cutoff_is_missing() -> None:
    attributes = [CustomAttribute("trial_started", "timestamp")]
    leads = [
        {**LEADS[0], "trial_started": "2024-02-29 00:00"},
        {**LEADS[1], "trial_started": CUTOFF},
    ]
    tables = make_tables(leads, attributes=attributes)

    features = build_features(spine_of(("L1", CUTOFF), ("L2", CUTOFF)), tables, FeatureConfig())

    assert features["attr_trial_started"].iloc[0] == 1.0
    assert pd.isna(features["attr_trial_started"].iloc[1])


def test_cutoff_before_creation_is_rejected() -> None:
    tables = make_tables(LEADS)

    with pytest.raises(
        DataValidationError, match=r"cutoff before their lead was created, for example lead\(s\) \['L2'\]"
    ):
        build_features(spine_of(("L2", "2024-01-15 00:00")), tables, FeatureConfig())


# --- Property: events at or after the cutoff never change a feature --------------------

_CUTOFF_TIME = at(CUTOFF)
_MINUTES_BEFORE = st.integers(min_value=1, max_value=200 * 24 * 60)
# At the cutoff itself, or up to 200 days after it.
_MINUTES_AFTER = st.one_of(st.just(0), st.integers(min_value=0, max_value=200 * 24 * 60))


def _activity(minutes: st.SearchStrategy[int], sign: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda lead, offset, kind, direction, rep: {
            "lead_id": lead,
            "occurred_at": (_CUTOFF_TIME + sign * pd.Timedelta(minutes=offset)).isoformat(),
            "type": kind,
            "direction": direction,
            "rep_id": rep,
        },
        st.sampled_from(["L1", "L2"]),
        minutes,
        st.sampled_from(ACTIVITY_TYPES),
        st.sampled_from(DIRECTIONS),
        st.sampled_from(["R1", "R2", "R3", None]),
    )


def _stage_change(minutes: st.SearchStrategy[int], sign: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda lead, offset, stage: {
            "lead_id": lead,
            "stage": stage,
            "changed_at": (_CUTOFF_TIME + sign * pd.Timedelta(minutes=offset)).isoformat(),
        },
        st.sampled_from(["L1", "L2"]),
        minutes,
        st.sampled_from(["contacted", "qualified", "proposal", "negotiation", "won", "lost"]),
    )


def _order(minutes: st.SearchStrategy[int], sign: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda customer, offset, amount: {
            "customer_id": customer,
            "ordered_at": (_CUTOFF_TIME + sign * pd.Timedelta(minutes=offset)).isoformat(),
            "amount": amount,
        },
        st.sampled_from(["C1", "C2"]),
        minutes,
        st.floats(min_value=-500, max_value=5000, allow_nan=False).map(lambda value: round(value, 2)),
    )


def _events(minutes: st.SearchStrategy[int], sign: int) -> st.SearchStrategy[dict[str, list[dict[str, Any]]]]:
    return st.fixed_dictionaries(
        {
            "activities": st.lists(_activity(minutes, sign), max_size=8),
            "stage_changes": st.lists(
                _stage_change(minutes, sign),
                max_size=4,
                unique_by=lambda row: (row["lead_id"], row["stage"], row["changed_at"]),
            ),
            "orders": st.lists(_order(minutes, sign), max_size=5),
        }
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    past=_events(_MINUTES_BEFORE, -1),
    future_a=_events(_MINUTES_AFTER, 1),
    future_b=_events(_MINUTES_AFTER, 1),
)
def test_events_at_or_after_cutoff_change_nothing(
    past: dict[str, list[dict[str, Any]]],
    future_a: dict[str, list[dict[str, Any]]],
    future_b: dict[str, list[dict[str, Any]]],
) -> None:
    # Two different futures (events added, removed or changed) over the same past.
    with_a = _features(*(past[name] + future_a[name] for name in ("activities", "stage_changes", "orders")))
    with_b = _features(*(past[name] + future_b[name] for name in ("activities", "stage_changes", "orders")))
    past_only = _features(past["activities"], past["stage_changes"], past["orders"])

    pd.testing.assert_frame_equal(with_a, past_only, check_exact=True)
    pd.testing.assert_frame_equal(with_b, past_only, check_exact=True)
