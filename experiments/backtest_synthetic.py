"""Retraining backtest on the synthetic CRM history, whose drift is known from the generator.

The generator (``data.synthetic``, see docs/synthetic-history.md) moves the channel mix and
lowers the conversion logit by ``drift.conversion_shift`` from ``drift.start_month`` on,
ramped in over ``drift.ramp_days``. Its ground truth gives each lead's true conversion
probability and how far the drift had ramped in when the lead arrived. This experiment
generates such a history with the drift in its second half, walks forward through it with
``training.backtest``, and compares what the models predict per step with the truth:

- the observed positive rate and the mean prediction of each model per step, so a model that
  keeps the pre-drift level shows up as over-prediction;
- on at-intake rows (each lead's first snapshot), the mean true probability and the AUC of
  the true probability, the ceiling for any model.

Run from the repository root (about 40 minutes on 2 busy cores with the defaults):
    .venv/bin/python -m experiments.backtest_synthetic --out experiments/results/backtest-synthetic.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import pickle
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data.folder import CanonicalTables, read_data_dir
from data.synthetic import GeneratorConfig, generate_history
from features.config import FeatureConfig
from leadscore.logs import configure_logging
from training import metrics
from training.backtest import LOGISTIC, MODEL, RULES, BacktestOptions, BacktestResult, run_backtest
from training.backtest_report import ReportTable, format_number, markdown_table, plot_metrics_over_time
from training.drift_options import DriftOptions, Span

logger = logging.getLogger(__name__)

START = dt.date(2024, 1, 1)
MONTHS = 24
DRIFT_START_MONTH = 14
# 180 days instead of the default 730, so that converted leads of the first year have a
# complete LTV window inside a 24-month history.
FEATURE_CONFIG = FeatureConfig(ltv_horizon_days=180)
BACKTEST_START = pd.Timestamp("2024-11-01", tz="Asia/Shanghai")
EVERY_30_DAYS = Span(duration=pd.Timedelta(days=30))
EVERY_14_DAYS = Span(duration=pd.Timedelta(days=14))
RECENT_CALIBRATION = Span(rows=1000)
# Pooled Brier scores within this share of the best are treated as equal when choosing a variant.
BRIER_TOLERANCE = 0.01


@dataclass(frozen=True)
class Variant:
    """One set of training options to walk forward with."""

    name: str
    description: str
    validation_metric: str
    drift: DriftOptions


VARIANTS: tuple[Variant, ...] = (
    Variant(
        "A",
        "as `leadscore train`: log-loss validation, calibration on the last 10 %",
        "binary_logloss",
        DriftOptions(),
    ),
    Variant("B", "A, validation metric AUC", "auc", DriftOptions()),
    Variant(
        "C",
        "A, calibrator fitted on the last 1,000 labelled rows",
        "binary_logloss",
        DriftOptions(calibration_slice=RECENT_CALIBRATION),
    ),
    Variant(
        "D",
        "A, recency weights with a half-life of 90 days",
        "binary_logloss",
        DriftOptions(recency_half_life=Span(duration=pd.Timedelta(days=90))),
    ),
    # A window must be well over twice the 90-day label window: the newest 90 days have no
    # complete label yet, and the purge before validation removes another 90 days.
    Variant(
        "E",
        "A, training window of the last 365 days",
        "binary_logloss",
        DriftOptions(window=Span(duration=pd.Timedelta(days=365))),
    ),
    Variant(
        "F",
        "C + D",
        "binary_logloss",
        DriftOptions(
            calibration_slice=RECENT_CALIBRATION, recency_half_life=Span(duration=pd.Timedelta(days=90))
        ),
    ),
)


def option_count(variant: Variant) -> int:
    """Return how many settings the variant changes from `leadscore train`."""
    drift = variant.drift
    changed = [drift.window, drift.recency_half_life, drift.calibration_slice, drift.change_features]
    return int(variant.validation_metric != "binary_logloss") + sum(value is not None for value in changed)


def choose_variant(sweep: Sequence[tuple[str, Variant, BacktestResult]]) -> Variant:
    """Return the variant with the fewest options whose pooled Brier is within BRIER_TOLERANCE of the best."""
    best = min(result.overall[MODEL]["conversion_brier"] for _, _, result in sweep)
    close = [
        (option_count(variant), result.overall[MODEL]["conversion_brier"], variant.name, variant)
        for _, variant, result in sweep
        if result.overall[MODEL]["conversion_brier"] <= best * (1 + BRIER_TOLERANCE)
    ]
    return min(close, key=lambda item: item[:3])[3]


def generate(out_dir: Path, leads: int, seed: int) -> dict[str, object]:
    """Generate the history, the drift starting in month ``DRIFT_START_MONTH``; return the drift settings."""
    config = GeneratorConfig.model_validate(
        {
            "leads": leads,
            "seed": seed,
            "start": START,
            "months": MONTHS,
            "drift": {"start_month": DRIFT_START_MONTH},
        }
    )
    generate_history(config, out_dir, overwrite=True)
    return config.drift.model_dump()


def run_variant(
    options: BacktestOptions, tables: CanonicalTables, variant: Variant, every: Span | None, trials: int
) -> BacktestResult:
    """Walk forward with one variant's options at cadence ``every`` and ``trials`` trials per retrain."""
    started = time.perf_counter()
    chosen = options.model_copy(
        update={
            "retrain_every": every,
            "trials": trials,
            "validation_metric": variant.validation_metric,
            "drift": variant.drift,
        }
    )
    result = run_backtest(chosen, tables=tables)
    logger.info(
        "variant %s, retrained %s, %d trials: pooled AUC %.4f, Brier %.4f (%.0f s)",
        variant.name,
        f"every {every.describe()}" if every is not None else "once",
        trials,
        result.overall[MODEL]["conversion_auc"],
        result.overall[MODEL]["conversion_brier"],
        time.perf_counter() - started,
    )
    return result


def truth_by_step(result: BacktestResult, truth: pd.DataFrame, first_cutoffs: pd.Series) -> pd.DataFrame:
    """Return per step: drift weight, observed rate, mean predictions and, on intake rows, the truth.

    Intake rows are each lead's first snapshot. Their true probability of eventual conversion
    is a ceiling for the 90-day label, because a few wins come later than 90 days.
    """
    scored = result.predictions.merge(truth, on="lead_id", how="left", validate="many_to_one")
    scored["intake"] = scored["cutoff"].to_numpy() == scored["lead_id"].map(first_cutoffs).to_numpy()
    records = []
    for _, rows in scored.groupby("step", sort=True):
        intake = rows.loc[rows["intake"]]
        y_intake = intake["converted"].to_numpy(np.float64)
        both_classes = 0 < y_intake.sum() < y_intake.size
        records.append(
            {
                "step": int(rows["step"].iloc[0]),
                "start": rows["cutoff"].min(),
                "drift_weight": float(rows["drift_weight"].mean()),
                "rows": len(rows),
                "rate": float(rows["converted"].mean()),
                "mean_p_model": float(rows["p_model"].mean()),
                "mean_p_logistic": float(rows["p_logistic"].mean()),
                "intake_rows": len(intake),
                "intake_rate": float(y_intake.mean()) if len(intake) else np.nan,
                "intake_true_p": float(intake["p_convert_true"].mean()) if len(intake) else np.nan,
                "intake_auc_true_p": (
                    metrics.roc_auc(y_intake, intake["p_convert_true"].to_numpy()) if both_classes else np.nan
                ),
                "intake_auc_model": (
                    metrics.roc_auc(y_intake, intake["p_model"].to_numpy()) if both_classes else np.nan
                ),
                "intake_auc_logistic": (
                    metrics.roc_auc(y_intake, intake["p_logistic"].to_numpy()) if both_classes else np.nan
                ),
            }
        )
    return pd.DataFrame.from_records(records)


def _pooled(result: BacktestResult, model: str, key: str) -> float | None:
    return result.overall.get(model, {}).get(key)


def runs_table(runs: Sequence[tuple[str, Variant, BacktestResult]], heading: str) -> ReportTable:
    """Return one row per run with pooled conversion metrics of model and logistic and LTV metrics."""
    rows = []
    for cadence, variant, result in runs:
        rows.append(
            [
                cadence,
                variant.name,
                variant.description,
                str(len(result.steps)),
                format_number(_pooled(result, MODEL, "conversion_auc")),
                format_number(_pooled(result, MODEL, "conversion_alift")),
                format_number(_pooled(result, MODEL, "conversion_pr_auc")),
                format_number(_pooled(result, MODEL, "conversion_brier")),
                format_number(_pooled(result, MODEL, "conversion_ece")),
                format_number(_pooled(result, LOGISTIC, "conversion_auc")),
                format_number(_pooled(result, LOGISTIC, "conversion_brier")),
                format_number(_pooled(result, LOGISTIC, "conversion_ece")),
                format_number(_pooled(result, RULES, "conversion_auc")),
                format_number(_pooled(result, MODEL, "ltv_gini")),
                format_number(_pooled(result, MODEL, "ltv_spearman")),
                f"{result.seconds:.0f}",
            ]
        )
    columns = [
        "retrain",
        "variant",
        "options",
        "steps",
        "AUC",
        "ALIFT",
        "PR AUC",
        "Brier",
        "ECE",
        "logistic AUC",
        "logistic Brier",
        "logistic ECE",
        "rules AUC",
        "LTV Gini",
        "LTV Spearman",
        "seconds",
    ]
    return ReportTable(heading, columns, rows)


def truth_table(frame: pd.DataFrame) -> ReportTable:
    """Return the per-step comparison with the generator's ground truth."""
    rows = [
        [
            str(record["step"]),
            pd.Timestamp(record["start"]).strftime("%Y-%m-%d"),
            format_number(record["drift_weight"], 2),
            f"{int(record['rows']):,}",
            format_number(record["rate"], 3),
            format_number(record["mean_p_model"], 3),
            format_number(record["mean_p_logistic"], 3),
            f"{int(record['intake_rows']):,}",
            format_number(record["intake_rate"], 3),
            format_number(record["intake_true_p"], 3),
            format_number(record["intake_auc_true_p"]),
            format_number(record["intake_auc_model"]),
            format_number(record["intake_auc_logistic"]),
        ]
        for record in frame.to_dict(orient="records")
    ]
    columns = [
        "step",
        "first cutoff",
        "drift weight",
        "rows",
        "rate",
        "mean p model",
        "mean p logistic",
        "intake rows",
        "intake rate",
        "intake true p",
        "intake AUC of true p",
        "intake AUC model",
        "intake AUC logistic",
    ]
    return ReportTable("Against the ground truth", columns, rows)


def render(
    *,
    command: str,
    drift: dict[str, object],
    leads: int,
    sweep: Sequence[tuple[str, Variant, BacktestResult]],
    cadences: Sequence[tuple[str, Variant, BacktestResult]],
    chosen: Variant,
    truth_reference: pd.DataFrame,
    truth_chosen: pd.DataFrame,
    figures: dict[str, str],
    trials: int,
    sweep_trials: int,
    seed: int,
) -> str:
    """Render the Markdown report."""
    reference = next(result for _, variant, result in sweep if variant.name == "A")
    drift_start = pd.Timestamp(START) + pd.DateOffset(months=DRIFT_START_MONTH)
    lines = [
        "# Retraining backtest: synthetic history with known drift",
        "",
        "Generated by `experiments/backtest_synthetic.py`; do not edit by hand. Reproduce from the "
        "repository root:",
        "",
        "```",
        command,
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs, Python "
        f"{platform.python_version()}, LightGBM with 1 thread, seed {seed}.",
        "",
        f"History: {leads:,} leads over {MONTHS} months from {START}, generated with the drift starting in "
        f"month {DRIFT_START_MONTH} (0-based), so on {drift_start:%Y-%m-%d}. Drift settings: {drift}. "
        "Training settings: the defaults of `leadscore train` (90-day label window, a snapshot at "
        "creation and every 30 days while open, up to 6) with a 180-day LTV window. "
        f"The backtest scores from {BACKTEST_START:%Y-%m-%d} to the last cutoff whose 90-day label window "
        f"is over ({reference.last_cutoff:%Y-%m-%d}), "
        f"{reference.counts['rows_scored']:,} snapshot rows.",
        "",
        "## Options measured (retrain every 30 days)",
        "",
        f"{'Default LightGBM parameters, no tuning' if not sweep_trials else f'{sweep_trials} trials'} per "
        "retrain. Change features are not measured here: the synthetic leads carry no macro-economic "
        "indicator.",
        "",
        markdown_table(runs_table(sweep, "Options")),
        "",
        f"Variant {chosen.name} is carried forward: of the variants whose pooled Brier score is within "
        f"{100 * BRIER_TOLERANCE:g} % of the best, it changes the fewest settings of `leadscore train`. "
        "Brier decides here, not AUC, because the generator's drift lowers the conversion logit of all "
        "leads that arrive at the same time by the same amount and changes the channel mix. That moves "
        "the level of the probabilities and leaves the ranking of leads arriving together alone.",
        "",
        "## Cadence",
        "",
        f"Variant A and variant {chosen.name} with {trials} Optuna trials per retrain.",
        "",
        markdown_table(runs_table(cadences, "Cadence")),
        "",
    ]
    for caption, path in figures.items():
        lines += [f"![{caption}]({path})", ""]
    lines += [
        "## Against the ground truth",
        "",
        "Per step of the 30-day cadence with tuning. `drift weight` is the generator's ramp at the "
        "scored leads' arrival (0 before the drift, 1 once complete). Intake rows are each lead's first "
        "snapshot. `intake true p` is the mean of the generator's true probability of eventual "
        "conversion, and the AUC of the true probability is the ceiling for any model on those rows.",
        "",
        "Variant A:",
        "",
        markdown_table(truth_table(truth_reference)),
        "",
        f"Variant {chosen.name}:",
        "",
        markdown_table(truth_table(truth_chosen)),
        "",
    ]
    return "\n".join(lines)


@dataclass
class Runs:
    """Every backtest of the experiment and its truth tables, kept so the report can be rendered again."""

    sweep: list[tuple[str, Variant, BacktestResult]]
    cadences: list[tuple[str, Variant, BacktestResult]]
    chosen: Variant
    drift: dict[str, object]
    truth_tables: dict[str, pd.DataFrame]


def _find(
    cadences: Sequence[tuple[str, Variant, BacktestResult]], label: str, variant: Variant
) -> BacktestResult:
    return next(
        result for cadence, run_variant_, result in cadences if cadence == label and run_variant_ == variant
    )


def run_all(leads: int, trials: int, sweep_trials: int, seed: int) -> Runs:
    """Generate the history, run the sweep, pick the variant, run the cadences and compare with the truth."""
    with tempfile.TemporaryDirectory(prefix="leadscore-backtest-synthetic-") as scratch:
        data_dir = Path(scratch) / "history"
        drift = generate(data_dir, leads, seed)
        tables = read_data_dir(data_dir)
        truth = pd.read_parquet(data_dir / "ground_truth" / "leads.parquet")[
            ["lead_id", "drift_weight", "p_convert_true"]
        ].astype({"lead_id": "str"})
        options = BacktestOptions(
            data_dir=data_dir,
            retrain_every=EVERY_30_DAYS,
            start=BACKTEST_START,
            trials=0,
            seed=seed,
            num_threads=1,
            feature_config=FEATURE_CONFIG,
            work_dir=Path(scratch) / "work",
        )
        sweep = [
            ("every 30 days", variant, run_variant(options, tables, variant, EVERY_30_DAYS, sweep_trials))
            for variant in VARIANTS
        ]
        chosen = choose_variant(sweep)
        cadences: list[tuple[str, Variant, BacktestResult]] = []
        for label, every in (
            ("once", None),
            ("every 30 days", EVERY_30_DAYS),
            ("every 14 days", EVERY_14_DAYS),
        ):
            for variant in dict.fromkeys((VARIANTS[0], chosen)):
                cadences.append((label, variant, run_variant(options, tables, variant, every, trials)))

        created = tables.leads[["lead_id", "created_at"]].astype({"lead_id": "str"}).set_index("lead_id")
        first_cutoffs = created["created_at"] + pd.Timedelta(hours=FEATURE_CONFIG.first_cutoff_hours)
        truth_tables = {
            variant.name: truth_by_step(_find(cadences, "every 30 days", variant), truth, first_cutoffs)
            for variant in dict.fromkeys((VARIANTS[0], chosen))
        }
    return Runs(sweep, cadences, chosen, drift, truth_tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--out", type=Path, required=True, help="Markdown report to write.")
    parser.add_argument("--leads", type=int, default=15_000, help="Leads in the generated history.")
    parser.add_argument(
        "--trials", type=int, default=10, help="Optuna trials per retrain in the cadence runs."
    )
    parser.add_argument("--sweep-trials", type=int, default=0, help="Optuna trials per retrain in the sweep.")
    parser.add_argument("--seed", type=int, default=7, help="Seed of the generator and of every retrain.")
    parser.add_argument(
        "--runs-file",
        type=Path,
        default=None,
        help="Pickle file of the runs: written after running, or read instead of running when it exists.",
    )
    arguments = parser.parse_args()
    configure_logging("INFO")
    command = (
        f".venv/bin/python -m experiments.backtest_synthetic --out {arguments.out} --leads {arguments.leads} "
        f"--trials {arguments.trials} --sweep-trials {arguments.sweep_trials} --seed {arguments.seed}"
    )
    if arguments.runs_file is not None and arguments.runs_file.is_file():
        # Unpickling runs code, so read only a file that this script wrote.
        runs: Runs = pickle.loads(arguments.runs_file.read_bytes())
        logger.info("read the runs from %s instead of running them", arguments.runs_file)
    else:
        runs = run_all(arguments.leads, arguments.trials, arguments.sweep_trials, arguments.seed)
        if arguments.runs_file is not None:
            arguments.runs_file.write_bytes(pickle.dumps(runs))

    figures_dir = arguments.out.parent / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    figures = {}
    for variant in dict.fromkeys((VARIANTS[0], runs.chosen)):
        path = figures_dir / f"backtest-synthetic-30d-{variant.name}.png"
        plot_metrics_over_time(_find(runs.cadences, "every 30 days", variant)).savefig(path, format="png")
        figures[f"Variant {variant.name}, retrained every 30 days"] = f"figures/{path.name}"
    report = render(
        command=command,
        drift=runs.drift,
        leads=arguments.leads,
        sweep=runs.sweep,
        cadences=runs.cadences,
        chosen=runs.chosen,
        truth_reference=runs.truth_tables[VARIANTS[0].name],
        truth_chosen=runs.truth_tables[runs.chosen.name],
        figures=figures,
        trials=arguments.trials,
        sweep_trials=arguments.sweep_trials,
        seed=arguments.seed,
    )
    arguments.out.write_text(report, encoding="utf-8")
    logger.info("wrote %s", arguments.out)


if __name__ == "__main__":
    main()
