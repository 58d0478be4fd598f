"""Record a training run: the model card, the run files and the MLflow params, metrics and artifacts."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from data.folder import CanonicalTables
from features.config import FeatureConfig
from features.leakage import LeakageReport
from features.spec import FeatureSpec
from training.model_card import ModelCard, known_limits_for, render_html, render_markdown
from training.registry import (
    DATA_DIR_TAG,
    HOLDOUT_ARTIFACT,
    MODEL_NAME,
    TAG_BUNDLE_VERSION,
    register_challenger,
)
from training.tracking import (
    active_tracking_uri,
    default_artifact_location,
    ensure_experiment,
    finite_metrics,
    flatten_params,
    log_json_artifact,
    log_scorer_model,
    tracking_client,
)

if TYPE_CHECKING:
    from training.train import FittedScorer, TrainOptions

logger = logging.getLogger(__name__)


def _iso(value: pd.Timestamp) -> str:
    return pd.Timestamp(value).isoformat()


def build_card(
    fitted: FittedScorer,
    *,
    tables: CanonicalTables,
    test_metrics: dict[str, dict[str, float]],
    baseline_notes: Mapping[str, str],
    ece_before: float,
    config: FeatureConfig,
) -> ModelCard:
    """Assemble the model card from the run's facts."""
    snapshots, split, conversion, leakage = fitted.snapshots, fitted.split, fitted.conversion, fitted.leakage
    ltv, sufficiency, tuning = fitted.ltv, fitted.sufficiency, fitted.tuning
    frame = snapshots.frame
    created = tables.leads["created_at"]
    data_window = {
        "start": _iso(created.min()),
        "end": _iso(created.max()),
        "cutoff_start": _iso(frame["cutoff"].min()),
        "cutoff_end": _iso(frame["cutoff"].max()),
        "observed_until": _iso(snapshots.observed_until),
    }
    horizons = {"horizon_days": config.horizon_days, "ltv_horizon_days": config.ltv_horizon_days}
    calibration = {
        "method": conversion.calibrator.method,
        "ece_before": ece_before,
        "ece_after": test_metrics["model"].get("conversion_ece"),
        "prior_weight": conversion.prior_weight,
        "selection": conversion.calibrator.selection,
    }
    leakage_facts = {
        "checked": len(leakage.findings),
        "threshold": leakage.threshold,
        "excluded": [
            {"feature": finding.feature, "reason": finding.describe(leakage.threshold), "auc": finding.auc}
            for finding in leakage.findings
            if finding.excluded
        ],
        "flagged_allowed": [
            finding.feature for finding in leakage.findings if finding.flagged and finding.allowed
        ],
        "max_auc": max((finding.auc for finding in leakage.findings), default=None),
    }
    ltv_facts: dict[str, Any] = {
        "note": ltv.note,
        "purge_days": ltv.purge_days,
        "btyd_baseline": baseline_notes.get("btyd", ""),
        **ltv.counts,
    }
    if ltv.model is not None:
        ltv_facts["kind"] = ltv.model.kind
        ltv_facts["selection"] = {
            kind: score["normalized_gini"]
            for kind, score in ltv.model.validation.items()
            if isinstance(score, Mapping) and "normalized_gini" in score
        }
    else:
        ltv_facts["fallback"] = ltv.fallback
        ltv_facts["fallback_basis"] = ltv.fallback_basis
    fold_rows = {**snapshots.counts, **split.counts()}
    test_rows = frame.iloc[split.test]
    limits = known_limits_for(
        data_window=data_window,
        horizons=horizons,
        metrics=test_metrics,
        calibration=calibration,
        leakage=leakage_facts,
        ltv=ltv_facts,
        insufficient_reasons=sufficiency.reason_texts("en"),
    )
    table_rows = {
        name: len(tables.table(name)) for name in ("leads", "activities", "stage_changes", "orders")
    }
    return ModelCard(
        name=MODEL_NAME,
        bundle_version=fitted.bundle.bundle_version,
        created_at=fitted.bundle.created_at,
        data_window=data_window,
        horizons=horizons,
        table_rows=table_rows,
        fold_rows=fold_rows,
        fold_boundaries={name: _iso(start) for name, start in split.boundaries.items()},
        test_positive_rate=float(test_rows["converted"].mean()),
        metrics=test_metrics,
        calibration=calibration,
        leakage=leakage_facts,
        ltv=ltv_facts,
        features=fitted.spec.feature_names,
        insufficient_data=sufficiency.insufficient_data,
        data_sufficiency=sufficiency.to_dict(),
        known_limits=limits,
        tuning=dataclasses.asdict(tuning) if tuning is not None else {"trials": 0},
    )


def write_run_files(
    directory: Path,
    *,
    card: ModelCard,
    leakage: LeakageReport,
    spec: FeatureSpec,
    holdout: pd.DataFrame,
    decile_table: pd.DataFrame,
) -> None:
    """Write the model card in both languages, the leakage report, the spec and the holdout."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model_card.json").write_text(
        json.dumps(card.to_dict(), indent=2, ensure_ascii=False, default=str), encoding="utf-8"
    )
    for locale in ("en", "zh-CN"):
        (directory / f"model_card.{locale}.md").write_text(render_markdown(card, locale), encoding="utf-8")
        (directory / f"model_card.{locale}.html").write_text(render_html(card, locale), encoding="utf-8")
        (directory / f"leakage_report.{locale}.md").write_text(leakage.to_markdown(locale), encoding="utf-8")
    (directory / "feature_spec.json").write_text(
        json.dumps(spec.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8"
    )
    decile_table.to_csv(directory / "decile_table.csv", index=False)
    holdout.to_parquet(directory / Path(HOLDOUT_ARTIFACT).name, index=False)


def log_run_to_mlflow(
    options: TrainOptions,
    *,
    tracking_uri: str,
    run_name: str,
    params: Mapping[str, Any],
    run_metrics: Mapping[str, float | None],
    files_dir: Path,
    plots_dir: Path,
    bundle_dir: Path,
    bundle_version: str,
    example: Mapping[str, Any],
) -> tuple[str, str, str | None]:
    """Log params, metrics, files and the pyfunc model; register it as challenger.

    Returns (experiment id, run id, registered version or None when ``register_model`` is off).
    """
    import mlflow

    client = tracking_client(tracking_uri)
    experiment_id = ensure_experiment(
        client, options.experiment, default_artifact_location(tracking_uri, options.work_dir)
    )
    with (
        active_tracking_uri(tracking_uri),
        mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run,
    ):
        mlflow.log_params(flatten_params(params))
        mlflow.log_metrics(finite_metrics(run_metrics))
        mlflow.set_tags({TAG_BUNDLE_VERSION: bundle_version, DATA_DIR_TAG: str(options.data_dir.resolve())})
        mlflow.log_artifacts(str(plots_dir), artifact_path="plots")
        for path in sorted(files_dir.iterdir()):
            target = (
                str(Path(HOLDOUT_ARTIFACT).parent) if path.name == Path(HOLDOUT_ARTIFACT).name else "report"
            )
            mlflow.log_artifact(str(path), artifact_path=target)
        log_json_artifact(flatten_params(params), "report/params.json")
        model_info = log_scorer_model(bundle_dir, example)
        run_id = run.info.run_id

    version: str | None = None
    if options.register_model:
        registered = register_challenger(
            client, model_info.model_uri, run_id, tags={TAG_BUNDLE_VERSION: bundle_version}
        )
        version = str(registered.version)
    return experiment_id, run_id, version
