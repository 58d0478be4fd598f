"""Training options meant to cope with drift, each measured by ``training.backtest``.

Every option changes how a retrain learns. None of them adds or drops scored rows.

* ``window``: train only on the most recent rows (a number of rows or a duration).
* ``recency_half_life``: time-decay sample weights, ``0.5 ** (age / half_life)``, so a row one
  half-life older than the retrain counts half as much. The age is measured in rows or in time.
* ``calibration_slice``: fit the probability calibrator on this most recent slice of the rows
  available at the retrain, instead of on the share ``calibration_fraction``. This follows a
  base rate that moves faster than the ranking.
* ``change_features``: add, for chosen numeric features such as macro-economic indicators,
  their change over a period, and optionally drop the levels. A tree cannot extrapolate a
  level it never saw in training, but a change of similar size may well have been seen.

Spans (``Span``) are given as a whole number of rows (``"1000"``) or as a pandas duration
(``"14D"``, ``"2W"``, ``"36h"``), see ``parse_span``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from features.catalog import FeatureDef
from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError, SchemaError
from training import coldstart
from training.baselines.logistic import LogisticBaseline, build_pipeline, prepare_frame
from training.boosting import VALID_NAME, Fold, MatrixLayout, as_lightgbm_input, predict_booster
from training.calibration import fit_calibrator
from training.conversion import ConversionModel, conversion_params
from training.params import (
    CONVERSION_DEFAULTS,
    DEFAULT_EARLY_STOPPING_ROUNDS,
    DEFAULT_NUM_BOOST_ROUND,
    DEFAULT_SEED,
)

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
_ROWS_PATTERN = re.compile(r"\d+")
_SPAN_EXAMPLES = "a whole number of rows such as 1000, or a duration such as 14D, 2W or 36h"


@dataclass(frozen=True)
class Span:
    """A length of history: a number of rows or a duration, exactly one of them."""

    rows: int | None = None
    duration: pd.Timedelta | None = None

    def __post_init__(self) -> None:
        if (self.rows is None) == (self.duration is None):
            raise ConfigError("a span needs exactly one of rows or duration")
        if self.rows is not None and (isinstance(self.rows, bool) or self.rows < 1):
            raise ConfigError(f"a span of rows must be a positive whole number; got {self.rows!r}")
        if self.duration is not None and not self.duration > pd.Timedelta(0):
            raise ConfigError(f"a span of time must be longer than 0; got {self.duration!r}")

    def describe(self) -> str:
        """Return the span in words: ``1,000 rows`` or ``14 days``."""
        if self.rows is not None:
            return f"{self.rows:,} rows"
        days = self.time() / pd.Timedelta(days=1)
        return f"{days:g} days" if days >= 1 else f"{self.time() / pd.Timedelta(hours=1):g} hours"

    def to_text(self) -> str:
        """Return the span in the form ``parse_span`` reads back."""
        if self.rows is not None:
            return str(self.rows)
        days = self.time() / pd.Timedelta(days=1)
        return f"{days:g}D" if days == int(days) else f"{self.time() / pd.Timedelta(hours=1):g}h"

    def time(self) -> pd.Timedelta:
        """Return the duration of a span of time. Raises ConfigError for a span of rows."""
        if self.duration is None:
            raise ConfigError(f"a span of {self.rows} rows has no duration; give a duration such as 14D")
        return self.duration


def parse_span(text: str, *, option: str) -> Span:
    """Parse a span. Digits only give a number of rows, and any other text must be a positive pandas duration.

    ``option`` names the setting in the error message, for example ``--window``.
    """
    value = str(text).strip()
    if _ROWS_PATTERN.fullmatch(value):
        rows = int(value)
        if rows < 1:
            raise ConfigError(f"{option} must be at least 1 row; got {text!r}. Use {_SPAN_EXAMPLES}")
        return Span(rows=rows)
    try:
        duration = pd.Timedelta(value)
    except ValueError:
        raise ConfigError(f"{option} value {text!r} is invalid; use {_SPAN_EXAMPLES}") from None
    if pd.isna(duration) or not duration > pd.Timedelta(0):
        raise ConfigError(f"{option} must be longer than 0; got {text!r}. Use {_SPAN_EXAMPLES}")
    return Span(duration=duration)


@dataclass(frozen=True)
class ChangeFeatures:
    """Numeric features to express as their change over ``period`` (see ``add_change_features``)."""

    columns: tuple[str, ...]
    period: pd.Timedelta
    keep_levels: bool = False

    def __post_init__(self) -> None:
        if not self.columns:
            raise ConfigError("change features need at least one numeric feature column")
        if not self.period > pd.Timedelta(0):
            raise ConfigError(f"the change period must be longer than 0; got {self.period!r}")


@dataclass(frozen=True)
class DriftOptions:
    """Drift-robust training options of one backtest. The defaults switch every option off."""

    window: Span | None = None
    recency_half_life: Span | None = None
    calibration_slice: Span | None = None
    change_features: ChangeFeatures | None = None

    def describe(self) -> dict[str, Any]:
        """Return the options as plain values, for MLflow parameters and reports."""
        change = self.change_features
        return {
            "window": self.window.to_text() if self.window is not None else "expanding",
            "recency_half_life": self.recency_half_life.to_text() if self.recency_half_life else "off",
            "calibration_slice": self.calibration_slice.to_text() if self.calibration_slice else "off",
            "change_features": (
                {
                    "columns": list(change.columns),
                    "period_days": change.period / pd.Timedelta(days=1),
                    "keep_levels": change.keep_levels,
                }
                if change is not None
                else "off"
            ),
        }


# --- row selection and weights ------------------------------------------------------------------


def _cutoff_micros(cutoffs: pd.Series) -> npt.NDArray[np.int64]:
    index = pd.DatetimeIndex(cutoffs)
    if index.tz is None:
        raise DataValidationError("cutoffs must be timezone-aware timestamps; got naive ones")
    return np.asarray(index.tz_convert("UTC").as_unit("us").asi8, dtype=np.int64)


def _check_sorted(micros: npt.NDArray[np.int64], name: str) -> None:
    if micros.size > 1 and np.any(np.diff(micros) < 0):
        raise DataValidationError(f"{name} must be sorted by cutoff, oldest first")


def select_window(frame: pd.DataFrame, window: Span | None, as_of: pd.Timestamp) -> pd.DataFrame:
    """Return the rows of ``frame`` (sorted by ``cutoff``) inside the training window before ``as_of``.

    ``None`` keeps every row (an expanding window). A window of N rows keeps the N most recent
    rows, plus any older row that shares the cutoff of the oldest kept one. A duration keeps the
    rows with a cutoff at or after ``as_of - duration``.
    """
    if window is None or frame.empty:
        return frame
    micros = _cutoff_micros(frame["cutoff"])
    _check_sorted(micros, "the training rows")
    if window.rows is not None:
        if window.rows >= len(frame):
            return frame
        first = int(np.searchsorted(micros, micros[len(frame) - window.rows], side="left"))
        return frame.iloc[first:]
    start = pd.Timestamp(as_of) - window.time()
    return frame.loc[frame["cutoff"] >= start]


def recency_weights(cutoffs: pd.Series, as_of: pd.Timestamp, half_life: Span) -> FloatArray:
    """Return time-decay weights ``0.5 ** (age / half_life)`` scaled to a mean of 1.

    With a half-life in rows, a row's age is the number of rows with a later cutoff (rows that
    share a cutoff share a weight). With a duration, it is the time from its cutoff to
    ``as_of``. The mean of 1 keeps LightGBM's minimum hessian per leaf meaning what it means
    without weights.
    """
    micros = _cutoff_micros(cutoffs)
    if micros.size == 0:
        return np.empty(0, dtype=np.float64)
    if half_life.rows is not None:
        ordered = np.sort(micros)
        age = micros.size - np.searchsorted(ordered, micros, side="right")
        exponent = age / float(half_life.rows)
    else:
        as_of_micros = _cutoff_micros(pd.Series([pd.Timestamp(as_of)]))[0]
        age_micros = np.maximum(as_of_micros - micros, 0)
        exponent = age_micros / (half_life.time() / pd.Timedelta(microseconds=1))
    weights = np.power(0.5, exponent.astype(np.float64))
    return np.asarray(weights / weights.mean(), dtype=np.float64)


# --- change features ----------------------------------------------------------------------------


def change_feature_name(column: str, period: pd.Timedelta) -> str:
    """Return the column name of a change feature: ``attr_euribor_3m_change_30d``."""
    days = period / pd.Timedelta(days=1)
    return f"{column}_change_{days:g}d".replace(".", "_")


def add_change_features(
    frame: pd.DataFrame, definitions: Sequence[FeatureDef], change: ChangeFeatures
) -> tuple[pd.DataFrame, list[FeatureDef]]:
    """Add each column's change over ``change.period`` and return the frame and the new definitions.

    The change of a row with cutoff t is its value minus the value of the latest row of
    ``frame`` whose cutoff is at or before t - period, so it reads only rows older than the
    row itself. Rows at equal cutoffs are ordered by lead_id to keep the result independent
    of the input order. A row with no such earlier row, or a missing value, gets NaN. Without
    ``keep_levels`` the level features are removed from the definitions (the columns stay).

    NOTE: the scoring path (``training.scorer``) does not compute these features, because
    a single lead does not carry the series of earlier rows. A model trained with them can
    be judged in the backtest but cannot be served yet.
    """
    by_name = {definition.name: definition for definition in definitions}
    unknown = [column for column in change.columns if column not in by_name]
    not_numeric = [
        column for column in change.columns if column in by_name and by_name[column].kind != "numeric"
    ]
    if unknown or not_numeric:
        numeric = [definition.name for definition in definitions if definition.kind == "numeric"]
        raise ConfigError(
            f"change features need numeric feature columns; unknown: {unknown}, not numeric: {not_numeric}. "
            f"Numeric features include {numeric[:12]}"
        )
    missing_columns = [column for column in ("lead_id", "cutoff", *change.columns) if column not in frame]
    if missing_columns:
        raise SchemaError(f"change features: the frame lacks column(s) {missing_columns}")

    order = np.lexsort((frame["lead_id"].astype(str).to_numpy(), _cutoff_micros(frame["cutoff"])))
    times = frame["cutoff"].iloc[order].reset_index(drop=True)
    result = frame.copy()
    added: list[FeatureDef] = []
    for column in change.columns:
        values = pd.to_numeric(frame[column].iloc[order], errors="coerce").astype("float64")
        series = pd.DataFrame({"cutoff": times, "previous": values.to_numpy()}).dropna()
        lookup = pd.DataFrame({"cutoff": frame["cutoff"] - change.period, "row": np.arange(len(frame))})
        lookup = lookup.sort_values("cutoff", kind="stable")
        matched = pd.merge_asof(lookup, series, on="cutoff", direction="backward").sort_values("row")
        level = pd.to_numeric(frame[column], errors="coerce").astype("float64").to_numpy()
        name = change_feature_name(column, change.period)
        result[name] = level - matched["previous"].to_numpy(dtype=np.float64)
        source = by_name[column]
        days = change.period / pd.Timedelta(days=1)
        added.append(
            FeatureDef(
                name,
                "numeric",
                f"{source.label_en}, change over {days:g} days",
                f"{source.label_zh}（{days:g} 天变化）",
                f"{source.label_en} minus its value {days:g} days before the cutoff, "
                "taken from the latest earlier lead.",
                attribute=source.attribute,
            )
        )
    base_definitions = [
        definition
        for definition in definitions
        if change.keep_levels or definition.name not in change.columns
    ]
    logger.info(
        "added change features %s over %s%s",
        [definition.name for definition in added],
        change.period,
        "" if change.keep_levels else f"; dropped the levels {list(change.columns)}",
    )
    return result, [*base_definitions, *added]


# --- recency-weighted fits ----------------------------------------------------------------------


def _check_weights(weights: npt.ArrayLike, rows: int) -> FloatArray:
    values = np.asarray(weights, dtype=np.float64)
    if values.shape != (rows,):
        raise DataValidationError(f"{values.size} sample weights for {rows} training rows; align them by row")
    if not np.all(np.isfinite(values)) or np.any(values < 0) or not values.sum() > 0:
        raise DataValidationError("sample weights must be finite, non-negative and not all 0")
    return values


def fit_weighted_conversion(
    train: Fold,
    valid: Fold,
    calibration: Fold | None,
    weights: npt.ArrayLike,
    *,
    params: Mapping[str, Any] | None = None,
    sufficiency: coldstart.DataSufficiency | None = None,
    seed: int = DEFAULT_SEED,
    num_threads: int | None = None,
    num_boost_round: int = DEFAULT_NUM_BOOST_ROUND,
    early_stopping_rounds: int = DEFAULT_EARLY_STOPPING_ROUNDS,
    calibration_method: Literal["auto", "isotonic", "platt"] = "auto",
) -> ConversionModel:
    """Train the conversion booster with per-row sample weights on ``train``, then calibrate it.

    Matches ``training.conversion.fit_conversion`` in every other step (parameters, cold-start
    plan, early stopping on the unweighted validation fold, calibration on ``calibration`` or
    else ``valid``).
    """
    # TODO: training.boosting.train_booster takes no sample weights, so the Dataset setup is
    # repeated here. Add a weight argument there and call fit_conversion instead.
    row_weights = _check_weights(weights, len(train))
    if sufficiency is None:
        sufficiency = coldstart.assess(len(train), int(train.y.sum()), len(train))
    training_plan = coldstart.plan(
        sufficiency,
        {**CONVERSION_DEFAULTS, **(params or {})},
        num_boost_round=num_boost_round,
        early_stopping_rounds=early_stopping_rounds,
    )
    final_params = conversion_params(training_plan.params, seed=seed, num_threads=num_threads)
    layout = MatrixLayout.of(train.matrix)
    layout.check(valid.matrix, context="validation fold")
    if len(valid) == 0:
        raise InsufficientDataError("the validation fold is empty; it is needed for early stopping")
    train_set = lgb.Dataset(
        as_lightgbm_input(train.matrix),
        label=train.y,
        weight=row_weights,
        categorical_feature="auto",
        free_raw_data=True,
    )
    valid_set = lgb.Dataset(as_lightgbm_input(valid.matrix), label=valid.y, reference=train_set)
    booster = lgb.train(
        final_params,
        train_set,
        num_boost_round=training_plan.num_boost_round,
        valid_sets=[valid_set],
        valid_names=[VALID_NAME],
        callbacks=[
            lgb.early_stopping(training_plan.early_stopping_rounds, first_metric_only=True, verbose=False)
        ],
    )
    logger.info(
        "trained weighted conversion booster: %d rows, best iteration %d of %d",
        len(train),
        booster.best_iteration,
        booster.current_iteration(),
    )
    calibration_fold = calibration if calibration is not None else valid
    layout.check(calibration_fold.matrix, context="calibration fold")
    method = training_plan.calibration_method if sufficiency.insufficient_data else calibration_method
    raw = predict_booster(booster, calibration_fold.matrix)
    calibrator = fit_calibrator(raw, calibration_fold.y, method=method, seed=seed)
    return ConversionModel(
        booster=booster,
        layout=layout,
        params=final_params,
        calibrator=calibrator,
        sufficiency=sufficiency,
        prior_weight=training_plan.prior_weight,
    )


def fit_weighted_logistic(
    train_frame: pd.DataFrame,
    definitions: Sequence[FeatureDef],
    weights: npt.ArrayLike,
    *,
    label_column: str = "converted",
    seed: int = 0,
    max_iter: int = 2000,
) -> LogisticBaseline:
    """Fit the logistic baseline's pipeline with per-row sample weights (default C and levels)."""
    row_weights = _check_weights(weights, len(train_frame))
    numeric = tuple(definition.name for definition in definitions if definition.kind == "numeric")
    categorical = tuple(definition.name for definition in definitions if definition.kind == "categorical")
    labels = train_frame[label_column].astype("float64").to_numpy(na_value=np.nan)
    n_positive = int(np.nansum(labels))
    if n_positive in (0, labels.size) or np.any((labels != 0) & (labels != 1)):
        raise InsufficientDataError(
            f"weighted logistic baseline: {label_column!r} must contain both 0 and 1; "
            f"it has {n_positive} converted of {labels.size}"
        )
    pipeline = build_pipeline(
        numeric, categorical, inverse_regularization=1.0, min_category_count=5, max_iter=max_iter, seed=seed
    )
    pipeline.fit(
        prepare_frame(train_frame, numeric, categorical),
        labels.astype(np.int64),
        model__sample_weight=row_weights,
    )
    return LogisticBaseline(pipeline, numeric, categorical)
