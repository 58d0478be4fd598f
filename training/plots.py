"""Evaluation plots of a trained scorer, written as PNG files for the MLflow run.

Figures are built with ``matplotlib.figure.Figure`` and rendered by the Agg canvas, never through
``pyplot``, so no global backend or figure registry is touched and plots work without a display.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from training import metrics

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

PLOT_FILES: dict[str, str] = {
    "roc": "roc_curve.png",
    "pr": "pr_curve.png",
    "calibration": "calibration_curve.png",
    "gain": "gain_chart.png",
    "deciles": "decile_table.png",
    "importance": "feature_importance.png",
    "shap": "shap_summary.png",
}
MAX_FEATURES_SHOWN = 20
_SHAP_POINTS_PER_FEATURE = 2000
_DPI = 110


def _new_figure(width: float = 6.4, height: float = 4.8) -> Figure:
    figure = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG file and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def plot_roc(y: npt.ArrayLike, scores: Mapping[str, npt.ArrayLike]) -> Figure:
    """Draw one ROC curve per named score (the model and each baseline), with AUC in the legend."""
    figure = _new_figure()
    axes = figure.add_subplot()
    for name, score in scores.items():
        false_positive_rate, true_positive_rate, _ = roc_curve(y, score)
        axes.plot(
            false_positive_rate, true_positive_rate, label=f"{name} (AUC {metrics.roc_auc(y, score):.3f})"
        )
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve (test fold)")
    axes.legend(loc="lower right")
    return figure


def plot_precision_recall(y: npt.ArrayLike, scores: Mapping[str, npt.ArrayLike]) -> Figure:
    """Draw one precision-recall curve per named score, with average precision in the legend."""
    figure = _new_figure()
    axes = figure.add_subplot()
    for name, score in scores.items():
        precision, recall, _ = precision_recall_curve(y, score)
        axes.step(recall, precision, where="post", label=f"{name} (AP {metrics.pr_auc(y, score):.3f})")
    base_rate = float(np.mean(np.asarray(y, dtype=np.float64)))
    axes.axhline(base_rate, linestyle="--", color="grey", linewidth=0.8, label=f"base rate {base_rate:.3f}")
    axes.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve (test fold)", ylim=(0, 1.02))
    axes.legend(loc="upper right")
    return figure


def plot_calibration(
    y: npt.ArrayLike, probabilities: Mapping[str, npt.ArrayLike], n_bins: int = 10
) -> Figure:
    """Draw observed conversion rate against mean predicted probability per quantile bin."""
    figure = _new_figure()
    axes = figure.add_subplot()
    upper = 0.0
    for name, probability in probabilities.items():
        points = metrics.calibration_curve_points(y, probability, n_bins=n_bins, strategy="quantile")
        ece = metrics.expected_calibration_error(y, probability, n_bins=n_bins)
        axes.plot(
            points["mean_predicted"], points["observed_rate"], marker="o", label=f"{name} (ECE {ece:.3f})"
        )
        upper = max(upper, float(points["mean_predicted"].max()), float(points["observed_rate"].max()))
    limit = min(1.0, upper * 1.1 + 0.01)
    axes.plot(
        [0, limit], [0, limit], linestyle="--", color="grey", linewidth=0.8, label="perfect calibration"
    )
    axes.set(
        xlabel="Mean predicted probability",
        ylabel="Observed conversion rate",
        title="Calibration curve (test fold, quantile bins)",
        xlim=(0, limit),
        ylim=(0, limit),
    )
    axes.legend(loc="upper left")
    return figure


def plot_gain(y: npt.ArrayLike, scores: Mapping[str, npt.ArrayLike]) -> Figure:
    """Draw the cumulative gain chart: share of conversions captured against share of leads contacted."""
    figure = _new_figure()
    axes = figure.add_subplot()
    for name, score in scores.items():
        table = metrics.decile_table(y, score)
        shares = np.concatenate(
            ([0.0], table["cumulative_count"].to_numpy() / table["cumulative_count"].iloc[-1])
        )
        gains = np.concatenate(([0.0], table["cumulative_gain"].to_numpy()))
        axes.plot(shares, gains, marker="o", label=name)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="random order")
    axes.set(
        xlabel="Share of leads, highest scores first",
        ylabel="Share of conversions captured",
        title="Cumulative gain chart (test fold)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    axes.legend(loc="lower right")
    return figure


def plot_decile_table(table: pd.DataFrame) -> Figure:
    """Render a decile table (from ``metrics.decile_table``) as a figure with lift bars and the numbers."""
    figure = _new_figure(8.0, 6.4)
    bars, cells = figure.subplots(2, 1, height_ratios=[1, 1.3])
    bars.bar(table["decile"], table["lift"], color="#4c72b0")
    bars.axhline(1.0, linestyle="--", color="grey", linewidth=0.8)
    bars.set(xlabel="Decile (1 = highest scores)", ylabel="Lift", title="Lift by score decile (test fold)")
    bars.set_xticks(table["decile"])

    columns = ["decile", "count", "min_score", "max_score", "positives", "rate", "lift", "cumulative_gain"]
    shown = table[columns]
    text = [
        [
            f"{row.decile:d}",
            f"{row.count:d}",
            f"{row.min_score:.3f}",
            f"{row.max_score:.3f}",
            f"{row.positives:.1f}",
            f"{row.rate:.3f}",
            f"{row.lift:.2f}",
            f"{row.cumulative_gain:.2f}",
        ]
        for row in shown.itertuples(index=False)
    ]
    cells.axis("off")
    rendered = cells.table(cellText=text, colLabels=columns, loc="center")
    rendered.auto_set_font_size(False)
    rendered.set_fontsize(8)
    rendered.scale(1.0, 1.2)
    return figure


def plot_feature_importance(names: Sequence[str], gains: npt.ArrayLike) -> Figure:
    """Draw the total split gain per feature, largest first, for the top features."""
    values = np.asarray(gains, dtype=np.float64)
    order = np.argsort(values)[::-1][:MAX_FEATURES_SHOWN]
    figure = _new_figure(7.0, max(3.0, 0.3 * order.size + 1.2))
    axes = figure.add_subplot()
    axes.barh([names[i] for i in order][::-1], values[order][::-1], color="#4c72b0")
    axes.set(xlabel="Total gain", title="Feature importance (conversion model, gain)")
    return figure


def plot_shap_summary(contributions: npt.ArrayLike, matrix: pd.DataFrame, seed: int = 0) -> Figure:
    """Draw a SHAP summary: each point is one lead's contribution of one feature, coloured by its value.

    ``contributions`` is LightGBM ``pred_contrib`` output (one column per feature plus the bias
    column last). Numeric values are coloured by their rank within the feature, low blue to
    high red; categorical and missing values are grey. Features are ordered by mean |SHAP|.
    """
    values = np.asarray(contributions, dtype=np.float64)[:, : matrix.shape[1]]
    mean_absolute = np.abs(values).mean(axis=0)
    order = np.argsort(mean_absolute)[::-1][:MAX_FEATURES_SHOWN][::-1]
    rng = np.random.default_rng(seed)
    figure = _new_figure(7.5, max(3.0, 0.35 * order.size + 1.5))
    axes = figure.add_subplot()
    scatter = None
    for position, column_index in enumerate(order):
        rows = np.arange(values.shape[0])
        if rows.size > _SHAP_POINTS_PER_FEATURE:
            rows = np.sort(rng.choice(rows, _SHAP_POINTS_PER_FEATURE, replace=False))
        shap_values = values[rows, column_index]
        colour = _value_ranks(matrix.iloc[rows, column_index])
        jitter = rng.uniform(-0.3, 0.3, rows.size)
        known = ~np.isnan(colour)
        axes.scatter(shap_values[~known], position + jitter[~known], s=4, color="#999999", alpha=0.6)
        scatter = axes.scatter(
            shap_values[known],
            position + jitter[known],
            s=4,
            c=colour[known],
            cmap="coolwarm",
            vmin=0,
            vmax=1,
        )
    axes.set_yticks(range(order.size))
    axes.set_yticklabels([str(matrix.columns[i]) for i in order])
    axes.axvline(0.0, color="grey", linewidth=0.8)
    axes.set(xlabel="SHAP value (log-odds contribution)", title="SHAP summary (conversion model, test fold)")
    if scatter is not None:
        bar = figure.colorbar(scatter, ax=axes)
        bar.set_label("feature value (rank, low to high)")
    return figure


def _value_ranks(column: pd.Series) -> FloatArray:
    """Return each numeric value's rank in [0, 1]; categorical or missing values become NaN."""
    if isinstance(column.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(column.dtype):
        return np.full(len(column), np.nan, dtype=np.float64)
    numbers = pd.to_numeric(column, errors="coerce").astype("float64")
    return np.asarray(numbers.rank(pct=True).to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def write_evaluation_plots(
    directory: Path,
    *,
    y: npt.ArrayLike,
    scores: Mapping[str, npt.ArrayLike],
    uncalibrated: npt.ArrayLike,
    feature_names: Sequence[str],
    importance_gain: npt.ArrayLike,
    contributions: npt.ArrayLike,
    matrix: pd.DataFrame,
    model_label: str = "model",
) -> dict[str, Path]:
    """Write every evaluation plot into ``directory`` and return the paths by plot name.

    ``scores`` maps a label to a probability-like score on the test fold and must contain
    ``model_label``, the calibrated model probability. Baselines go on the ROC, PR and gain
    plots. ``uncalibrated`` is the raw booster probability, drawn beside the calibrated one.
    """
    labels = np.asarray(y, dtype=np.float64)
    directory = Path(directory)
    model_scores = scores[model_label]
    figures = {
        "roc": plot_roc(labels, scores),
        "pr": plot_precision_recall(labels, scores),
        "calibration": plot_calibration(labels, {model_label: model_scores, "uncalibrated": uncalibrated}),
        "gain": plot_gain(labels, scores),
        "deciles": plot_decile_table(metrics.decile_table(labels, model_scores)),
        "importance": plot_feature_importance(feature_names, importance_gain),
        "shap": plot_shap_summary(contributions, matrix),
    }
    written = {name: save_figure(figure, directory / PLOT_FILES[name]) for name, figure in figures.items()}
    logger.info("wrote %d evaluation plots to %s", len(written), directory)
    return written
