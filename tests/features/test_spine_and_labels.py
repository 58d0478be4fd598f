"""Training and scoring spines, and labels from the window after each cutoff."""

from __future__ import annotations

import pandas as pd
import pytest

from data.folder import CanonicalTables
from features.config import FeatureConfig
from features.labels import attach_labels
from features.spine import latest_event_time, scoring_spine, training_spine
from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError
from tests.features.builders import at, make_tables, spine_of


def _history() -> CanonicalTables:
    return make_tables(
        leads=[
            {"lead_id": "open", "created_at": "2024-01-01 00:00"},
            {"lead_id": "won", "created_at": "2024-01-01 00:00", "customer_id": "C1"},
            {"lead_id": "fast", "created_at": "2024-01-01 00:00"},
            {"lead_id": "late", "created_at": "2024-06-24 23:30"},
        ],
        activities=[
            {"lead_id": "open", "occurred_at": "2024-06-25 00:00", "type": "call", "direction": "outbound"},
        ],
        stage_changes=[
            {"lead_id": "won", "stage": "won", "changed_at": "2024-03-01 00:00"},
            {"lead_id": "fast", "stage": "lost", "changed_at": "2024-01-01 00:30"},
        ],
        orders=[{"customer_id": "C1", "ordered_at": "2024-03-02 00:00", "amount": 500.0}],
    )


def test_training_spine_snapshots_while_open() -> None:
    spine = training_spine(_history(), FeatureConfig())

    open_cutoffs = spine.loc[spine["lead_id"] == "open", "cutoff"].tolist()
    assert open_cutoffs[0] == at("2024-01-01 01:00")
    assert open_cutoffs[1:] == [at("2024-01-01") + pd.Timedelta(days=30 * k) for k in range(1, 6)]
    # The sixth periodic snapshot (day 180, 2024-06-29) is after the end of the history.
    assert len(open_cutoffs) == 6


def test_training_spine_stops_at_close() -> None:
    spine = training_spine(_history(), FeatureConfig())

    won_cutoffs = spine.loc[spine["lead_id"] == "won", "cutoff"].tolist()
    assert won_cutoffs == [at("2024-01-01 01:00"), at("2024-01-31"), at("2024-03-01")]
    assert "fast" not in set(spine["lead_id"])
    assert "late" not in set(spine["lead_id"])


def test_training_spine_dtypes_and_order() -> None:
    spine = training_spine(_history(), FeatureConfig(max_snapshots=0))

    assert list(spine.columns) == ["lead_id", "cutoff"]
    assert str(spine["cutoff"].dtype) == "datetime64[us, UTC]"
    assert spine["lead_id"].tolist() == ["open", "won"]


def test_terminal_stage_at_cutoff_keeps_lead_open() -> None:
    tables = _history()
    config = FeatureConfig(first_cutoff_hours=0.5, max_snapshots=0)

    spine = training_spine(tables, config)

    assert "fast" in set(spine["lead_id"])


def test_scoring_spine_open_leads_only() -> None:
    tables = _history()

    spine = scoring_spine(tables, at("2024-03-01 00:00"))

    # "won" closes exactly at as_of, so it is still open there; "late" is not created yet.
    assert spine["lead_id"].tolist() == ["open", "won"]
    assert (spine["cutoff"] == at("2024-03-01")).all()


def test_scoring_spine_excludes_closed_and_uncreated() -> None:
    spine = scoring_spine(_history(), at("2024-03-01 00:00:01"))

    assert spine["lead_id"].tolist() == ["open"]


def test_scoring_spine_rejects_naive_time() -> None:
    with pytest.raises(DataValidationError, match=r"as_of 2024-03-01T00:00:00 has no time zone"):
        scoring_spine(_history(), pd.Timestamp("2024-03-01"))


def test_latest_event_time_spans_tables() -> None:
    assert latest_event_time(_history()) == at("2024-06-25 00:00")


def test_latest_event_time_empty_history() -> None:
    with pytest.raises(InsufficientDataError, match="no leads or events"):
        latest_event_time(make_tables([]))


def test_labels_conversion_window_bounds() -> None:
    tables = _history()
    config = FeatureConfig(horizon_days=30)
    spine = spine_of(
        ("won", "2024-03-01 00:00"),  # won exactly at the cutoff: label side
        ("won", "2024-01-31 00:00"),  # won exactly at cutoff + 30 days: inside
        ("won", "2024-01-30 23:59:59"),  # won 1 s after the window end
        ("open", "2024-01-01 01:00"),
    )

    labelled = attach_labels(spine, tables, config)

    assert labelled["converted"].tolist() == [1, 1, 0, 0]
    assert labelled["converted"].dtype == "int8"


def test_labels_value_and_completeness() -> None:
    tables = _history()
    config = FeatureConfig(horizon_days=90, ltv_horizon_days=30)
    spine = spine_of(("won", "2024-03-01 00:00"), ("won", "2024-01-01 01:00"), ("open", "2024-05-01 00:00"))

    labelled = attach_labels(spine, tables, config)

    assert labelled["value"].tolist() == [500.0, 0.0, 0.0]
    assert labelled["label_complete"].tolist() == [True, True, False]
    assert labelled["value_complete"].tolist() == [True, True, True]
    assert list(labelled.columns[:2]) == ["lead_id", "cutoff"]


def test_labels_refunds_netted_with_explicit_end() -> None:
    tables = make_tables(
        leads=[{"lead_id": "L1", "created_at": "2024-01-01 00:00", "customer_id": "C1"}],
        orders=[
            {"customer_id": "C1", "ordered_at": "2023-12-31 00:00", "amount": 900.0},
            {"customer_id": "C1", "ordered_at": "2024-01-05 00:00", "amount": 300.0},
            {"customer_id": "C1", "ordered_at": "2024-01-06 00:00", "amount": -100.0},
        ],
    )
    spine = spine_of(("L1", "2024-01-01 01:00"))

    labelled = attach_labels(spine, tables, FeatureConfig(), observed_until=at("2030-01-01"))

    assert labelled["value"].tolist() == [200.0]
    assert labelled["value_complete"].tolist() == [True]


def test_labels_unknown_lead_is_rejected() -> None:
    with pytest.raises(DataValidationError, match=r"not in the leads table, for example \['ghost'\]"):
        attach_labels(spine_of(("ghost", "2024-01-02 00:00")), _history(), FeatureConfig())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"horizon_days": 0}, "horizon_days must be greater than 0"),
        ({"first_cutoff_hours": 800.0}, "must be shorter than snapshot_every_days"),
        ({"windows_days": (30, 7)}, r"strictly increasing without repeats; got \(30, 7\)"),
        ({"windows_days": ()}, "windows_days is empty"),
        ({"max_snapshots": -1}, "max_snapshots must be 0 or more"),
        ({"timezone": "Mars/Base"}, "unknown timezone 'Mars/Base'"),
    ],
)
def test_config_rejects_bad_values(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FeatureConfig(**arguments)  # type: ignore[arg-type]
