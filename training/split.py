"""Time-based train / validation / calibration / test split of a snapshot frame.

Rows are (lead_id, cutoff) snapshots. Folds follow time: train contains the oldest cutoffs,
then validation (early stopping and tuning), then calibration (the probability calibrator),
then test. A random split would let the model learn from leads created after the ones it is
scored on, which overstates every metric.

Fold sizes: test contains the latest ``test_fraction`` of the rows, calibration and validation
the ``calibration_fraction`` and ``valid_fraction`` before it, and train everything earlier.
Two purge gaps lie between them, each as long as ``purge`` (the label horizon):

* before test, so that no label of a row used for fitting (train, validation or calibration)
  counts events from the test period, and the test metrics stay honest;
* before validation, so that no training label counts events from the later folds, and early
  stopping measures how the booster does on a period it has not seen.

Validation and calibration touch without a gap. Both only fit things (the number of rounds,
the calibrator) and neither is used to judge the other. Rows with a cutoff inside a gap are
excluded: their label window ``(cutoff, cutoff + purge]`` reaches the start of the next fold.

Lead rule: a lead belongs to the fold of its earliest remaining cutoff. Its snapshots in later
folds are excluded, so one lead never appears in two folds.

Rows whose label window is not fully observed yet can be excluded first (``complete_column``).
Every row ends up in exactly one fold or in ``SplitIndices.excluded`` under its reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError, SchemaError

logger = logging.getLogger(__name__)

IndexArray = npt.NDArray[np.int64]

FOLD_NAMES: tuple[str, ...] = ("train", "valid", "calibration", "test")
EXCLUDED_LATER_SNAPSHOT = "lead_already_in_earlier_fold"
EXCLUDED_PURGED = "in_purge_gap"
EXCLUDED_INCOMPLETE = "label_incomplete"
DEFAULT_PURGE = pd.Timedelta(days=90)


@dataclass(frozen=True)
class SplitIndices:
    """Row positions (``iloc``) of each fold, the fold start times and the excluded rows by reason.

    ``calibration`` is empty when the split was made with ``calibration_fraction=0``. Callers then
    calibrate on ``valid``, which is still later than every training row and its label window.
    """

    train: IndexArray
    valid: IndexArray
    test: IndexArray
    calibration: IndexArray
    boundaries: dict[str, pd.Timestamp]
    excluded: dict[str, IndexArray] = field(default_factory=dict)

    @property
    def calibration_or_valid(self) -> IndexArray:
        """Rows to fit the calibrator on: the calibration fold, or the validation fold without one."""
        return self.calibration if self.calibration.size else self.valid

    def counts(self) -> dict[str, int]:
        """Return the number of rows in each fold and under each exclusion reason."""
        result = {name: int(getattr(self, name).size) for name in FOLD_NAMES}
        result.update({f"excluded:{reason}": int(rows.size) for reason, rows in self.excluded.items()})
        return result


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")


def _check_arguments(
    frame: pd.DataFrame,
    time_column: str,
    lead_column: str | None,
    fractions: dict[str, float],
    purge: pd.Timedelta,
) -> None:
    for name, value in fractions.items():
        _check_fraction(name, value)
    if fractions["valid_fraction"] <= 0 or fractions["test_fraction"] <= 0:
        raise ConfigError(
            f"valid_fraction and test_fraction must be above 0, got {fractions['valid_fraction']} and "
            f"{fractions['test_fraction']}"
        )
    total = sum(fractions.values())
    if total >= 0.9:
        raise ConfigError(
            f"the holdout fractions add up to {total:.2f}, leaving under 10 % of rows for training; "
            "lower valid_fraction, calibration_fraction or test_fraction"
        )
    if not isinstance(purge, pd.Timedelta) or purge < pd.Timedelta(0):
        raise ConfigError(f"purge must be a non-negative pandas Timedelta (the label horizon), got {purge!r}")
    missing = [name for name in (time_column, lead_column) if name is not None and name not in frame.columns]
    if missing:
        raise SchemaError(
            f"time_split: missing column(s) {missing}; the frame has {list(frame.columns)[:20]}"
        )
    if not pd.api.types.is_datetime64_any_dtype(frame[time_column].dtype):
        raise SchemaError(
            f"time_split: column {time_column!r} must contain timestamps; "
            f"got dtype {frame[time_column].dtype}"
        )
    null_rows = np.flatnonzero(frame[time_column].isna().to_numpy())
    if null_rows.size:
        raise DataValidationError(
            f"time_split: column {time_column!r} is empty in {null_rows.size} row(s), first positions "
            f"{null_rows[:5].tolist()}; every snapshot needs a cutoff"
        )


def _as_micros(times: pd.Series) -> IndexArray:
    """Return timestamps as int64 microseconds since the epoch (UTC when tz-aware)."""
    index = pd.DatetimeIndex(times)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return np.asarray(index.as_unit("us").asi8, dtype=np.int64)


@dataclass(frozen=True)
class _Layout:
    """Fold start times in microseconds; ``train_end`` and ``fit_end`` open the two purge gaps."""

    train_end: int
    valid_start: int
    calibration_start: int | None
    fit_end: int
    test_start: int


def _row_count(fraction: float, n_rows: int) -> int:
    return max(1, round(fraction * n_rows)) if fraction > 0 else 0


def _start_before(ordered: IndexArray, end: int, count: int) -> int | None:
    """Return the cutoff that starts the last ``count`` rows before ``end``, or None if too few."""
    available = int(np.searchsorted(ordered, end, side="left"))
    if available < count:
        return None
    return int(ordered[available - count])


def _plan_layout(ordered: IndexArray, fractions: dict[str, float], purge_micros: int) -> _Layout | None:
    """Place the folds and gaps on the sorted cutoffs of the usable rows; None when they do not fit.

    Starts are cutoff values and a row belongs to a fold when its cutoff is at or after the
    start, so rows with equal cutoffs always share a fold.
    """
    n_rows = ordered.size
    test_start = int(ordered[min(n_rows - 1, int(np.floor((1.0 - fractions["test_fraction"]) * n_rows)))])
    fit_end = test_start - purge_micros
    calibration_start: int | None = None
    valid_end = fit_end
    calibration_rows = _row_count(fractions["calibration_fraction"], n_rows)
    if calibration_rows:
        calibration_start = _start_before(ordered, fit_end, calibration_rows)
        if calibration_start is None:
            return None
        valid_end = calibration_start
    valid_start = _start_before(ordered, valid_end, _row_count(fractions["valid_fraction"], n_rows))
    if valid_start is None:
        return None
    return _Layout(valid_start - purge_micros, valid_start, calibration_start, fit_end, test_start)


def _assign_folds(micros: IndexArray, layout: _Layout) -> IndexArray:
    """Return each row's fold number (0 train, 1 valid, 2 calibration, 3 test) or -1 inside a gap."""
    fold = np.full(micros.size, -1, dtype=np.int64)
    fold[micros < layout.train_end] = 0
    valid_end = layout.calibration_start if layout.calibration_start is not None else layout.fit_end
    fold[(micros >= layout.valid_start) & (micros < valid_end)] = 1
    if layout.calibration_start is not None:
        fold[(micros >= layout.calibration_start) & (micros < layout.fit_end)] = 2
    fold[micros >= layout.test_start] = 3
    return fold


def _as_timestamp(micros: int, like: pd.Series) -> pd.Timestamp:
    timestamp = pd.Timestamp(micros, unit="us")
    tz = getattr(like.dtype, "tz", None)
    return timestamp.tz_localize("UTC").tz_convert(tz) if tz is not None else timestamp


def _complete_rows(frame: pd.DataFrame, complete_column: str | None) -> npt.NDArray[np.bool_]:
    """Return which rows have a fully observed label window (all rows without ``complete_column``)."""
    if complete_column is None:
        return np.ones(len(frame), dtype=bool)
    if complete_column not in frame.columns:
        raise SchemaError(f"time_split: missing the label-completeness column {complete_column!r}")
    values = frame[complete_column]
    if values.isna().any() or not pd.api.types.is_bool_dtype(values.dtype):
        raise DataValidationError(
            f"time_split: column {complete_column!r} must contain true/false with no missing values; "
            f"got dtype {values.dtype}"
        )
    return np.asarray(values.to_numpy(dtype=bool), dtype=bool)


def _later_snapshots(
    lead_ids: pd.Series, fold: IndexArray, keep: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Return the kept rows whose lead already has a kept row in an earlier fold."""
    unused = np.iinfo(np.int64).max
    first_fold = (
        pd.Series(np.where(keep, fold, unused))
        .groupby(lead_ids.to_numpy(), sort=False, dropna=False)
        .transform("min")
        .to_numpy()
    )
    return np.asarray(keep & (fold != first_fold), dtype=bool)


def time_split(
    frame: pd.DataFrame,
    time_column: str = "cutoff",
    valid_fraction: float = 0.15,
    test_fraction: float = 0.15,
    purge: pd.Timedelta = DEFAULT_PURGE,
    *,
    calibration_fraction: float = 0.10,
    lead_column: str | None = "lead_id",
    complete_column: str | None = None,
) -> SplitIndices:
    """Split snapshot rows by cutoff time into train, valid, calibration and test positions.

    Set ``purge`` to the label horizon (the conversion window for the conversion model, the
    LTV window for the LTV model). ``lead_column=None`` turns the lead rule off for frames with
    one row per entity. With ``complete_column`` (for example ``label_complete``), rows whose
    label window is not fully observed are excluded first. The fractions are shares of the
    remaining rows. The lead rule can make a fold smaller, and the two purge gaps come out of
    the rows before them. With ``calibration_fraction=0`` there is no calibration fold, and
    validation ends at the gap before test. Raises InsufficientDataError when a fold cannot be
    filled.
    """
    fractions = {
        "valid_fraction": valid_fraction,
        "calibration_fraction": calibration_fraction,
        "test_fraction": test_fraction,
    }
    _check_arguments(frame, time_column, lead_column, fractions, purge)
    keep = _complete_rows(frame, complete_column)
    if not keep.any():
        raise InsufficientDataError(
            f"time_split: the frame has no rows with a complete label ({len(frame)} rows in total)"
        )

    times = frame[time_column].reset_index(drop=True)
    micros = _as_micros(times)
    purge_micros = int(purge / pd.Timedelta(microseconds=1))
    layout = _plan_layout(np.sort(micros[keep]), fractions, purge_micros)
    fold = _assign_folds(micros, layout) if layout is not None else np.full(micros.size, -1, dtype=np.int64)

    excluded: dict[str, IndexArray] = {}
    if complete_column is not None:
        excluded[EXCLUDED_INCOMPLETE] = np.flatnonzero(~keep).astype(np.int64)
    excluded[EXCLUDED_PURGED] = np.flatnonzero(keep & (fold < 0)).astype(np.int64)
    keep = keep & (fold >= 0)
    if lead_column is not None:
        later = _later_snapshots(frame[lead_column].reset_index(drop=True), fold, keep)
        excluded[EXCLUDED_LATER_SNAPSHOT] = np.flatnonzero(later).astype(np.int64)
        keep = keep & ~later

    positions = {
        name: np.flatnonzero(keep & (fold == number)).astype(np.int64)
        for number, name in enumerate(FOLD_NAMES)
    }
    required = [name for name in FOLD_NAMES if name != "calibration" or calibration_fraction > 0]
    empty = [name for name in required if positions[name].size == 0]
    if layout is None or empty:
        raise InsufficientDataError(
            f"time_split: fold(s) {empty or required} cannot be filled with {len(frame)} rows whose "
            f"cutoffs span {times.min()} to {times.max()} when each purge gap lasts {purge}; "
            "use a longer history, a shorter purge or smaller holdout fractions"
        )

    starts = {"valid": layout.valid_start, "calibration": layout.calibration_start, "test": layout.test_start}
    split = SplitIndices(
        train=positions["train"],
        valid=positions["valid"],
        calibration=positions["calibration"],
        test=positions["test"],
        boundaries={name: _as_timestamp(start, times) for name, start in starts.items() if start is not None},
        excluded=excluded,
    )
    logger.info(
        "time split %s with fold starts %s", split.counts(), {k: str(v) for k, v in split.boundaries.items()}
    )
    return split
