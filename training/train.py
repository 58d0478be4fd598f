"""Training orchestration: a data folder in, a registered and gated ``lead-scorer`` version out.

Steps, each a function below or in the module named beside it:

1. Read the data folder and build the training spine (creation plus periodic snapshots),
   labels and features. Rows whose conversion window is not over yet are left out and counted.
2. Run the leakage probe on the labelled rows, then drop the features it excludes and those
   named in ``exclude_features``.
3. Split by time (train, validation, calibration, test) with a purge of the label horizon,
   and check the cold-start level on the training fold.
4. Fit the feature spec, tune the conversion booster with Optuna, fit it and calibrate it on
   the calibration fold. Fit the rule score, which is a baseline and the cold-start prior.
5. Fit the LTV model on converted leads whose LTV window is complete, on its own time split
   (hurdle or Tweedie, chosen on validation): ``training.ltv_fit``.
6. Fit grade bands and segment thresholds on the calibration fold, assemble the bundle and
   score the test folds through the one score path. Score the logistic, rule and BG/NBD +
   Gamma-Gamma baselines on the same rows (``training.evaluation``).
7. Write plots and the model card, save the bundle, log everything to MLflow, register the
   version as ``challenger`` and run the promotion gate (card and logging in
   ``training.run_record``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from data.folder import CanonicalTables, read_data_dir
from features.catalog import FeatureDef
from features.config import FeatureConfig
from features.labels import attach_labels
from features.leakage import LeakageReport, probe
from features.pipeline import build_features, feature_definitions
from features.spec import FeatureSpec
from features.spine import latest_event_time, training_spine
from leadscore.errors import ConfigError, InsufficientDataError
from training import coldstart, metrics
from training.baselines.rules import RuleScoreModel, fit_rule_model
from training.boosting import Fold, fold_of
from training.bundle import (
    GradeBands,
    ScorerBundle,
    SegmentThresholds,
    content_fingerprint,
    feature_config_to_dict,
    make_bundle_version,
    score_reference,
)
from training.conversion import ConversionModel, fit_conversion
from training.evaluation import evaluate_test_folds
from training.ltv import LtvModel
from training.ltv_fit import LtvFit, fit_ltv_model
from training.params import DEFAULT_SEED
from training.plots import write_evaluation_plots
from training.registry import (
    CONVERSION_TEST,
    LTV_TEST,
    GateConfig,
    GateDecision,
    gate_metrics,
    run_gate,
)
from training.run_record import build_card, log_run_to_mlflow, write_run_files
from training.scorer import example_lead_for, score_tables
from training.split import SplitIndices, time_split
from training.tracking import (
    DEFAULT_EXPERIMENT,
    resolve_tracking_uri,
)
from training.tuning import TuningResult, tune_conversion

logger = logging.getLogger(__name__)

DEFAULT_TRIALS = 10
MAX_HOLDOUT_SHARE = 0.5
"""Largest share of snapshot rows that validation, calibration and test may take together."""
CALIBRATION_ROWS_TOLERANCE = 0.95
"""Share of ``calibration_rows`` the calibration fold must reach before the split is accepted."""
CALIBRATION_RESIZE_ATTEMPTS = 4


class TrainOptions(BaseModel):
    """Settings of one training run; the CLI fills them from flags and leadscore settings."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    data_dir: Path = Field(description="Data folder of canonical Parquet tables.")
    work_dir: Path = Field(
        default=Path(".leadscore"), description="Folder for bundles, the Optuna study and the MLflow store."
    )
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; None means SQLite in work_dir."
    )
    experiment: str = Field(default=DEFAULT_EXPERIMENT, min_length=1, description="MLflow experiment name.")
    trials: int = Field(
        default=DEFAULT_TRIALS, ge=0, description="Optuna trials for the conversion booster; 0 skips tuning."
    )
    tuning_timeout_seconds: float | None = Field(
        default=None, gt=0, description="Wall-clock limit of the Optuna study, in seconds."
    )
    seed: int = Field(default=DEFAULT_SEED, ge=0, description="Seed of Optuna, LightGBM and the baselines.")
    num_threads: int | None = Field(
        default=None, ge=1, description="LightGBM threads; None means 2, capped at the cores."
    )
    feature_config: FeatureConfig = Field(
        default_factory=lambda: FeatureConfig(), description="Spine, label and feature settings."
    )
    observed_until: pd.Timestamp | None = Field(
        default=None, description="End of the observed history; None means the latest event in the tables."
    )
    leakage_threshold: float = Field(
        default=0.95, gt=0.5, le=1.0, description="Single-feature AUC above which a feature leaks."
    )
    leakage_allow: tuple[str, ...] = Field(
        default=(), description="Features kept even when the leakage probe flags them."
    )
    exclude_features: tuple[str, ...] = Field(
        default=(), description="Features left out of the model whatever the leakage probe finds."
    )
    valid_fraction: float = Field(
        default=0.15, gt=0, lt=1, description="Share of snapshots in the validation fold."
    )
    calibration_fraction: float = Field(
        default=0.10, ge=0, lt=1, description="Share of snapshots in the calibration fold."
    )
    calibration_rows: int | None = Field(
        default=None,
        ge=1,
        description="Size of the calibration fold in snapshot rows, replacing calibration_fraction when set.",
    )
    test_fraction: float = Field(default=0.15, gt=0, lt=1, description="Share of snapshots in the test fold.")
    gate: GateConfig = Field(
        default_factory=lambda: GateConfig(), description="Metrics and tolerance of the promotion gate."
    )
    shuffle_training_labels: bool = Field(
        default=False,
        description="Permute the labels outside the test fold: a y-randomization check of pipeline and gate.",
    )
    register_model: bool = Field(
        default=True, description="Register the model and run the gate; False only logs the run."
    )


@dataclass
class TrainResult:
    """Outcome of a training run: run id, bundle, registered version and gate decision."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    bundle: ScorerBundle
    bundle_dir: Path
    model_version: str | None
    decision: GateDecision | None
    test_metrics: dict[str, dict[str, float]]
    timings: dict[str, float] = field(default_factory=dict)


# --- timing -------------------------------------------------------------------------------------


class _Stopwatch:
    """Seconds spent per named step, for the run log and MLflow."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 3)
            logger.info("step %s took %.1f s", name, self.seconds[name])


# --- 1. snapshots -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshots:
    """Labelled feature rows whose conversion window is complete, and what was left out."""

    frame: pd.DataFrame
    definitions: list[FeatureDef]
    observed_until: pd.Timestamp
    counts: dict[str, int]


def build_snapshots(
    tables: CanonicalTables, config: FeatureConfig, observed_until: pd.Timestamp | None
) -> Snapshots:
    """Build spine, labels and features, keeping the rows whose label window has ended."""
    until = observed_until if observed_until is not None else latest_event_time(tables)
    spine = training_spine(tables, config, until)
    labelled = attach_labels(spine, tables, config, until)
    frame = build_features(labelled, tables, config)
    complete = frame["label_complete"].to_numpy(dtype=bool)
    counts = {
        "leads": len(tables.leads),
        "snapshots": len(frame),
        "snapshots_label_complete": int(complete.sum()),
        "excluded:label_window_incomplete": int((~complete).sum()),
    }
    logger.info(
        "training snapshots: %d rows, %d left out because their %d-day label window ends after %s",
        len(frame),
        counts["excluded:label_window_incomplete"],
        config.horizon_days,
        until.isoformat(),
    )
    kept = frame.loc[complete].reset_index(drop=True)
    return Snapshots(kept, feature_definitions(config, tables.attributes), until, counts)


# --- 3. split and cold start --------------------------------------------------------------------


def drop_excluded(
    kept: list[FeatureDef], definitions: list[FeatureDef], excluded: tuple[str, ...]
) -> list[FeatureDef]:
    """Remove the features named in ``excluded``; raise ConfigError for a name that is no feature."""
    unknown = sorted(set(excluded) - {definition.name for definition in definitions})
    if unknown:
        raise ConfigError(
            f"exclude_features names unknown feature(s) {unknown}; "
            f"features are {[definition.name for definition in definitions]}"
        )
    if excluded:
        logger.info("features excluded by request: %s", sorted(excluded))
    return [definition for definition in kept if definition.name not in set(excluded)]


def calibration_share(options: TrainOptions, rows: int) -> float:
    """Return the calibration fold's share of ``rows``: ``calibration_rows`` of them when set.

    Raises ConfigError when those rows would leave less than half of the history for the
    other folds.
    """
    if options.calibration_rows is None:
        return options.calibration_fraction
    share = options.calibration_rows / max(rows, 1)
    if share + options.valid_fraction + options.test_fraction > MAX_HOLDOUT_SHARE:
        raise ConfigError(
            f"calibration_rows {options.calibration_rows} is {share:.0%} of the {rows} snapshot rows, which "
            "leaves too few for training; use fewer calibration rows or leave it unset to calibrate on "
            f"the newest {options.calibration_fraction:.0%}"
        )
    return share


def _resize_calibration(
    options: TrainOptions, frame: pd.DataFrame, split: SplitIndices, share: float, purge: pd.Timedelta
) -> SplitIndices:
    """Grow the calibration share until the fold contains about ``calibration_rows`` rows.

    The split drops the rows of leads that already sit in an earlier fold, so with several
    snapshots per lead a share of the rows yields fewer calibration rows than asked for.
    """
    requested = options.calibration_rows
    for _ in range(CALIBRATION_RESIZE_ATTEMPTS):
        if requested is None or len(split.calibration) >= CALIBRATION_ROWS_TOLERANCE * requested:
            return split
        share *= requested / max(len(split.calibration), 1)
        if share + options.valid_fraction + options.test_fraction > MAX_HOLDOUT_SHARE:
            raise ConfigError(
                f"calibration_rows {requested} needs {share:.0%} of the {len(frame)} snapshot rows, because "
                "later snapshots of leads in earlier folds are left out, which leaves too few for "
                "training; use fewer calibration rows or leave it unset"
            )
        split = time_split(
            frame,
            "cutoff",
            valid_fraction=options.valid_fraction,
            test_fraction=options.test_fraction,
            purge=purge,
            calibration_fraction=share,
        )
    return split


def split_snapshots(options: TrainOptions, frame: pd.DataFrame) -> SplitIndices:
    """Split by cutoff with a purge of the label horizon.

    Each fold except the last must span more than the horizon, or the purge empties it. When
    that empties only the calibration fold, the split is retried without one, and the
    calibrator is fitted on the validation fold, which is still later than every training row.
    """
    purge = pd.Timedelta(days=options.feature_config.horizon_days)
    calibration_fraction = calibration_share(options, len(frame))
    try:
        split = time_split(
            frame,
            "cutoff",
            valid_fraction=options.valid_fraction,
            test_fraction=options.test_fraction,
            purge=purge,
            calibration_fraction=calibration_fraction,
        )
        return _resize_calibration(options, frame, split, calibration_fraction, purge)
    except InsufficientDataError as error:
        if calibration_fraction == 0 or "'calibration'" not in str(error):
            raise
        logger.warning(
            "%s; splitting again without a calibration fold, so the validation fold calibrates", error
        )
    return time_split(
        frame,
        "cutoff",
        valid_fraction=options.valid_fraction,
        test_fraction=options.test_fraction,
        purge=purge,
        calibration_fraction=0.0,
    )


def shuffle_labels_outside(frame: pd.DataFrame, keep: np.ndarray, *, seed: int) -> pd.DataFrame:
    """Return ``frame`` with the label columns permuted jointly over all rows except ``keep``.

    This is the y-randomization check: a model fitted on permuted labels has no signal to
    learn, so on the untouched test fold it shows the score of chance, and the promotion gate
    must reject it.
    """
    shuffled = frame.copy()
    rows = np.setdiff1d(np.arange(len(frame)), keep)
    order = np.random.default_rng(seed).permutation(rows)
    for column in ("converted", "value", "label_complete", "value_complete"):
        values = shuffled[column].to_numpy(copy=True)
        values[rows] = values[order]
        shuffled[column] = values
    logger.warning("training labels of %d rows are shuffled (y-randomization check)", rows.size)
    return shuffled


def _converted_leads(frame: pd.DataFrame) -> int:
    return int(frame.loc[frame["converted"] == 1, "lead_id"].nunique())


def assess_training_fold(train_frame: pd.DataFrame) -> coldstart.DataSufficiency:
    """Judge the cold-start level from distinct leads and converted leads in the training fold."""
    return coldstart.assess(
        len(train_frame), _converted_leads(train_frame), int(train_frame["lead_id"].nunique())
    )


def _check_test_fold(test_frame: pd.DataFrame) -> None:
    converted = int(test_frame["converted"].sum())
    if converted == 0 or converted == len(test_frame):
        raise InsufficientDataError(
            f"the test fold ({len(test_frame)} snapshots) has {converted} conversions, so the model cannot "
            "be evaluated; use a longer history or a larger test_fraction"
        )


# --- 4. conversion ------------------------------------------------------------------------------


def tune_and_fit_conversion(
    options: TrainOptions,
    folds: Mapping[str, Fold],
    sufficiency: coldstart.DataSufficiency,
    study_name: str,
) -> tuple[ConversionModel, TuningResult | None]:
    """Tune the conversion booster (unless ``trials`` is 0), then fit and calibrate it."""
    tuning: TuningResult | None = None
    if options.trials > 0:
        storage = f"sqlite:///{(options.work_dir / 'optuna.db').resolve()}"
        tuning = tune_conversion(
            folds["train"],
            folds["valid"],
            n_trials=options.trials,
            seed=options.seed,
            storage_url=storage,
            study_name=study_name,
            timeout=options.tuning_timeout_seconds,
            num_threads=options.num_threads,
        )
    model = fit_conversion(
        folds["train"],
        folds["valid"],
        folds.get("calibration"),
        params=tuning.best_params if tuning is not None else None,
        sufficiency=sufficiency,
        seed=options.seed,
        num_threads=options.num_threads,
    )
    return model, tuning


# --- 6. thresholds and holdout ----------------------------------------------------------------


def fit_thresholds(
    conversion: ConversionModel,
    ltv: LtvFit,
    rule_model: RuleScoreModel,
    frame: pd.DataFrame,
    matrix: pd.DataFrame,
) -> tuple[GradeBands, SegmentThresholds, dict[str, Any]]:
    """Fit grade bands, segment thresholds and score reference on out-of-sample rows (calibration fold)."""
    prior = rule_model.predict_proba(frame) if conversion.prior_weight > 0 else None
    p_convert = conversion.predict(matrix, prior)
    value = (
        np.maximum(ltv.model.predict(matrix), 0.0)
        if ltv.model is not None
        else np.full(len(matrix), ltv.fallback)
    )
    expected_value = p_convert * value
    return (
        GradeBands.fit(expected_value),
        SegmentThresholds.fit(expected_value, p_convert),
        score_reference(p_convert, value, expected_value),
    )


def bundle_fingerprint(
    conversion: ConversionModel, ltv: LtvModel | None, spec: FeatureSpec, created_at: str
) -> str:
    """Hash the fitted models and spec, so two different trainings never share a bundle version."""
    parts = [
        conversion.booster.model_to_string().encode("utf-8"),
        json.dumps(conversion.calibrator.to_dict(), sort_keys=True).encode("utf-8"),
        json.dumps(spec.to_dict(), sort_keys=True, ensure_ascii=False).encode("utf-8"),
        created_at.encode("utf-8"),
    ]
    if ltv is not None:
        parts += [booster.model_to_string().encode("utf-8") for booster in ltv.boosters.values()]
    return content_fingerprint(parts)


def make_holdout(conversion_test: pd.DataFrame, ltv_test: pd.DataFrame) -> pd.DataFrame:
    """Return the gate's holdout: conversion test rows and LTV test rows, each marked, without repeats."""
    columns = ["lead_id", "cutoff", "converted", "value", "label_complete", "value_complete"]
    marked = pd.concat(
        [
            conversion_test[columns].assign(**{CONVERSION_TEST: True, LTV_TEST: False}),
            ltv_test[columns].assign(**{CONVERSION_TEST: False, LTV_TEST: True}),
        ],
        ignore_index=True,
    )
    holdout = marked.groupby(["lead_id", "cutoff"], sort=False, as_index=False).agg(
        {
            "converted": "first",
            "value": "first",
            "label_complete": "first",
            "value_complete": "first",
            CONVERSION_TEST: "max",
            LTV_TEST: "max",
        }
    )
    return holdout.reset_index(drop=True)


# --- 7. card, plots, MLflow ---------------------------------------------------------------------

# --- the whole run ------------------------------------------------------------------------------


@dataclass
class FittedScorer:
    """Everything ``fit_scorer`` produced: the data facts, the folds, the models and the bundle."""

    snapshots: Snapshots
    leakage: LeakageReport
    kept: list[FeatureDef]
    split: SplitIndices
    parts: dict[str, pd.DataFrame]
    folds: dict[str, Fold]
    sufficiency: coldstart.DataSufficiency
    spec: FeatureSpec
    conversion: ConversionModel
    tuning: TuningResult | None
    rule_model: RuleScoreModel
    ltv: LtvFit
    bundle: ScorerBundle


def fit_scorer(
    options: TrainOptions, tables: CanonicalTables, created: pd.Timestamp, watch: _Stopwatch
) -> FittedScorer:
    """Run steps 1 to 6: snapshots, leakage probe, split, conversion and LTV models, the bundle.

    The bundle's model card is empty here, because the card needs the test metrics.
    """
    config = options.feature_config
    with watch.step("features"):
        snapshots = build_snapshots(tables, config, options.observed_until)
    frame = snapshots.frame
    if frame.empty:
        raise InsufficientDataError(
            f"no training snapshot in {options.data_dir} has a complete {config.horizon_days}-day label "
            "window; import a longer history or shorten horizon_days"
        )

    with watch.step("leakage_probe"):
        leakage = probe(
            frame,
            frame["converted"].to_numpy(),
            snapshots.definitions,
            tables.attributes,
            threshold=options.leakage_threshold,
            allow=options.leakage_allow,
            seed=options.seed,
        )
    kept = drop_excluded(leakage.kept(snapshots.definitions), snapshots.definitions, options.exclude_features)

    split = split_snapshots(options, frame)
    if options.shuffle_training_labels:
        frame = shuffle_labels_outside(frame, split.test, seed=options.seed)
    parts = {name: frame.iloc[getattr(split, name)] for name in ("train", "valid", "calibration", "test")}
    _check_test_fold(parts["test"])
    sufficiency = assess_training_fold(parts["train"])
    sufficiency.raise_if_refused()

    spec = FeatureSpec.fit(parts["train"], kept)
    folds = {name: fold_of(spec, part) for name, part in parts.items() if len(part)}
    with watch.step("conversion"):
        conversion, tuning = tune_and_fit_conversion(
            options, folds, sufficiency, study_name=f"conversion-{created.strftime('%Y%m%dT%H%M%S')}"
        )
        rule_model = fit_rule_model(parts["train"], folds["train"].y, allow_missing_columns=True)
    with watch.step("ltv"):
        ltv = fit_ltv_model(options, frame, spec)

    threshold_part = "calibration" if "calibration" in folds else "valid"
    grade_bands, segments, reference = fit_thresholds(
        conversion, ltv, rule_model, parts[threshold_part], folds[threshold_part].matrix
    )
    reference["features"] = spec.reference
    created_at = created.isoformat()
    bundle = ScorerBundle(
        bundle_version=make_bundle_version(
            created, bundle_fingerprint(conversion, ltv.model, spec, created_at)
        ),
        created_at=created_at,
        feature_config=config,
        feature_spec=spec,
        feature_definitions=tuple(kept),
        conversion=conversion,
        ltv_model=ltv.model,
        grade_bands=grade_bands,
        segment_thresholds=segments,
        reference=reference,
        model_card={},
        ltv_fallback=ltv.fallback,
        rule_prior=rule_model if conversion.prior_weight > 0 else None,
        insufficient_data=sufficiency.insufficient_data,
        attributes=tuple(tables.attributes),
    )
    return FittedScorer(
        snapshots,
        leakage,
        kept,
        split,
        parts,
        folds,
        sufficiency,
        spec,
        conversion,
        tuning,
        rule_model,
        ltv,
        bundle,
    )


def run_params(options: TrainOptions, fitted: FittedScorer) -> dict[str, Any]:
    """Return the run's parameters for MLflow: inputs, settings and what training chose."""
    return {
        "data_dir": str(options.data_dir.resolve()),
        "trials": options.trials,
        "seed": options.seed,
        "feature_config": feature_config_to_dict(options.feature_config),
        "leakage_threshold": options.leakage_threshold,
        "leakage_excluded": fitted.leakage.excluded,
        "conversion_params": fitted.conversion.params,
        "calibration_method": fitted.conversion.calibrator.method,
        "calibration_rows": options.calibration_rows,
        "ltv_kind": fitted.ltv.model.kind if fitted.ltv.model is not None else "mean_fallback",
        "gate": options.gate.model_dump(),
        "insufficient_data": fitted.sufficiency.insufficient_data,
        "rows": {**fitted.snapshots.counts, **fitted.split.counts(), **fitted.ltv.counts},
    }


def train(options: TrainOptions) -> TrainResult:
    """Train, evaluate, log, register and gate one lead-scorer version from a data folder."""
    watch = _Stopwatch()
    tracking_uri = resolve_tracking_uri(options.tracking_uri, options.work_dir)
    created = pd.Timestamp.now(tz="UTC").floor("s")
    with watch.step("read_data"):
        tables = read_data_dir(options.data_dir)
    fitted = fit_scorer(options, tables, created, watch)
    bundle = fitted.bundle

    with watch.step("evaluation"):
        holdout = make_holdout(fitted.parts["test"], fitted.ltv.test_rows)
        holdout_scores = score_tables(bundle, tables, holdout[["lead_id", "cutoff"]], top_reasons=0)
        model_gate_metrics = gate_metrics(holdout_scores.reset_index(drop=True), holdout)
        test_metrics, plot_inputs, baseline_notes = evaluate_test_folds(
            options, fitted, holdout, holdout_scores
        )
        test_metrics["model"].update(model_gate_metrics)

    with tempfile.TemporaryDirectory(prefix="leadscore-train-") as scratch:
        work = Path(scratch)
        with watch.step("plots"):
            plots = write_evaluation_plots(work / "plots", **plot_inputs)
        card = build_card(
            fitted,
            tables=tables,
            test_metrics=test_metrics,
            baseline_notes=baseline_notes,
            ece_before=metrics.expected_calibration_error(
                fitted.folds["test"].y, plot_inputs["uncalibrated"]
            ),
            config=options.feature_config,
        )
        bundle = dataclasses.replace(bundle, model_card=card.to_dict())
        bundle_dir = bundle.save(options.work_dir / "bundles" / bundle.bundle_version)
        write_run_files(
            work / "files",
            card=card,
            leakage=fitted.leakage,
            spec=fitted.spec,
            holdout=holdout,
            decile_table=metrics.decile_table(fitted.folds["test"].y, plot_inputs["scores"]["model"]),
        )

        run_metrics: dict[str, float | None] = {
            f"test.{label}.{name}": value
            for label, values in test_metrics.items()
            for name, value in values.items()
        }
        run_metrics["calibration.ece_before"] = card.calibration["ece_before"]
        if fitted.tuning is not None:
            run_metrics["tuning.best_value"] = fitted.tuning.best_value
        with watch.step("mlflow"):
            experiment_id, run_id, version = log_run_to_mlflow(
                options,
                tracking_uri=tracking_uri,
                run_name=f"train-{bundle.bundle_version}",
                params=run_params(options, fitted),
                run_metrics={**run_metrics, **{f"seconds.{k}": v for k, v in watch.seconds.items()}},
                files_dir=work / "files",
                plots_dir=work / "plots",
                bundle_dir=bundle_dir,
                bundle_version=bundle.bundle_version,
                example=example_lead_for(bundle.feature_spec),
            )

        decision: GateDecision | None = None
        if version is not None:
            with watch.step("gate"):
                decision = run_gate(
                    tracking_uri,
                    challenger_version=version,
                    tables=tables,
                    holdout=holdout,
                    config=options.gate,
                    challenger_metrics=model_gate_metrics,
                    workspace=work / "gate",
                )
    logger.info(
        "training run %s finished: bundle %s, version %s, gate %s, plots %s, steps %s",
        run_id,
        bundle.bundle_version,
        version,
        decision.outcome if decision is not None else "not run",
        sorted(plots),
        watch.seconds,
    )
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        tracking_uri=tracking_uri,
        bundle=bundle,
        bundle_dir=bundle_dir,
        model_version=version,
        decision=decision,
        test_metrics=test_metrics,
        timings=watch.seconds,
    )
