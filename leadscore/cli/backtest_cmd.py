"""``leadscore backtest``: walk forward through a history and retrain the models before each step."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import pandas as pd

    from training.backtest import StepResult
    from training.drift_options import ChangeFeatures, Span

ONCE = "once"
EXPANDING = "expanding"
FRACTION = "fraction"
# The retraining policy that the walk-forward experiments support, written out so that --help
# needs no pandas import. They must parse to training.backtest.DEFAULT_RETRAIN_EVERY and
# DEFAULT_CALIBRATION_SLICE, which a test checks.
DEFAULT_RETRAIN_EVERY_TEXT = "14D"
DEFAULT_CALIBRATE_ON_TEXT = "1000"


def _span_or_none(text: str | None, *, option: str, none_word: str | None = None) -> Span | None:
    from training.drift_options import parse_span

    if text is None or (none_word is not None and text.strip().lower() == none_word):
        return None
    return parse_span(text, option=option)


def _start_time(text: str | None, timezone: str) -> pd.Timestamp | None:
    from leadscore.cli.times import parse_option_time

    if text is None:
        return None
    return parse_option_time(text, timezone, option="--from").tz_convert(timezone)


def _change_features(columns: str | None, period: str, keep_levels: bool) -> ChangeFeatures | None:
    from leadscore.errors import ConfigError
    from training.drift_options import ChangeFeatures

    if columns is None:
        return None
    names = tuple(name.strip() for name in columns.split(",") if name.strip())
    duration = _span_or_none(period, option="--change-period")
    if duration is None or duration.duration is None:
        raise ConfigError(f"--change-period must be a duration such as 30D; got {period!r}")
    return ChangeFeatures(names, duration.duration, keep_levels)


def _echo_step(step: StepResult) -> None:
    if step.skipped:
        click.echo(f"step {step.number:>3} {step.start:%Y-%m-%d}: skipped - {step.skipped}")
        return
    model = step.metrics.get("model", {}).get("conversion_auc")
    logistic = step.metrics.get("logistic", {}).get("conversion_auc")
    aucs = "  ".join(
        f"{name} {'-' if value is None else f'{value:.4f}'}"
        for name, value in (("model", model), ("logistic", logistic))
    )
    click.echo(
        f"step {step.number:>3} {step.start:%Y-%m-%d}: train {step.train_rows:,} rows "
        f"(rate {step.train_positive_rate:.3f}), test {step.test_rows:,} rows "
        f"(rate {step.test_positive_rate:.3f}), AUC {aucs}"
    )


@click.command("backtest")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Data folder of canonical Parquet tables.",
)
@click.option(
    "--retrain-every",
    default=DEFAULT_RETRAIN_EVERY_TEXT,
    show_default=True,
    help="Retrain every N scored rows (e.g. 1000), every duration (e.g. 14D, 2W), "
    "or 'once' to train a single time.",
)
@click.option(
    "--window",
    default=EXPANDING,
    show_default=True,
    help="Training window: 'expanding' (all earlier rows), N most recent rows, or a duration such as 365D.",
)
@click.option(
    "--from",
    "start_text",
    default=None,
    help="Start of the first step, ISO 8601. Naive times are read in --timezone "
    "[default: at --start-fraction].",
)
@click.option(
    "--start-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.8,
    show_default=True,
    help="Share of the labelled rows, in cutoff order, before the first step when --from is not given.",
)
@click.option(
    "--trials",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Optuna trials per retrain, as in 'leadscore train'. 0 uses the default parameters.",
)
@click.option(
    "--validation-metric",
    type=click.Choice(["binary_logloss", "auc"]),
    default="binary_logloss",
    show_default=True,
    help="Metric that tuning and early stopping watch on each retrain's validation fold.",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=None, help="Seed of every retrain [default: 20240601]."
)
@click.option(
    "--num-threads",
    type=click.IntRange(min=1),
    default=None,
    help="LightGBM threads [default: 2, capped at the available cores].",
)
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
    "--max-snapshots",
    type=click.IntRange(min=0),
    default=None,
    help="Periodic snapshots per lead after the one at creation. 0 scores each lead once [default: 6].",
)
@click.option("--timezone", default=None, help="IANA timezone of naive times [default: Asia/Shanghai].")
@click.option(
    "--recency-half-life",
    default=None,
    help="Weight training rows by 0.5 ** (age / HALF_LIFE), with HALF_LIFE in rows (e.g. 3000) "
    "or a duration (e.g. 90D) [default: none; all rows weigh the same].",
)
@click.option(
    "--calibrate-on",
    default=DEFAULT_CALIBRATE_ON_TEXT,
    show_default=True,
    help="Fit each retrain's calibrator on its newest rows (e.g. 1000) or newest duration (e.g. 30D), "
    "or 'fraction' for the newest 10 % of its rows as 'leadscore train' does.",
)
@click.option(
    "--change-features",
    "change_columns",
    default=None,
    help="Comma-separated numeric features to add as their change over --change-period [default: none].",
)
@click.option(
    "--change-period", default="30D", show_default=True, help="Period of the change features, a duration."
)
@click.option("--keep-levels", is_flag=True, help="Keep the level features beside their change features.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Markdown report to write, with the HTML, chart, CSV and Parquet files beside it "
    "[default: WORK_DIR/backtest/backtest-TIME.md].",
)
@click.option("--title", default="Retraining backtest", show_default=True, help="Title of the report.")
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking URI [default: sqlite:///WORK_DIR/mlflow.db].",
)
@click.option("--experiment", default="leadscore-backtest", show_default=True, help="MLflow experiment name.")
@click.option("--no-mlflow", is_flag=True, help="Write the report files only and log nothing to MLflow.")
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for the Optuna studies, the default MLflow store and reports [default: .leadscore].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Settings TOML file (default: ./leadscore.toml when present).",
)
def backtest(
    data_dir: Path,
    retrain_every: str,
    window: str,
    start_text: str | None,
    start_fraction: float,
    trials: int,
    validation_metric: str,
    seed: int | None,
    num_threads: int | None,
    horizon_days: int | None,
    ltv_horizon_days: int | None,
    max_snapshots: int | None,
    timezone: str | None,
    recency_half_life: str | None,
    calibrate_on: str | None,
    change_columns: str | None,
    change_period: str,
    keep_levels: bool,
    report_path: Path | None,
    title: str,
    tracking_uri: str | None,
    experiment: str,
    no_mlflow: bool,
    work_dir: Path | None,
    config_file: Path | None,
) -> None:
    """Judge the model and its retraining cadence by retraining before each step and scoring it.

    Before each step, every model is retrained on the rows whose label window ended before
    the step starts: the conversion model with the features, tuning budget and calibrator
    choice of 'leadscore train', the logistic and rule-score baselines and, with orders, the
    LTV model. By default it retrains every 14 days and fits the calibrator on the newest
    1,000 rows, the policy that the walk-forward experiments on Bank Marketing and on the
    synthetic history support.
    """
    import dataclasses

    import pandas as pd

    from features.config import FeatureConfig
    from leadscore.settings import load_settings
    from training.backtest import BacktestOptions, run_backtest
    from training.backtest_report import log_backtest, write_report
    from training.drift_options import DriftOptions
    from training.params import DEFAULT_SEED
    from training.tracking import resolve_tracking_uri

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
    if max_snapshots is not None:
        feature_config = dataclasses.replace(feature_config, max_snapshots=max_snapshots)
    drift = DriftOptions(
        window=_span_or_none(window, option="--window", none_word=EXPANDING),
        recency_half_life=_span_or_none(recency_half_life, option="--recency-half-life"),
        calibration_slice=_span_or_none(calibrate_on, option="--calibrate-on", none_word=FRACTION),
        change_features=_change_features(change_columns, change_period, keep_levels),
    )
    options = BacktestOptions(
        data_dir=data_dir,
        retrain_every=_span_or_none(retrain_every, option="--retrain-every", none_word=ONCE),
        start=_start_time(start_text, settings.timezone),
        start_fraction=start_fraction,
        trials=trials,
        validation_metric=validation_metric,  # type: ignore[arg-type]
        seed=DEFAULT_SEED if seed is None else seed,
        num_threads=num_threads,
        feature_config=feature_config,
        drift=drift,
        work_dir=settings.work_dir,
    )
    result = run_backtest(options, on_step=_echo_step)

    if report_path is None:
        stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S")
        report_path = settings.work_dir / "backtest" / f"backtest-{stamp}.md"
    files = write_report(result, report_path, title=title)
    click.echo(f"report: {report_path} (with {', '.join(path.name for path in files[1:])})")
    for model, values in result.overall.items():
        if values:
            click.echo(
                f"pooled {model:<9} AUC {values['conversion_auc']:.4f}  "
                f"ALIFT {values['conversion_alift']:.4f}  PR AUC {values['conversion_pr_auc']:.4f}  "
                f"Brier {values['conversion_brier']:.4f}  ECE {values['conversion_ece']:.4f}"
            )
    if not no_mlflow:
        uri = resolve_tracking_uri(settings.tracking_uri, settings.work_dir)
        run_id = log_backtest(result, files, tracking_uri=uri, experiment=experiment)
        click.echo(f"MLflow run: {run_id} (experiment {experiment}, tracking {uri})")
