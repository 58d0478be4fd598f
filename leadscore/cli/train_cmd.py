"""``leadscore train``, ``leadscore promote`` and ``leadscore models list``: the model lifecycle."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from training.registry import GateConfig, GateDecision

logger = logging.getLogger(__name__)

_CONFIG_OPTION = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Settings TOML file [default: ./leadscore.toml when present, else built-in settings].",
)
_TRACKING_OPTION = click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking and registry URI: sqlite:///FILE, postgresql+psycopg://USER@HOST/DB or an "
    "http(s) MLflow server [default: the tracking_uri setting, else sqlite:///WORK_DIR/mlflow.db].",
)
_WORK_DIR_OPTION = click.option(
    "--work-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for bundles, the Optuna study and the default MLflow store "
    "[default: the work_dir setting, else .leadscore].",
)
_TOLERANCE_OPTION = click.option(
    "--gate-tolerance",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Largest worsening of a gate metric (in its own units) still counted as no worse [default: 0.005].",
)
_GATE_METRIC_OPTION = click.option(
    "--gate-metric",
    "gate_metrics",
    multiple=True,
    help="Metric the promotion gate compares; repeat for several "
    "[default: conversion_auc, conversion_ece, ltv_gini].",
)


def _quiet_mlflow_downloads() -> None:
    """Turn off MLflow's per-file download progress bars (MLflow 3 reads this variable) unless set."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _gate_config(tolerance: float | None, names: tuple[str, ...]) -> GateConfig:
    from pydantic import ValidationError

    from leadscore.errors import ConfigError
    from training.registry import GateConfig

    values: dict[str, object] = {}
    if tolerance is not None:
        values["tolerance"] = tolerance
    if names:
        values["metrics"] = tuple(names)
    try:
        return GateConfig.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(str(item["msg"]).removeprefix("Value error, ") for item in error.errors())
        raise ConfigError(f"invalid gate settings: {problems}") from None


def _echo_decision(decision: GateDecision) -> None:
    click.echo(f"gate: {decision.outcome} version {decision.challenger_version} - {decision.reason}")
    if decision.comparisons:
        click.echo(f"  {'metric':<18} {'challenger':>11} {'champion':>11}  result")
        for comparison in decision.comparisons:
            new = "n/a" if comparison.challenger is None else f"{comparison.challenger:.4f}"
            old = "n/a" if comparison.champion is None else f"{comparison.champion:.4f}"
            result = "pass" if comparison.passed else "FAIL"
            click.echo(f"  {comparison.name:<18} {new:>11} {old:>11}  {result}")


def _echo_metrics(test_metrics: Mapping[str, Mapping[str, float]]) -> None:
    names = sorted({name for values in test_metrics.values() for name in values})
    labels = list(test_metrics)
    click.echo("test metrics: " + "  ".join(f"{label:>10}" for label in labels))
    for name in names:
        cells = "  ".join(
            f"{test_metrics[label][name]:>10.4f}" if name in test_metrics[label] else f"{'-':>10}"
            for label in labels
        )
        click.echo(f"  {name:<22} {cells}")


@click.command()
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Data folder of canonical Parquet tables.",
)
@_TRACKING_OPTION
@click.option(
    "--trials",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Optuna trials for the conversion booster; 0 trains with the default parameters.",
)
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Random seed [default: 20240601].")
@click.option("--experiment", default="leadscore", show_default=True, help="MLflow experiment name.")
@_WORK_DIR_OPTION
@_CONFIG_OPTION
@click.option(
    "--horizon-days",
    type=click.IntRange(min=1),
    default=None,
    help="Conversion label window, in days [default: the horizon_days setting, 90].",
)
@click.option(
    "--ltv-horizon-days",
    type=click.IntRange(min=1),
    default=None,
    help="Net revenue (LTV) window, in days [default: the ltv_horizon_days setting, 365].",
)
@click.option(
    "--timezone",
    default=None,
    help="IANA timezone of naive times [default: the timezone setting, Asia/Shanghai].",
)
@click.option(
    "--num-threads",
    type=click.IntRange(min=1),
    default=None,
    help="LightGBM threads [default: 2, capped at the available cores].",
)
@click.option(
    "--tuning-timeout",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Stop the Optuna study after this many seconds; results then depend on machine speed "
    "[default: none, run all --trials].",
)
@_TOLERANCE_OPTION
@_GATE_METRIC_OPTION
@click.option(
    "--calibration-rows",
    type=click.IntRange(min=1),
    default=None,
    help="Fit the calibrator, grade bands and segment thresholds on the newest N snapshot rows before "
    "the test fold, in rows; 1000 is what the retraining backtest supports on drifting data "
    "[default: none, the newest 10 % of rows].",
)
@click.option(
    "--no-register", is_flag=True, help="Log the run to MLflow without registering or gating the model."
)
def train(
    data_dir: Path,
    tracking_uri: str | None,
    trials: int,
    seed: int | None,
    experiment: str,
    work_dir: Path | None,
    config_file: Path | None,
    horizon_days: int | None,
    ltv_horizon_days: int | None,
    timezone: str | None,
    num_threads: int | None,
    tuning_timeout: float | None,
    gate_tolerance: float | None,
    gate_metrics: tuple[str, ...],
    calibration_rows: int | None,
    no_register: bool,
) -> None:
    """Train a lead scorer on a data folder, log it to MLflow, register it as challenger and gate it."""
    from features.config import FeatureConfig
    from leadscore.settings import load_settings
    from training.params import DEFAULT_SEED
    from training.tracking import display_uri
    from training.train import TrainOptions
    from training.train import train as run_training

    _quiet_mlflow_downloads()
    settings = load_settings(
        config_file,
        work_dir=work_dir,
        tracking_uri=tracking_uri,
        horizon_days=horizon_days,
        ltv_horizon_days=ltv_horizon_days,
        timezone=timezone,
    )
    feature_config = FeatureConfig(
        horizon_days=settings.horizon_days,
        ltv_horizon_days=settings.ltv_horizon_days,
        timezone=settings.timezone,
    )
    options = TrainOptions(
        data_dir=data_dir,
        work_dir=settings.work_dir,
        tracking_uri=settings.tracking_uri,
        experiment=experiment,
        trials=trials,
        tuning_timeout_seconds=tuning_timeout,
        seed=DEFAULT_SEED if seed is None else seed,
        num_threads=num_threads,
        feature_config=feature_config,
        gate=_gate_config(gate_tolerance, gate_metrics),
        calibration_rows=calibration_rows,
        register_model=not no_register,
    )
    result = run_training(options)
    tracking = display_uri(result.tracking_uri)
    click.echo(f"run: {result.run_id} (experiment {result.experiment_id}, tracking {tracking})")
    click.echo(f"bundle: {result.bundle.bundle_version} at {result.bundle_dir}")
    if result.bundle.insufficient_data:
        click.echo("warning: too little history; every score carries the insufficient_data flag")
    _echo_metrics(result.test_metrics)
    if result.model_version is not None:
        click.echo(f"registered: lead-scorer version {result.model_version} (alias challenger)")
    if result.decision is not None:
        _echo_decision(result.decision)
    total = sum(result.timings.values())
    click.echo(
        f"took {total:.1f} s: "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in result.timings.items())
    )


@click.command()
@click.option("--force", is_flag=True, help="Promote the challenger even when the gate would reject it.")
@_TRACKING_OPTION
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Data folder to re-score the holdout with [default: the folder the challenger was trained on].",
)
@_WORK_DIR_OPTION
@_CONFIG_OPTION
@_TOLERANCE_OPTION
@_GATE_METRIC_OPTION
def promote(
    force: bool,
    tracking_uri: str | None,
    data_dir: Path | None,
    work_dir: Path | None,
    config_file: Path | None,
    gate_tolerance: float | None,
    gate_metrics: tuple[str, ...],
) -> None:
    """Compare the challenger with the champion on the challenger's holdout and promote it if no worse."""
    from leadscore.settings import load_settings
    from training.registry import promote_challenger
    from training.tracking import resolve_tracking_uri

    _quiet_mlflow_downloads()
    settings = load_settings(config_file, work_dir=work_dir, tracking_uri=tracking_uri)
    uri = resolve_tracking_uri(settings.tracking_uri, settings.work_dir)
    with tempfile.TemporaryDirectory(prefix="leadscore-promote-") as workspace:
        decision = promote_challenger(
            uri,
            config=_gate_config(gate_tolerance, gate_metrics),
            force=force,
            data_dir=data_dir,
            workspace=Path(workspace),
        )
    _echo_decision(decision)


@click.group()
def models() -> None:
    """Inspect the registered lead-scorer versions."""


@models.command("list")
@_TRACKING_OPTION
@_WORK_DIR_OPTION
@_CONFIG_OPTION
def list_models(tracking_uri: str | None, work_dir: Path | None, config_file: Path | None) -> None:
    """List lead-scorer versions, newest first, with aliases, gate outcome and gate metrics."""
    from leadscore.settings import load_settings
    from training.registry import list_versions
    from training.tracking import display_uri, resolve_tracking_uri, tracking_client

    settings = load_settings(config_file, work_dir=work_dir, tracking_uri=tracking_uri)
    uri = resolve_tracking_uri(settings.tracking_uri, settings.work_dir)
    versions = list_versions(tracking_client(uri))
    if not versions:
        click.echo(f"no lead-scorer versions in {display_uri(uri)}; run 'leadscore train --data DIR' first")
        return
    click.echo(f"{'version':>7}  {'aliases':<20} {'created (UTC)':<20} {'gate':<9} {'bundle':<26} metrics")
    for version in versions:
        aliases = ",".join(version.aliases) or "-"
        created = version.created_at.strftime("%Y-%m-%d %H:%M:%S")
        shown = " ".join(f"{name}={value}" for name, value in sorted(version.metrics.items()))
        click.echo(
            f"{version.version:>7}  {aliases:<20} {created:<20} {version.decision or '-':<9} "
            f"{version.bundle_version or '-':<26} {shown}"
        )


def register(root: click.Group) -> None:
    """Add ``train``, ``promote`` and ``models`` to the root command."""
    root.add_command(train)
    root.add_command(promote)
    root.add_command(models)
