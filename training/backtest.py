"""Walk-forward backtest: judge the conversion model and its retraining cadence as they will run.

A single time-ordered split trains once and measures one period, often a regime change. A
model in production is retrained every few days or every few thousand leads instead. This
module replays that:

1. Build the labelled snapshots of the history as ``leadscore train`` does
   (``training.train.build_snapshots``) and sort them by cutoff.
2. From a start time on, cut the scored rows into steps: every N rows, every duration, or a
   single step (train once).
3. Before each step, retrain from scratch on the rows whose label window ended before the
   step starts, or on a recent window of them. The retrain runs the steps of
   ``leadscore train``: feature spec, time-ordered validation and calibration folds, Optuna
   tuning with the same trial budget, the LightGBM conversion model with early stopping, and
   its calibrator. The logistic and rule-score baselines and, when the history has orders,
   the LTV model are retrained on the same rows.
4. Score the step's rows and compute ROC AUC, ALIFT, PR AUC, Brier and ECE per step and
   over all scored rows (LTV: normalized Gini and Spearman on converted rows).

No state passes from one step to the next. ``fit_step`` refits any single step alone, and
with the same seed it gives the same model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from data.folder import CanonicalTables, CustomAttribute, read_data_dir
from features.catalog import FeatureDef
from features.config import FeatureConfig
from features.leakage import probe
from features.spec import FeatureSpec
from leadscore.errors import ConfigError, InsufficientDataError
from training.baselines.logistic import LogisticBaseline, fit_logistic
from training.baselines.rules import RuleScoreModel, fit_rule_model
from training.boosting import Fold
from training.conversion import ConversionModel, fit_conversion
from training.drift_options import (
    DriftOptions,
    Span,
    add_change_features,
    fit_weighted_conversion,
    fit_weighted_logistic,
    recency_weights,
    select_window,
)
from training.evaluation import conversion_metrics, ltv_metrics
from training.ltv_fit import LtvFit, fit_ltv_model
from training.params import DEFAULT_SEED
from training.train import DEFAULT_TRIALS, TrainOptions, assess_training_fold, build_snapshots
from training.tuning import TuningResult, tune_conversion

logger = logging.getLogger(__name__)

IndexArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ValidationMetric = Literal["binary_logloss", "auc"]

MODEL = "model"
LOGISTIC = "logistic"
RULES = "rules"
SCORE_COLUMNS: dict[str, str] = {MODEL: "p_model", LOGISTIC: "p_logistic", RULES: "p_rules"}
DEFAULT_START_FRACTION = 0.8
# The retraining policy that `leadscore backtest` runs when no option overrides it, the one that
# the walk-forward experiments support: experiments/backtest_bank_marketing.py and
# experiments/backtest_synthetic.py, with the numbers in experiments/results/backtest-*.md.
DEFAULT_RETRAIN_EVERY = Span(duration=pd.Timedelta(days=14))
DEFAULT_CALIBRATION_SLICE = Span(rows=1000)
# Fewer scored rows than this give a ranking metric too noisy to read. The step still counts
# in the pooled metrics.
MIN_ROWS_FOR_STEP_METRICS = 20
MIN_BUYERS_FOR_LTV_METRICS = 10


class BacktestOptions(BaseModel):
    """Settings of one walk-forward backtest, filled by the CLI from its flags."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    data_dir: Path = Field(description="Data folder of canonical Parquet tables.")
    retrain_every: Span | None = Field(
        description="Rows or duration between retrains. None trains once and scores every later row."
    )
    start: pd.Timestamp | None = Field(
        default=None, description="Time the first step starts. None means at start_fraction of the rows."
    )
    start_fraction: float = Field(
        default=DEFAULT_START_FRACTION,
        gt=0,
        lt=1,
        description="Share of the labelled rows, in cutoff order, before the first step when start is None.",
    )
    trials: int = Field(
        default=DEFAULT_TRIALS, ge=0, description="Optuna trials per retrain. 0 uses the default parameters."
    )
    validation_metric: ValidationMetric = Field(
        default="binary_logloss",
        description="LightGBM metric that Optuna tunes and early stopping watches on the validation fold.",
    )
    seed: int = Field(default=DEFAULT_SEED, ge=0, description="Seed of every retrain (Optuna, LightGBM).")
    num_threads: int | None = Field(
        default=None, ge=1, description="LightGBM threads. None means 2, capped at the cores."
    )
    feature_config: FeatureConfig = Field(
        default_factory=lambda: FeatureConfig(), description="Spine, label and feature settings."
    )
    observed_until: pd.Timestamp | None = Field(
        default=None, description="End of the observed history. None means the latest event in the tables."
    )
    valid_fraction: float = Field(
        default=0.15, gt=0, lt=0.5, description="Share of each retrain's rows in its validation fold."
    )
    calibration_fraction: float = Field(
        default=0.10,
        ge=0,
        lt=0.5,
        description="Share of each retrain's rows in its calibration fold. 0 calibrates on validation.",
    )
    drift: DriftOptions = Field(
        default_factory=lambda: DriftOptions(), description="Drift-robust training options."
    )
    leakage_threshold: float = Field(
        default=0.95, gt=0.5, le=1.0, description="Single-feature AUC above which a feature leaks."
    )
    work_dir: Path = Field(
        default=Path(".leadscore"), description="Folder for the Optuna studies of the retrains."
    )


# --- history and steps --------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """The labelled snapshots in cutoff order, their feature definitions and facts about the data."""

    frame: pd.DataFrame
    definitions: list[FeatureDef]
    attributes: tuple[CustomAttribute, ...]
    observed_until: pd.Timestamp
    has_orders: bool
    counts: dict[str, int]


def load_history(options: BacktestOptions, tables: CanonicalTables | None = None) -> History:
    """Read the data folder (unless ``tables`` is given) and build the labelled snapshot frame.

    Rows whose label window is not over by the end of the history are left out and counted.
    Change features, when configured, are added here, because each one reads only older rows.
    """
    if tables is None:
        tables = read_data_dir(options.data_dir)
    snapshots = build_snapshots(tables, options.feature_config, options.observed_until)
    if snapshots.frame.empty:
        raise InsufficientDataError(
            f"no snapshot in {options.data_dir} has a complete {options.feature_config.horizon_days}-day "
            "label window; import a longer history or lower the horizon"
        )
    frame = snapshots.frame.sort_values(["cutoff", "lead_id"], kind="stable").reset_index(drop=True)
    definitions = list(snapshots.definitions)
    change = options.drift.change_features
    if change is not None:
        frame, definitions = add_change_features(frame, definitions, change)
    return History(
        frame=frame,
        definitions=definitions,
        attributes=tuple(tables.attributes),
        observed_until=snapshots.observed_until,
        has_orders=not tables.orders.empty,
        counts=dict(snapshots.counts),
    )


@dataclass(frozen=True)
class Step:
    """One retrain and the rows it scores.

    The retrain may use rows whose label window ends before ``start``, and it scores the rows
    with a cutoff in [start, end). ``end`` is None for the last step, and ``positions`` are the
    scored rows' positions in the history frame.
    """

    number: int
    start: pd.Timestamp
    end: pd.Timestamp | None
    positions: IndexArray


@dataclass(frozen=True)
class StepPlan:
    """The steps of a backtest, where it starts and the periods that had no row to score."""

    steps: list[Step]
    start: pd.Timestamp
    empty_periods: int


def resolve_start(frame: pd.DataFrame, options: BacktestOptions) -> pd.Timestamp:
    """Return the start of the first step: ``options.start`` or the cutoff at ``start_fraction``."""
    cutoffs = frame["cutoff"]
    if options.start is None:
        position = min(len(frame) - 1, int(np.floor(options.start_fraction * len(frame))))
        return pd.Timestamp(cutoffs.iloc[position])
    start = pd.Timestamp(options.start)
    if start.tzinfo is None:
        raise ConfigError(
            f"the backtest start {start.isoformat()} has no timezone; give one, e.g. 2009-06-01T00:00+00:00"
        )
    first, last = pd.Timestamp(cutoffs.iloc[0]), pd.Timestamp(cutoffs.iloc[-1])
    if not first < start <= last:
        raise ConfigError(
            f"the backtest start {start.isoformat()} must lie after the first labelled cutoff "
            f"{first.isoformat()} and at or before the last {last.isoformat()}, so there is history to "
            "train on and rows to score"
        )
    return start


def plan_steps(frame: pd.DataFrame, start: pd.Timestamp, every: Span | None) -> StepPlan:
    """Cut the rows with a cutoff at or after ``start`` into steps (``frame`` sorted by cutoff).

    Every N rows: a step starts at the cutoff of every N-th scored row, and rows with equal
    cutoffs share a step, so a step can hold a few rows more or fewer than N. Every duration:
    steps are consecutive periods from ``start``, and periods without rows are skipped and
    counted. ``every=None`` gives one step.
    """
    cutoffs = pd.DatetimeIndex(frame["cutoff"])
    first = int(cutoffs.searchsorted(start, side="left"))
    if first >= len(frame):
        raise ConfigError(f"no labelled row has a cutoff at or after the backtest start {start.isoformat()}")
    empty = 0
    if every is None:
        boundaries = [start]
    elif every.rows is not None:
        boundaries = [start, *(pd.Timestamp(value) for value in cutoffs[first + every.rows :: every.rows])]
    else:
        period = every.time()
        count = int((cutoffs[-1] - start) // period) + 1
        boundaries = [start + k * period for k in range(count)]
    boundaries = sorted(set(boundaries))

    steps: list[Step] = []
    for index, step_start in enumerate(boundaries):
        step_end = boundaries[index + 1] if index + 1 < len(boundaries) else None
        low = int(cutoffs.searchsorted(step_start, side="left"))
        high = len(frame) if step_end is None else int(cutoffs.searchsorted(step_end, side="left"))
        if high <= low:
            empty += 1
            continue
        steps.append(Step(len(steps) + 1, step_start, step_end, np.arange(low, high, dtype=np.int64)))
    return StepPlan(steps, start, empty)


def training_rows(history: History, step: Step, horizon_days: int) -> pd.DataFrame:
    """Return the rows a retrain at ``step.start`` may use: label window over strictly before it.

    A row's label counts events in [cutoff, cutoff + horizon], so the row is usable only when
    cutoff + horizon < step.start. Every such row also has a cutoff before the step.
    """
    frame = history.frame
    label_end = frame["cutoff"] + pd.Timedelta(days=horizon_days)
    return frame.loc[(label_end < step.start).to_numpy()]


# --- one retrain --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainFolds:
    """The folds of one retrain, in time order, and the rows left out by reason."""

    train: pd.DataFrame
    valid: pd.DataFrame
    calibration: pd.DataFrame
    excluded: dict[str, int]

    def used(self) -> pd.DataFrame:
        """Return every row the retrain fits on (train, validation and calibration)."""
        return pd.concat([self.train, self.valid, self.calibration])


def _first_position_of_last(cutoffs: pd.DatetimeIndex, count: int) -> int:
    """Return where the last ``count`` rows start, moved back so equal cutoffs are not split."""
    count = max(1, min(count, len(cutoffs)))
    return int(cutoffs.searchsorted(cutoffs[len(cutoffs) - count], side="left"))


def split_retrain_rows(
    rows: pd.DataFrame,
    *,
    valid_fraction: float,
    calibration_fraction: float,
    calibration_slice: Span | None,
    purge: pd.Timedelta,
) -> RetrainFolds:
    """Split a retrain's rows (sorted by cutoff) into train, validation and calibration by time.

    The layout follows ``training.split.time_split`` without its test fold, because the
    step's later rows are the test: train, a purge gap of one label horizon, validation,
    then calibration (the most recent rows). The calibration fold is ``calibration_slice``
    when given, else the last ``calibration_fraction`` of the rows, else empty (the
    calibrator then uses validation). A lead that already has a row in an earlier fold
    loses its rows in the later folds.
    """
    cutoffs = pd.DatetimeIndex(rows["cutoff"])
    n_rows = len(rows)
    if calibration_slice is not None:
        recent = select_window(rows, calibration_slice, pd.Timestamp(cutoffs[-1]))
        calibration_start = n_rows - len(recent)
    elif calibration_fraction > 0:
        calibration_start = _first_position_of_last(cutoffs, round(calibration_fraction * n_rows))
    else:
        calibration_start = n_rows

    valid_count = max(1, round(valid_fraction * n_rows))
    valid_start = 0
    if calibration_start > 0:
        valid_start = _first_position_of_last(cutoffs[:calibration_start], valid_count)
    if valid_start == 0 and calibration_slice is not None:
        raise InsufficientDataError(
            f"the calibration slice of the newest {calibration_slice.describe()} takes "
            f"{n_rows - calibration_start} of the {n_rows} rows of a retrain and leaves too few for "
            "training and validation; use a smaller --calibrate-on, --calibrate-on fraction or a later start"
        )
    if valid_start == 0:
        raise InsufficientDataError(
            f"a retrain with {n_rows} rows cannot be split into train, validation and calibration folds; "
            "use a later start, a larger window or smaller fractions"
        )

    train_end = cutoffs[valid_start] - purge
    fold = np.full(n_rows, -1, dtype=np.int64)
    fold[: int(cutoffs.searchsorted(train_end, side="left"))] = 0
    fold[valid_start:calibration_start] = 1
    fold[calibration_start:] = 2

    in_gap = fold < 0
    first_fold = pd.Series(np.where(in_gap, 3, fold)).groupby(rows["lead_id"].to_numpy()).transform("min")
    later = ~in_gap & (fold != first_fold.to_numpy())
    keep = ~in_gap & ~later

    parts = [rows.iloc[np.flatnonzero(keep & (fold == number))] for number in range(3)]
    if parts[0].empty or parts[1].empty:
        empty = "training" if parts[0].empty else "validation"
        raise InsufficientDataError(
            f"a retrain with {n_rows} rows has an empty {empty} fold after the {purge} purge gap; "
            "use a later start or a larger window"
        )
    return RetrainFolds(
        train=parts[0],
        valid=parts[1],
        calibration=parts[2],
        excluded={"in_purge_gap": int(in_gap.sum()), "lead_already_in_earlier_fold": int(later.sum())},
    )


@dataclass
class StepFit:
    """Output of one retrain: the rows it used, its models and their fitting facts."""

    step: Step
    seed: int
    folds: RetrainFolds
    spec: FeatureSpec
    features: list[FeatureDef]
    conversion: ConversionModel
    tuning: TuningResult | None
    logistic: LogisticBaseline
    rules: RuleScoreModel
    ltv: LtvFit | None
    window_rows: int


def _fold(spec: FeatureSpec, frame: pd.DataFrame) -> Fold:
    return Fold(spec.transform(frame).matrix.reset_index(drop=True), frame["converted"].to_numpy(np.float64))


def _train_options(options: BacktestOptions) -> TrainOptions:
    return TrainOptions(
        data_dir=options.data_dir,
        work_dir=options.work_dir,
        trials=options.trials,
        seed=options.seed,
        num_threads=options.num_threads,
        feature_config=options.feature_config,
        valid_fraction=options.valid_fraction,
        calibration_fraction=options.calibration_fraction,
        register_model=False,
    )


def _fit_conversion_model(
    options: BacktestOptions,
    folds: RetrainFolds,
    spec: FeatureSpec,
    step: Step,
    study_name: str,
) -> tuple[ConversionModel, TuningResult | None]:
    train, valid = _fold(spec, folds.train), _fold(spec, folds.valid)
    calibration = _fold(spec, folds.calibration) if len(folds.calibration) else None
    sufficiency = assess_training_fold(folds.train)
    tuning: TuningResult | None = None
    if options.trials > 0:
        tuning = tune_conversion(
            train,
            valid,
            n_trials=options.trials,
            seed=options.seed,
            storage_url=f"sqlite:///{(options.work_dir / 'optuna.db').resolve()}",
            study_name=study_name,
            metric=options.validation_metric,
            num_threads=options.num_threads,
        )
    params = {**(tuning.best_params if tuning is not None else {}), "metric": options.validation_metric}
    half_life = options.drift.recency_half_life
    if half_life is None:
        model = fit_conversion(
            train,
            valid,
            calibration,
            params=params,
            sufficiency=sufficiency,
            seed=options.seed,
            num_threads=options.num_threads,
        )
    else:
        model = fit_weighted_conversion(
            train,
            valid,
            calibration,
            recency_weights(folds.train["cutoff"], step.start, half_life),
            params=params,
            sufficiency=sufficiency,
            seed=options.seed,
            num_threads=options.num_threads,
        )
    return model, tuning


def _fit_baselines(
    options: BacktestOptions, used: pd.DataFrame, features: list[FeatureDef], step: Step
) -> tuple[LogisticBaseline, RuleScoreModel]:
    """Fit the logistic and rule baselines on every row the model used (they need no validation)."""
    half_life = options.drift.recency_half_life
    if half_life is None:
        logistic = fit_logistic(used, features, seed=options.seed)
    else:
        weights = recency_weights(used["cutoff"], step.start, half_life)
        logistic = fit_weighted_logistic(used, features, weights, seed=options.seed)
    rules = fit_rule_model(used, used["converted"].to_numpy(np.float64), allow_missing_columns=True)
    return logistic, rules


def _fit_ltv(options: BacktestOptions, rows: pd.DataFrame, spec: FeatureSpec, step: Step) -> LtvFit:
    """Fit the LTV model as ``leadscore train`` does, on rows whose LTV window ended before the step.

    The other rows are left out entirely, because their ``value`` counts revenue after the
    step starts and the fallback LTV would otherwise average it.
    """
    horizon = pd.Timedelta(days=options.feature_config.ltv_horizon_days)
    known = rows.loc[(rows["cutoff"] + horizon < step.start).to_numpy()]
    return fit_ltv_model(_train_options(options), known.assign(value_complete=True), spec)


def _step_rows(history: History, step: Step, options: BacktestOptions) -> pd.DataFrame:
    """Return the rows a retrain for ``step`` fits on: available at its start and inside the window."""
    available = training_rows(history, step, options.feature_config.horizon_days)
    rows = select_window(available, options.drift.window, step.start)
    if rows.empty:
        raise InsufficientDataError(
            f"no row has a complete label window before step {step.number} starts at {step.start.isoformat()}"
        )
    labels = rows["converted"].to_numpy()
    if labels.min() == labels.max():
        raise InsufficientDataError(
            f"the {len(rows)} rows available before step {step.number} all have converted={labels[0]}"
        )
    return rows


@dataclass(frozen=True)
class FeatureScreen:
    """The features the leakage probe kept and the ones it excluded, with the step it ran for."""

    features: list[FeatureDef]
    excluded: list[str]
    step_number: int


def screen_features(history: History, step: Step, options: BacktestOptions) -> FeatureScreen:
    """Run the leakage probe of ``leadscore train`` on the rows the retrain for ``step`` fits on."""
    rows = _step_rows(history, step, options)
    leakage = probe(
        rows,
        rows["converted"].to_numpy(),
        history.definitions,
        history.attributes,
        threshold=options.leakage_threshold,
        seed=options.seed,
    )
    return FeatureScreen(leakage.kept(history.definitions), leakage.excluded, step.number)


def fit_step(
    history: History,
    step: Step,
    options: BacktestOptions,
    screen: FeatureScreen,
    *,
    study_name: str | None = None,
) -> StepFit:
    """Retrain every model for ``step`` from the rows available at its start, independent of other steps.

    ``screen`` gives the features that passed the leakage probe. Raises InsufficientDataError
    when the available rows cannot fill the folds or lack a class.
    """
    rows = _step_rows(history, step, options)
    features = screen.features
    folds = split_retrain_rows(
        rows,
        valid_fraction=options.valid_fraction,
        calibration_fraction=options.calibration_fraction,
        calibration_slice=options.drift.calibration_slice,
        purge=pd.Timedelta(days=options.feature_config.horizon_days),
    )
    spec = FeatureSpec.fit(folds.train, features)
    conversion, tuning = _fit_conversion_model(
        options, folds, spec, step, study_name or f"backtest-step-{step.number:03d}"
    )
    logistic, rules = _fit_baselines(options, folds.used(), features, step)
    ltv = _fit_ltv(options, rows, spec, step) if history.has_orders else None
    return StepFit(
        step=step,
        seed=options.seed,
        folds=folds,
        spec=spec,
        features=features,
        conversion=conversion,
        tuning=tuning,
        logistic=logistic,
        rules=rules,
        ltv=ltv,
        window_rows=len(rows),
    )


def score_rows(fit: StepFit, rows: pd.DataFrame) -> pd.DataFrame:
    """Score ``rows`` with the step's models: one probability column per model, LTV when fitted.

    ``p_model_raw`` is the booster's probability before calibration.
    """
    matrix = fit.spec.transform(rows).matrix
    prior = fit.rules.predict_proba(rows) if fit.conversion.prior_weight > 0 else None
    scores = pd.DataFrame(
        {
            "p_model": fit.conversion.predict(matrix, prior),
            "p_model_raw": fit.conversion.predict_raw(matrix),
            "p_logistic": fit.logistic.predict_proba(rows),
            "p_rules": fit.rules.predict_proba(rows),
        },
        index=rows.index,
    )
    if fit.ltv is not None:
        if fit.ltv.model is not None:
            scores["ltv_model"] = np.maximum(fit.ltv.model.predict(matrix), 0.0)
        else:
            scores["ltv_model"] = fit.ltv.fallback
    return scores


# --- evaluation ---------------------------------------------------------------------------------


def score_metrics(y: FloatArray, p: FloatArray) -> dict[str, float]:
    """Return the conversion metrics of one score on rows with both classes, and its mean."""
    return {**conversion_metrics(y, p), "mean_p": float(np.mean(p))}


def evaluate_scores(predictions: pd.DataFrame) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Return metrics per model (and LTV metrics) for scored rows, with notes on what was skipped."""
    notes: list[str] = []
    y = predictions["converted"].to_numpy(np.float64)
    results: dict[str, dict[str, float]] = {name: {} for name in SCORE_COLUMNS}
    if y.min() == y.max():
        notes.append(f"conversion metrics undefined: all {y.size} rows have converted={int(y[0])}")
    elif y.size < MIN_ROWS_FOR_STEP_METRICS:
        notes.append(f"conversion metrics skipped: {y.size} rows (fewer than {MIN_ROWS_FOR_STEP_METRICS})")
    else:
        for name, column in SCORE_COLUMNS.items():
            results[name] = score_metrics(y, predictions[column].to_numpy(np.float64))
    if "ltv_model" in predictions:
        buyers = predictions.loc[
            (predictions["converted"] == 1) & predictions["value_complete"].to_numpy(dtype=bool)
        ]
        if len(buyers) < MIN_BUYERS_FOR_LTV_METRICS:
            notes.append(
                f"LTV metrics skipped: {len(buyers)} converted rows with a complete LTV window "
                f"(fewer than {MIN_BUYERS_FOR_LTV_METRICS})"
            )
        else:
            ltv = ltv_metrics(buyers["value"].to_numpy(np.float64), buyers["ltv_model"].to_numpy(np.float64))
            results[MODEL].update(ltv)
    return results, notes


# --- the whole backtest -------------------------------------------------------------------------


@dataclass
class StepResult:
    """Facts and metrics of one step; ``skipped`` contains the reason when no model could be fitted."""

    number: int
    start: pd.Timestamp
    end: pd.Timestamp | None
    test_rows: int
    test_positive_rate: float
    seed: int
    train_rows: int = 0
    train_positive_rate: float = float("nan")
    train_first_cutoff: pd.Timestamp | None = None
    train_last_cutoff: pd.Timestamp | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    best_iteration: int = 0
    calibration_method: str = ""
    calibration_rows: int = 0
    seconds: float = 0.0


@dataclass
class BacktestResult:
    """The outcome of a backtest: per-step results, scored rows, pooled and per-step-mean metrics."""

    options: BacktestOptions
    steps: list[StepResult]
    predictions: pd.DataFrame
    overall: dict[str, dict[str, float]]
    step_mean: dict[str, dict[str, float]]
    overall_notes: list[str]
    leakage_excluded: list[str]
    counts: dict[str, int]
    start: pd.Timestamp
    first_cutoff: pd.Timestamp
    last_cutoff: pd.Timestamp
    seconds: float


def _step_result(step: Step, fit: StepFit, rows: pd.DataFrame, seconds: float) -> StepResult:
    used = fit.folds.used()
    return StepResult(
        number=step.number,
        start=step.start,
        end=step.end,
        test_rows=len(rows),
        test_positive_rate=float(rows["converted"].mean()),
        seed=fit.seed,
        train_rows=len(used),
        train_positive_rate=float(used["converted"].mean()),
        train_first_cutoff=pd.Timestamp(used["cutoff"].min()),
        train_last_cutoff=pd.Timestamp(used["cutoff"].max()),
        best_iteration=fit.conversion.best_iteration,
        calibration_method=fit.conversion.calibrator.method,
        calibration_rows=len(fit.folds.calibration) or len(fit.folds.valid),
        seconds=round(seconds, 2),
    )


def _mean_over_steps(steps: list[StepResult]) -> dict[str, dict[str, float]]:
    collected: dict[str, dict[str, list[float]]] = {}
    for step in steps:
        for model, values in step.metrics.items():
            for name, value in values.items():
                collected.setdefault(model, {}).setdefault(name, []).append(value)
    return {
        model: {name: float(np.mean(values)) for name, values in by_name.items()}
        for model, by_name in collected.items()
    }


def run_backtest(
    options: BacktestOptions,
    *,
    tables: CanonicalTables | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> BacktestResult:
    """Walk forward through the history: retrain before each step, score it, and collect metrics.

    ``on_step`` is called after each step, for progress output. A step whose retrain fails
    for lack of data is kept in the result with the reason, and its rows count as unscored.
    """
    started = time.perf_counter()
    history = load_history(options, tables)
    frame = history.frame
    start = resolve_start(frame, options)
    plan = plan_steps(frame, start, options.retrain_every)
    run_stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S")
    logger.info(
        "backtest of %s: %d steps from %s, retrain every %s, window %s",
        options.data_dir,
        len(plan.steps),
        start.isoformat(),
        options.retrain_every.describe() if options.retrain_every is not None else "never (train once)",
        options.drift.window.describe() if options.drift.window is not None else "expanding",
    )

    # The probe runs once, on the first retrain's rows, because it is slow and a feature that
    # encodes the outcome does so in every period. NOTE: a leak that only begins after the
    # first step is therefore not caught here, unlike in 'leadscore train'.
    screen = _first_screen(history, plan, options)
    if screen.excluded:
        logger.warning("leakage probe excluded %s for every step", screen.excluded)

    results: list[StepResult] = []
    scored: list[pd.DataFrame] = []
    for step in plan.steps:
        step_started = time.perf_counter()
        rows = frame.iloc[step.positions]
        try:
            study = f"backtest-{run_stamp}-step-{step.number:03d}"
            fit = fit_step(history, step, options, screen, study_name=study)
        except InsufficientDataError as error:
            logger.warning("step %d skipped: %s", step.number, error)
            result = StepResult(
                step.number,
                step.start,
                step.end,
                len(rows),
                float(rows["converted"].mean()),
                options.seed,
                skipped=str(error),
            )
        else:
            predictions = pd.concat([_prediction_keys(rows, step), score_rows(fit, rows)], axis=1)
            result = _step_result(step, fit, rows, time.perf_counter() - step_started)
            result.metrics, result.notes = evaluate_scores(predictions)
            scored.append(predictions)
            _log_step(result)
        results.append(result)
        if on_step is not None:
            on_step(result)

    if not scored:
        raise InsufficientDataError(
            f"every one of the {len(plan.steps)} steps was skipped for lack of training data; "
            "use a later --from or a longer history"
        )
    predictions = pd.concat(scored, ignore_index=True)
    overall, overall_notes = evaluate_scores(predictions)
    counts = {
        **history.counts,
        "rows_before_start": int(plan.steps[0].positions[0]),
        "rows_scored": len(predictions),
        "rows_in_skipped_steps": sum(step.test_rows for step in results if step.skipped),
        "steps": len(results),
        "steps_skipped": sum(1 for step in results if step.skipped),
        "empty_periods": plan.empty_periods,
    }
    return BacktestResult(
        options=options,
        steps=results,
        predictions=predictions,
        overall=overall,
        step_mean=_mean_over_steps([step for step in results if not step.skipped]),
        overall_notes=overall_notes,
        leakage_excluded=screen.excluded,
        counts=counts,
        start=start,
        first_cutoff=pd.Timestamp(frame["cutoff"].iloc[0]),
        last_cutoff=pd.Timestamp(frame["cutoff"].iloc[-1]),
        seconds=round(time.perf_counter() - started, 1),
    )


def _first_screen(history: History, plan: StepPlan, options: BacktestOptions) -> FeatureScreen:
    """Probe the features on the first step that has rows of both classes to train on."""
    for step in plan.steps:
        try:
            return screen_features(history, step, options)
        except InsufficientDataError as error:
            logger.warning("leakage probe cannot run for step %d: %s", step.number, error)
    raise InsufficientDataError(
        f"none of the {len(plan.steps)} steps has training rows of both classes; "
        "use a later --from or a longer history"
    )


def _prediction_keys(rows: pd.DataFrame, step: Step) -> pd.DataFrame:
    columns = ["lead_id", "cutoff", "converted", "value", "value_complete"]
    return rows[columns].assign(step=step.number)


def _log_step(result: StepResult) -> None:
    model = result.metrics.get(MODEL, {})
    logistic = result.metrics.get(LOGISTIC, {})
    logger.info(
        "step %d: trained on %d rows (rate %.3f), scored %d rows (rate %.3f); "
        "AUC model %s, logistic %s; %.1f s",
        result.number,
        result.train_rows,
        result.train_positive_rate,
        result.test_rows,
        result.test_positive_rate,
        _shown(model.get("conversion_auc")),
        _shown(logistic.get("conversion_auc")),
        result.seconds,
    )


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def describe_options(options: BacktestOptions) -> dict[str, Any]:
    """Return the backtest settings as plain values, for MLflow parameters and reports."""
    config = options.feature_config
    start = options.start.isoformat() if options.start is not None else f"{options.start_fraction:g} of rows"
    return {
        "data_dir": str(options.data_dir),
        "retrain_every": options.retrain_every.to_text() if options.retrain_every is not None else "once",
        "start": start,
        "trials": options.trials,
        "validation_metric": options.validation_metric,
        "seed": options.seed,
        "horizon_days": config.horizon_days,
        "ltv_horizon_days": config.ltv_horizon_days,
        "max_snapshots": config.max_snapshots,
        "valid_fraction": options.valid_fraction,
        "calibration_fraction": options.calibration_fraction,
        "leakage_threshold": options.leakage_threshold,
        **options.drift.describe(),
    }
