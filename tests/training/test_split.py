"""Time-based split: folds ordered by cutoff, purged label windows, one fold per lead."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError, SchemaError
from training.split import (
    EXCLUDED_INCOMPLETE,
    EXCLUDED_LATER_SNAPSHOT,
    EXCLUDED_PURGED,
    FOLD_NAMES,
    SplitIndices,
    time_split,
)

START = pd.Timestamp("2024-01-01", tz="UTC")


def snapshot_frame(day_offsets: list[float], lead_ids: list[str] | None = None) -> pd.DataFrame:
    """Build a spine-like frame whose cutoffs are START plus the given days."""
    ids = lead_ids if lead_ids is not None else [f"L{i}" for i in range(len(day_offsets))]
    return pd.DataFrame(
        {"lead_id": ids, "cutoff": START + pd.to_timedelta(day_offsets, unit="D"), "converted": 0}
    )


def fold_cutoffs(frame: pd.DataFrame, split: SplitIndices, name: str) -> pd.Series:
    return frame["cutoff"].iloc[getattr(split, name)]


def check_invariants(frame: pd.DataFrame, split: SplitIndices, purge: pd.Timedelta) -> None:
    """Assert ordering, both purge gaps, one fold per lead and that every row is accounted for once."""
    present = [name for name in FOLD_NAMES if getattr(split, name).size]
    for earlier, later in itertools.pairwise(present):
        assert fold_cutoffs(frame, split, earlier).max() < fold_cutoffs(frame, split, later).min()
    # No training label reaches validation, and no label used for fitting reaches test.
    assert (fold_cutoffs(frame, split, "train") + purge).max() < split.boundaries["valid"]
    for name in ("train", "valid", "calibration"):
        if getattr(split, name).size:
            assert (fold_cutoffs(frame, split, name) + purge).max() < split.boundaries["test"]

    lead_folds = {}
    for name in present:
        for lead in frame["lead_id"].iloc[getattr(split, name)]:
            assert lead_folds.setdefault(lead, name) == name

    every_row = np.concatenate([getattr(split, name) for name in FOLD_NAMES] + list(split.excluded.values()))
    assert np.array_equal(np.sort(every_row), np.arange(len(frame)))


def test_split_orders_folds_by_cutoff():
    frame = snapshot_frame(list(range(100))).sample(frac=1.0, random_state=3).reset_index(drop=True)
    split = time_split(frame, purge=pd.Timedelta(0))
    check_invariants(frame, split, pd.Timedelta(0))
    assert split.counts()["train"] == 60
    assert split.counts()["valid"] == 15
    assert split.counts()["calibration"] == 10
    assert split.counts()["test"] == 15


def test_calibration_fold_is_later_than_train():
    frame = snapshot_frame(list(range(200)))
    split = time_split(frame, purge=pd.Timedelta(days=5))
    assert fold_cutoffs(frame, split, "calibration").min() > fold_cutoffs(frame, split, "train").max()
    assert fold_cutoffs(frame, split, "calibration").min() > fold_cutoffs(frame, split, "valid").max()
    assert np.array_equal(split.calibration_or_valid, split.calibration)


def test_without_calibration_fold_valid_is_used():
    split = time_split(snapshot_frame(list(range(100))), calibration_fraction=0.0, purge=pd.Timedelta(0))
    assert split.calibration.size == 0
    assert "calibration" not in split.boundaries
    assert np.array_equal(split.calibration_or_valid, split.valid)


def test_purge_gaps_before_valid_and_test():
    frame = snapshot_frame(list(range(100)))
    split = time_split(frame, purge=pd.Timedelta(days=3))
    purged_days = (frame["cutoff"].iloc[split.excluded[EXCLUDED_PURGED]] - START).dt.days.tolist()
    # Test is days 85-99, calibration 72-81, validation 57-71: a 3-day gap before test and
    # before validation, none between validation and calibration.
    assert purged_days == [54, 55, 56, 82, 83, 84]
    assert split.counts()["train"] == 54
    assert split.counts()["valid"] == 15
    assert split.counts()["calibration"] == 10
    assert split.counts()["test"] == 15
    check_invariants(frame, split, pd.Timedelta(days=3))


def test_window_ending_at_start_is_purged():
    frame = snapshot_frame(list(range(100)))
    split = time_split(frame, purge=pd.Timedelta(days=1))
    train_days = (fold_cutoffs(frame, split, "train") - START).dt.days
    assert train_days.max() == 57
    assert (frame["cutoff"].iloc[split.excluded[EXCLUDED_PURGED]] - START).dt.days.tolist() == [58, 84]


def test_lead_stays_in_fold_of_first_cutoff():
    days = [*range(100), 10, 70, 95]
    leads = [f"L{i}" for i in range(100)] + ["L10", "L10", "L10"]
    frame = snapshot_frame(days, leads)
    split = time_split(frame, purge=pd.Timedelta(0))
    excluded = frame.iloc[split.excluded[EXCLUDED_LATER_SNAPSHOT]]
    assert excluded["lead_id"].tolist() == ["L10", "L10"]
    assert sorted((excluded["cutoff"] - START).dt.days.tolist()) == [70, 95]
    train_leads = frame["lead_id"].iloc[split.train]
    assert (train_leads == "L10").sum() == 2
    check_invariants(frame, split, pd.Timedelta(0))


def test_lead_rule_can_be_turned_off():
    frame = snapshot_frame([*range(100), 95], [*(f"L{i}" for i in range(100)), "L10"])
    split = time_split(frame, purge=pd.Timedelta(0), lead_column=None)
    assert EXCLUDED_LATER_SNAPSHOT not in split.excluded
    assert 100 in split.test


def test_equal_cutoffs_share_a_fold():
    days = [0] * 30 + [1] * 30 + [2] * 20 + [3] * 20
    frame = snapshot_frame(days)
    split = time_split(frame, purge=pd.Timedelta(0), calibration_fraction=0.0)
    # The 70th and 85th percentile rows fall on days 2 and 3, and whole days move together.
    assert (fold_cutoffs(frame, split, "train") - START).dt.days.unique().tolist() == [0, 1]
    assert (fold_cutoffs(frame, split, "valid") - START).dt.days.unique().tolist() == [2]
    assert (fold_cutoffs(frame, split, "test") - START).dt.days.unique().tolist() == [3]
    check_invariants(frame, split, pd.Timedelta(0))


def test_incomplete_labels_excluded_before_splitting():
    frame = snapshot_frame(list(range(120)))
    frame["label_complete"] = frame["cutoff"] < START + pd.Timedelta(days=100)
    split = time_split(frame, purge=pd.Timedelta(0), complete_column="label_complete")
    incomplete = split.excluded[EXCLUDED_INCOMPLETE]
    assert (frame["cutoff"].iloc[incomplete] - START).dt.days.tolist() == list(range(100, 120))
    assert split.counts()["test"] == 15
    assert fold_cutoffs(frame, split, "test").max() == START + pd.Timedelta(days=99)
    check_invariants(frame, split, pd.Timedelta(0))


def test_incomplete_labels_column_checked():
    frame = snapshot_frame(list(range(20)))
    with pytest.raises(SchemaError, match="missing the label-completeness column 'label_complete'"):
        time_split(frame, complete_column="label_complete")
    frame["label_complete"] = [True, None] * 10
    with pytest.raises(DataValidationError, match="must contain true/false with no missing values"):
        time_split(frame, complete_column="label_complete")
    frame["label_complete"] = False
    with pytest.raises(InsufficientDataError, match="no rows with a complete label"):
        time_split(frame, complete_column="label_complete")


def test_boundaries_keep_time_zone():
    frame = snapshot_frame(list(range(50)))
    frame["cutoff"] = frame["cutoff"].dt.tz_convert("Asia/Shanghai")
    split = time_split(frame, purge=pd.Timedelta(0))
    assert str(split.boundaries["test"].tz) == "Asia/Shanghai"
    check_invariants(frame, split, pd.Timedelta(0))


@settings(max_examples=60, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=400), min_size=40, max_size=200),
    lead_count=st.integers(min_value=10, max_value=200),
    purge_days=st.integers(min_value=0, max_value=30),
    calibration_fraction=st.sampled_from([0.0, 0.1]),
    incomplete_after=st.one_of(st.none(), st.integers(min_value=200, max_value=400)),
)
def test_split_invariants_hold_for_any_cutoffs(
    offsets, lead_count, purge_days, calibration_fraction, incomplete_after
):
    leads = [f"L{i % lead_count}" for i in range(len(offsets))]
    frame = snapshot_frame([float(day) for day in offsets], leads)
    purge = pd.Timedelta(days=purge_days)
    complete_column = None
    if incomplete_after is not None:
        frame["label_complete"] = frame["cutoff"] < START + pd.Timedelta(days=incomplete_after)
        complete_column = "label_complete"
    try:
        split = time_split(
            frame, purge=purge, calibration_fraction=calibration_fraction, complete_column=complete_column
        )
    except InsufficientDataError as error:
        assert "cannot be filled" in str(error) or "no rows with a complete label" in str(error)
        return
    check_invariants(frame, split, purge)
    if complete_column is not None:
        used = np.concatenate([getattr(split, name) for name in FOLD_NAMES])
        assert frame["label_complete"].iloc[used].all()


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"valid_fraction": 0.0}, ConfigError, "valid_fraction and test_fraction must be above 0"),
        ({"test_fraction": 1.2}, ConfigError, "test_fraction must be a number in"),
        ({"valid_fraction": 0.4, "test_fraction": 0.4}, ConfigError, "leaving under 10 % of rows"),
        ({"purge": pd.Timedelta(days=-1)}, ConfigError, "purge must be a non-negative"),
        ({"time_column": "created_at"}, SchemaError, r"missing column\(s\) \['created_at'\]"),
    ],
)
def test_invalid_arguments_raise(arguments, error, message):
    with pytest.raises(error, match=message):
        time_split(snapshot_frame(list(range(20))), **arguments)


def test_cutoff_must_be_timestamps():
    frame = snapshot_frame(list(range(20)))
    frame["cutoff"] = frame["cutoff"].astype(str)
    with pytest.raises(SchemaError, match="must contain timestamps"):
        time_split(frame)


def test_missing_cutoff_raises():
    frame = snapshot_frame(list(range(20)))
    frame.loc[3, "cutoff"] = pd.NaT
    with pytest.raises(DataValidationError, match=r"empty in 1 row\(s\), first positions \[3\]"):
        time_split(frame)


def test_purge_longer_than_history_raises():
    with pytest.raises(InsufficientDataError, match=r"fold\(s\) \['train'.*cannot be filled.*shorter purge"):
        time_split(snapshot_frame(list(range(30))), purge=pd.Timedelta(days=90))


def test_empty_frame_raises():
    with pytest.raises(InsufficientDataError, match=r"no rows with a complete label \(0 rows in total\)"):
        time_split(snapshot_frame([]))
