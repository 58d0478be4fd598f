"""Backtest output: Markdown and HTML reports, a chart of the metrics over time, and MLflow logging.

Both reports are rendered from the same tables (``report_tables``), so they always agree.
The chart is drawn with ``matplotlib.figure.Figure`` on the Agg canvas, never through
``pyplot``, like ``training.plots``.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from training.backtest import LOGISTIC, MODEL, RULES, BacktestResult, StepResult, describe_options
from training.tracking import (
    active_tracking_uri,
    default_artifact_location,
    ensure_experiment,
    finite_metrics,
    flatten_params,
    tracking_client,
)

logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "leadscore-backtest"
MODELS: tuple[str, ...] = (MODEL, LOGISTIC, RULES)
MODEL_LABELS: dict[str, str] = {
    MODEL: "LightGBM (calibrated)",
    LOGISTIC: "logistic regression",
    RULES: "rule score",
}
CONVERSION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("conversion_auc", "ROC AUC"),
    ("conversion_alift", "ALIFT"),
    ("conversion_pr_auc", "PR AUC"),
    ("conversion_brier", "Brier"),
    ("conversion_ece", "ECE"),
    ("mean_p", "mean p"),
)
LTV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ltv_gini", "normalized Gini"),
    ("ltv_spearman", "Spearman"),
    ("ltv_top_decile_share", "top-decile share"),
)
ALIFT_DEFINITION = (
    "ALIFT is `training.metrics.alift`: the area under the cumulative lift (gains) curve, with the "
    "share of rows contacted in score order on x and the share of all positives reached on y, by the "
    "trapezoidal rule. Random order gives 0.5 and it equals base_rate / 2 + (1 - base_rate) * AUC, so "
    "it rises with the positive rate of the scored rows at equal AUC."
)
POOLED_DEFINITION = (
    "`pooled` scores all scored rows together, each with the prediction of the model retrained "
    "before its step. `mean of steps` is the unweighted mean of the per-step values. Pooled AUC "
    "also rewards a model for following the base rate from step to step, while a step's AUC "
    "measures the ranking inside one step only."
)


@dataclass(frozen=True)
class ReportTable:
    """One table of a report: its heading, column names and formatted cells."""

    heading: str
    columns: list[str]
    rows: list[list[str]]


def format_number(value: float | None, digits: int = 4) -> str:
    """Return ``value`` rounded for a report, ``-`` when missing or not finite."""
    if value is None or not math.isfinite(float(value)):
        return "-"
    return f"{value:.{digits}f}"


def _date(value: pd.Timestamp | None) -> str:
    return "-" if value is None else pd.Timestamp(value).strftime("%Y-%m-%d")


def overall_table(result: BacktestResult) -> ReportTable:
    """Return the pooled and mean-of-steps conversion metrics of each model."""
    rows: list[list[str]] = []
    for label, source in (("pooled", result.overall), ("mean of steps", result.step_mean)):
        for model in MODELS:
            values = source.get(model, {})
            cells = [format_number(values.get(key)) for key, _ in CONVERSION_COLUMNS]
            rows.append([MODEL_LABELS[model], label, *cells])
    return ReportTable(
        "Conversion over all scored rows",
        ["model", "aggregate", *(name for _, name in CONVERSION_COLUMNS)],
        rows,
    )


def ltv_table(result: BacktestResult) -> ReportTable | None:
    """Return the LTV metrics on converted rows, or None when no step fitted an LTV model."""
    if "ltv_model" not in result.predictions:
        return None
    rows = []
    for label, source in (("pooled", result.overall), ("mean of steps", result.step_mean)):
        values = source.get(MODEL, {})
        rows.append([label, *(format_number(values.get(key)) for key, _ in LTV_COLUMNS)])
    return ReportTable("LTV on converted rows", ["aggregate", *(name for _, name in LTV_COLUMNS)], rows)


def _step_row(step: StepResult) -> list[str]:
    model = step.metrics.get(MODEL, {})
    logistic = step.metrics.get(LOGISTIC, {})
    rules = step.metrics.get(RULES, {})
    notes = step.skipped or "; ".join(step.notes)
    return [
        str(step.number),
        _date(step.start),
        _date(step.end),
        f"{step.train_rows:,}",
        format_number(step.train_positive_rate, 3),
        f"{step.test_rows:,}",
        format_number(step.test_positive_rate, 3),
        format_number(model.get("conversion_auc")),
        format_number(logistic.get("conversion_auc")),
        format_number(rules.get("conversion_auc")),
        format_number(model.get("conversion_alift")),
        format_number(logistic.get("conversion_alift")),
        format_number(model.get("conversion_brier")),
        format_number(logistic.get("conversion_brier")),
        format_number(model.get("conversion_ece")),
        format_number(model.get("mean_p"), 3),
        str(step.best_iteration),
        step.calibration_method or "-",
        notes or "",
    ]


def steps_table(result: BacktestResult) -> ReportTable:
    """Return one row per step: dates, rows and positive rates, and the main metrics."""
    columns = [
        "step",
        "start",
        "end",
        "train rows",
        "train rate",
        "test rows",
        "test rate",
        "AUC model",
        "AUC logistic",
        "AUC rules",
        "ALIFT model",
        "ALIFT logistic",
        "Brier model",
        "Brier logistic",
        "ECE model",
        "mean p model",
        "rounds",
        "calibration",
        "notes",
    ]
    return ReportTable("Per step", columns, [_step_row(step) for step in result.steps])


def settings_table(result: BacktestResult) -> ReportTable:
    """Return the backtest settings and the row counts as one two-column table."""
    settings = describe_options(result.options)
    rows = [[name, str(value)] for name, value in settings.items()]
    rows += [
        ["leakage probe excluded", ", ".join(result.leakage_excluded) or "none"],
        ["first step starts", result.start.isoformat()],
        ["labelled cutoffs", f"{result.first_cutoff.isoformat()} to {result.last_cutoff.isoformat()}"],
    ]
    rows += [[name, f"{value:,}"] for name, value in result.counts.items()]
    rows.append(["run time", f"{result.seconds:.0f} s"])
    return ReportTable("Settings and row counts", ["setting", "value"], rows)


def report_tables(result: BacktestResult) -> list[ReportTable]:
    """Return every table of the report, in order."""
    tables = [overall_table(result)]
    ltv = ltv_table(result)
    if ltv is not None:
        tables.append(ltv)
    tables += [steps_table(result), settings_table(result)]
    return tables


# --- rendering ----------------------------------------------------------------------------------


def markdown_table(table: ReportTable) -> str:
    """Render one table as GitHub-flavoured Markdown (pipes in cells are escaped)."""
    lines = [
        "| " + " | ".join(table.columns) + " |",
        "|" + "|".join("---" for _ in table.columns) + "|",
    ]
    for row in table.rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


def render_markdown(
    result: BacktestResult, *, title: str, chart: str | None = None, command: str | None = None
) -> str:
    """Render the backtest as a Markdown report. ``chart`` is the chart's path relative to the report."""
    lines = [f"# {title}", ""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += [_summary(result), ""]
    if result.overall_notes:
        lines += [f"- {note}" for note in result.overall_notes] + [""]
    if chart:
        lines += [f"![Metrics per step]({chart})", ""]
    for table in report_tables(result):
        lines += [f"## {table.heading}", "", markdown_table(table), ""]
    lines += ["## Definitions", "", ALIFT_DEFINITION, "", POOLED_DEFINITION, ""]
    return "\n".join(lines)


def render_html(result: BacktestResult, *, title: str, chart: str | None = None) -> str:
    """Render the backtest as a standalone HTML page with the same tables as the Markdown report."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f2f2f2}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(_summary(result))}</p>",
    ]
    parts += [f"<p>{html.escape(note)}</p>" for note in result.overall_notes]
    if chart:
        parts.append(f'<img src="{html.escape(chart)}" alt="Metrics per step">')
    for table in report_tables(result):
        parts.append(f"<h2>{html.escape(table.heading)}</h2><table><tr>")
        parts += [f"<th>{html.escape(column)}</th>" for column in table.columns]
        parts.append("</tr>")
        for row in table.rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>")
        parts.append("</table>")
    parts += [
        "<h2>Definitions</h2>",
        f"<p>{html.escape(ALIFT_DEFINITION.replace('`', ''))}</p>",
        f"<p>{html.escape(POOLED_DEFINITION.replace('`', ''))}</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _summary(result: BacktestResult) -> str:
    options = result.options
    cadence = "once (no retraining)"
    if options.retrain_every is not None:
        cadence = f"every {options.retrain_every.describe()}"
    scored = result.counts.get("rows_scored", 0)
    model = result.overall.get(MODEL, {})
    logistic = result.overall.get(LOGISTIC, {})
    return (
        f"Retrained {cadence} from {_date(result.start)}: {len(result.steps)} steps, {scored:,} rows scored. "
        f"Pooled ROC AUC: model {format_number(model.get('conversion_auc'))}, logistic "
        f"{format_number(logistic.get('conversion_auc'))}; pooled ALIFT: model "
        f"{format_number(model.get('conversion_alift'))}, "
        f"logistic {format_number(logistic.get('conversion_alift'))}."
    )


# --- chart --------------------------------------------------------------------------------------


def _series(steps: Sequence[StepResult], model: str, key: str) -> np.ndarray:
    return np.array([step.metrics.get(model, {}).get(key, np.nan) for step in steps], dtype=np.float64)


def plot_metrics_over_time(result: BacktestResult) -> Figure:
    """Draw ROC AUC, ALIFT, Brier and positive rate against mean prediction, per step start."""
    steps = [step for step in result.steps if not step.skipped]
    starts = [step.start.to_pydatetime() for step in steps]
    figure = Figure(figsize=(11, 7.5), dpi=110)
    FigureCanvasAgg(figure)
    panels = figure.subplots(2, 2, sharex=True)

    for axes, (key, name) in zip(
        panels.flat[:3],
        (("conversion_auc", "ROC AUC"), ("conversion_alift", "ALIFT"), ("conversion_brier", "Brier")),
        strict=True,
    ):
        for model in MODELS:
            axes.plot(starts, _series(steps, model, key), marker="o", markersize=3, label=MODEL_LABELS[model])
        axes.set(title=f"{name} per step", ylabel=name)
        axes.grid(alpha=0.3)
    panels.flat[0].legend(loc="best", fontsize=8)

    rate_axes = panels.flat[3]
    test_rates = [step.test_positive_rate for step in steps]
    rate_axes.plot(starts, test_rates, color="black", marker="o", markersize=3, label="test rate")
    rate_axes.plot(
        starts,
        [step.train_positive_rate for step in steps],
        color="grey",
        linestyle="--",
        label="training rows' rate",
    )
    for model in (MODEL, LOGISTIC):
        legend = f"mean p, {MODEL_LABELS[model]}"
        rate_axes.plot(starts, _series(steps, model, "mean_p"), marker=".", label=legend)
    rate_axes.set(title="Positive rate and mean prediction", ylabel="share converted")
    rate_axes.grid(alpha=0.3)
    rate_axes.legend(loc="best", fontsize=8)

    for axes in panels[1]:
        axes.set_xlabel("step start")
        for label in axes.get_xticklabels():
            label.set_rotation(30)
    figure.tight_layout()
    return figure


# --- files and MLflow ---------------------------------------------------------------------------


def write_report(
    result: BacktestResult, markdown_path: Path, *, title: str, command: str | None = None
) -> list[Path]:
    """Write the Markdown report, its HTML twin, the chart, the step table and the scored rows.

    Files go beside ``markdown_path``: ``NAME.html``, ``NAME.png``, ``NAME.steps.csv`` and
    ``NAME.predictions.parquet``. Returns the written paths.
    """
    markdown_path = Path(markdown_path)
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    stem = markdown_path.with_suffix("")
    chart_path = stem.with_suffix(".png")
    figure = plot_metrics_over_time(result)
    figure.savefig(chart_path, format="png")
    markdown_path.write_text(
        render_markdown(result, title=title, chart=chart_path.name, command=command), encoding="utf-8"
    )
    html_path = stem.with_suffix(".html")
    html_path.write_text(render_html(result, title=title, chart=chart_path.name), encoding="utf-8")
    steps_path = Path(f"{stem}.steps.csv")
    steps_frame(result).to_csv(steps_path, index=False)
    predictions_path = Path(f"{stem}.predictions.parquet")
    result.predictions.to_parquet(predictions_path, index=False)
    logger.info("backtest report written to %s", markdown_path)
    return [markdown_path, html_path, chart_path, steps_path, predictions_path]


def steps_frame(result: BacktestResult) -> pd.DataFrame:
    """Return one row per step with every metric as a column (``model.conversion_auc`` ...)."""
    records = []
    for step in result.steps:
        record: dict[str, object] = {
            "step": step.number,
            "start": step.start,
            "end": step.end,
            "train_rows": step.train_rows,
            "train_positive_rate": step.train_positive_rate,
            "train_first_cutoff": step.train_first_cutoff,
            "train_last_cutoff": step.train_last_cutoff,
            "test_rows": step.test_rows,
            "test_positive_rate": step.test_positive_rate,
            "seed": step.seed,
            "best_iteration": step.best_iteration,
            "calibration_method": step.calibration_method,
            "calibration_rows": step.calibration_rows,
            "seconds": step.seconds,
            "skipped": step.skipped or "",
            "notes": "; ".join(step.notes),
        }
        for model, values in step.metrics.items():
            record.update({f"{model}.{name}": value for name, value in values.items()})
        records.append(record)
    return pd.DataFrame.from_records(records)


def log_backtest(
    result: BacktestResult,
    files: Sequence[Path],
    *,
    tracking_uri: str,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
) -> str:
    """Log the backtest as one MLflow run and return its id.

    Per-step metrics are logged with MLflow's ``step`` set to the step number
    (``model.conversion_auc``, ``test_positive_rate`` ...). Pooled metrics are logged as
    ``overall.*`` and step means as ``step_mean.*``. ``files`` become artifacts under ``backtest/``.
    """
    import mlflow

    client = tracking_client(tracking_uri)
    experiment_id = ensure_experiment(
        client, experiment, default_artifact_location(tracking_uri, result.options.work_dir)
    )
    with (
        active_tracking_uri(tracking_uri),
        mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run,
    ):
        mlflow.log_params(flatten_params(describe_options(result.options)))
        for step in result.steps:
            if step.skipped:
                continue
            values: dict[str, float | None] = {
                "train_positive_rate": step.train_positive_rate,
                "test_positive_rate": step.test_positive_rate,
                "train_rows": float(step.train_rows),
                "test_rows": float(step.test_rows),
            }
            for model, by_name in step.metrics.items():
                values.update({f"{model}.{name}": value for name, value in by_name.items()})
            mlflow.log_metrics(finite_metrics(values), step=step.number)
        summary: dict[str, float | None] = {}
        for prefix, source in (("overall", result.overall), ("step_mean", result.step_mean)):
            for model, by_name in source.items():
                summary.update({f"{prefix}.{model}.{name}": value for name, value in by_name.items()})
        summary.update({f"rows.{name}": float(value) for name, value in result.counts.items()})
        summary["seconds"] = result.seconds
        mlflow.log_metrics(finite_metrics(summary))
        for path in files:
            mlflow.log_artifact(str(path), artifact_path="backtest")
        run_id: str = run.info.run_id
    logger.info("backtest logged to MLflow run %s (experiment %s)", run_id, experiment)
    return run_id
