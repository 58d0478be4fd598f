"""Evaluation metrics for conversion scores and lifetime-value predictions.

Every function takes array-likes of equal length, validates them and returns plain floats or
DataFrames. Invalid input raises ``ValueError`` naming the argument, the problem and the fix.

Ranking metrics on a sorted order (deciles, lift, gains, Gini) treat tied scores as if they
were ordered at random and return the expected value over those orders. So a tie group that
straddles a decile boundary contributes its mean outcome to each side, and a constant score
gives lift 1 and Gini 0 regardless of row order. Positive counts in a decile table can then be
fractional.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats
from sklearn.metrics import average_precision_score

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BinStrategy = Literal["uniform", "quantile"]

N_DECILES = 10
BIN_STRATEGIES: tuple[str, ...] = ("uniform", "quantile")

__all__ = [
    "alift",
    "brier",
    "calibration_curve_points",
    "decile_mape",
    "decile_table",
    "expected_calibration_error",
    "lift_at",
    "normalized_gini",
    "pr_auc",
    "roc_auc",
    "spearman",
    "top_decile_share",
    "value_decile_table",
]


# --- input validation -------------------------------------------------------------------------


def _as_finite_vector(name: str, values: npt.ArrayLike) -> FloatArray:
    """Convert ``values`` to a 1-D float array, raising if it is empty, nested or not finite."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must contain numbers only; conversion to float failed: {error}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {array.shape}. Pass a flat array.")
    if array.size == 0:
        raise ValueError(f"{name} is empty; pass at least one value.")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        shown = ", ".join(f"[{i}]={array[i]}" for i in bad[:5])
        raise ValueError(
            f"{name} contains {bad.size} non-finite value(s) (NaN or infinity), first: {shown}. "
            "Drop or impute them before scoring."
        )
    return array


def _check_same_length(first_name: str, first: FloatArray, second_name: str, second: FloatArray) -> None:
    if first.size != second.size:
        raise ValueError(
            f"{first_name} has {first.size} values but {second_name} has {second.size}; "
            "they must be aligned row by row."
        )


def _check_binary(name: str, values: FloatArray) -> None:
    bad = np.flatnonzero((values != 0.0) & (values != 1.0))
    if bad.size:
        shown = ", ".join(f"[{i}]={values[i]}" for i in bad[:5])
        raise ValueError(
            f"{name} must contain only 0 and 1; found {bad.size} other value(s), first: {shown}."
        )


def _check_probabilities(name: str, values: FloatArray) -> None:
    bad = np.flatnonzero((values < 0.0) | (values > 1.0))
    if bad.size:
        shown = ", ".join(f"[{i}]={values[i]}" for i in bad[:5])
        raise ValueError(
            f"{name} must be probabilities in [0, 1]; found {bad.size} value(s) outside, first: {shown}."
        )


def _check_both_classes(name: str, labels: FloatArray, metric: str) -> None:
    positives = int(labels.sum())
    if positives in (0, labels.size):
        only = "1" if positives else "0"
        raise ValueError(
            f"{metric} is undefined because {name} contains only class {only}; "
            "evaluate on a sample with both positives and negatives."
        )


def _check_min_rows(count: int, minimum: int, metric: str) -> None:
    if count < minimum:
        raise ValueError(f"{metric} needs at least {minimum} rows; got {count}.")


def _binary_inputs(y: npt.ArrayLike, p: npt.ArrayLike, p_name: str = "p") -> tuple[FloatArray, FloatArray]:
    labels = _as_finite_vector("y", y)
    scores = _as_finite_vector(p_name, p)
    _check_same_length("y", labels, p_name, scores)
    _check_binary("y", labels)
    return labels, scores


def _value_inputs(y: npt.ArrayLike, pred: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    actual = _as_finite_vector("y", y)
    predicted = _as_finite_vector("pred", pred)
    _check_same_length("y", actual, "pred", predicted)
    return actual, predicted


# --- tie-aware cumulative sums ----------------------------------------------------------------


def _expected_cumulative_sums(
    score: FloatArray, outcome: FloatArray, cuts: npt.NDArray[np.int64]
) -> FloatArray:
    """Sum ``outcome`` over the ``k`` highest scores for each ``k`` in ``cuts``.

    Rows with equal scores are treated as randomly ordered, so a tie group cut at position ``k``
    contributes its mean outcome for each of its rows that falls above the cut.
    """
    order = np.argsort(-score, kind="stable")
    sorted_score = score[order]
    sorted_outcome = outcome[order]

    is_new_group = np.empty(score.size, dtype=bool)
    is_new_group[0] = True
    is_new_group[1:] = sorted_score[1:] != sorted_score[:-1]
    group_starts = np.flatnonzero(is_new_group)
    group_sizes = np.diff(np.append(group_starts, score.size))
    group_sums = np.add.reduceat(sorted_outcome, group_starts)
    sums_before_group = np.concatenate(([0.0], np.cumsum(group_sums)[:-1]))

    result = np.zeros(cuts.size, dtype=np.float64)
    positive = cuts > 0
    group_of_last_row = np.searchsorted(group_starts, cuts[positive] - 1, side="right") - 1
    rows_taken = cuts[positive] - group_starts[group_of_last_row]
    group_means = group_sums[group_of_last_row] / group_sizes[group_of_last_row]
    result[positive] = sums_before_group[group_of_last_row] + rows_taken * group_means
    return result


def _decile_cuts(count: int) -> npt.NDArray[np.int64]:
    """Return the 11 row positions that split ``count`` sorted rows into deciles of near-equal size."""
    return (np.arange(N_DECILES + 1, dtype=np.int64) * count) // N_DECILES


def _cumulative_share_curve(score: FloatArray, outcome: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Return the x (population share) and y (outcome share) points of the cumulative gains curve."""
    cuts = np.arange(score.size + 1, dtype=np.int64)
    captured = _expected_cumulative_sums(score, outcome, cuts)
    return cuts / score.size, captured / outcome.sum()


def _area_under(x: FloatArray, y: FloatArray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


# --- classification -----------------------------------------------------------------------------


def roc_auc(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Compute the area under the ROC curve; tied scores count one half (Mann-Whitney U / n1 n0)."""
    labels, scores = _binary_inputs(y, p)
    _check_both_classes("y", labels, "ROC AUC")
    ranks = stats.rankdata(scores)
    positives = labels == 1.0
    n_positive = int(positives.sum())
    n_negative = labels.size - n_positive
    u_statistic = ranks[positives].sum() - n_positive * (n_positive + 1) / 2.0
    return float(u_statistic / (n_positive * n_negative))


def pr_auc(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Compute average precision, the step-wise area under the precision-recall curve.

    Uses scikit-learn's ``average_precision_score``: the sum over thresholds of precision times
    the recall gained at that threshold, without interpolation.
    """
    labels, scores = _binary_inputs(y, p)
    if labels.sum() == 0:
        raise ValueError("PR AUC is undefined because y has no positives; evaluate on a sample with some.")
    return float(average_precision_score(labels, scores))


def brier(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Compute the Brier score, the mean squared difference between probability and outcome."""
    labels, probabilities = _binary_inputs(y, p)
    _check_probabilities("p", probabilities)
    return float(np.mean((probabilities - labels) ** 2))


def _bin_edges(probabilities: FloatArray, n_bins: int, strategy: str) -> FloatArray:
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    edges = np.quantile(probabilities, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    # Repeated quantiles (many equal probabilities) would make empty bins, so they merge.
    return np.unique(edges)


def calibration_curve_points(
    y: npt.ArrayLike, p: npt.ArrayLike, n_bins: int = 10, strategy: BinStrategy = "uniform"
) -> pd.DataFrame:
    """Bin probabilities and compare the mean prediction with the observed rate in each bin.

    ``strategy="uniform"`` uses ``n_bins`` equal-width bins on [0, 1]; ``"quantile"`` uses bins
    holding about equal numbers of rows, merging bins whose edges coincide. Bins are closed on
    the left and open on the right, except the last, which includes 1.0. Empty bins are left
    out. Columns: bin, lower, upper, count, mean_predicted, observed_rate.
    """
    labels, probabilities = _binary_inputs(y, p)
    _check_probabilities("p", probabilities)
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}.")
    if strategy not in BIN_STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(BIN_STRATEGIES)}; got {strategy!r}.")

    edges = _bin_edges(probabilities, int(n_bins), strategy)
    bin_index = np.clip(np.searchsorted(edges, probabilities, side="right") - 1, 0, edges.size - 2)
    counts = np.bincount(bin_index, minlength=edges.size - 1)
    predicted_sums = np.bincount(bin_index, weights=probabilities, minlength=edges.size - 1)
    label_sums = np.bincount(bin_index, weights=labels, minlength=edges.size - 1)

    filled = counts > 0
    return pd.DataFrame(
        {
            "bin": np.flatnonzero(filled) + 1,
            "lower": edges[:-1][filled],
            "upper": edges[1:][filled],
            "count": counts[filled],
            "mean_predicted": predicted_sums[filled] / counts[filled],
            "observed_rate": label_sums[filled] / counts[filled],
        }
    )


def expected_calibration_error(
    y: npt.ArrayLike, p: npt.ArrayLike, n_bins: int = 10, strategy: BinStrategy = "uniform"
) -> float:
    """Compute ECE: the row-weighted mean of |mean predicted - observed rate| over the bins.

    Bins are those of ``calibration_curve_points`` with the same ``n_bins`` and ``strategy``.
    """
    points = calibration_curve_points(y, p, n_bins=n_bins, strategy=strategy)
    weights = points["count"].to_numpy(dtype=np.float64)
    gaps = np.abs(points["mean_predicted"].to_numpy() - points["observed_rate"].to_numpy())
    return float(np.sum(weights * gaps) / weights.sum())


# --- lift and gains -----------------------------------------------------------------------------


def decile_table(y: npt.ArrayLike, score: npt.ArrayLike, value: npt.ArrayLike | None = None) -> pd.DataFrame:
    """Build the lift and gains table by score decile; decile 1 contains the highest scores.

    Rows are sorted by score and split into ten groups whose sizes differ by at most one row.
    Columns: decile, count, min_score, max_score, positives, rate, lift (rate over the overall
    rate), cumulative_count, cumulative_positives, cumulative_gain (share of all positives
    captured down to this decile) and cumulative_lift. With ``value`` (for example order value
    per lead) the table adds value_sum, value_share and cumulative_value_share.
    """
    labels, scores = _binary_inputs(y, score, p_name="score")
    _check_min_rows(labels.size, N_DECILES, "decile_table")
    total_positives = labels.sum()
    if total_positives == 0:
        raise ValueError("decile_table: y has no positives, so lift and gain are undefined.")

    cuts = _decile_cuts(labels.size)
    cumulative_counts = cuts[1:]
    counts = np.diff(cuts)
    cumulative_positives = _expected_cumulative_sums(scores, labels, cuts)[1:]
    positives = np.diff(np.concatenate(([0.0], cumulative_positives)))
    overall_rate = total_positives / labels.size
    sorted_scores = np.sort(scores)[::-1]

    table = pd.DataFrame(
        {
            "decile": np.arange(1, N_DECILES + 1),
            "count": counts,
            "min_score": sorted_scores[cuts[1:] - 1],
            "max_score": sorted_scores[cuts[:-1]],
            "positives": positives,
            "rate": positives / counts,
            "lift": positives / counts / overall_rate,
            "cumulative_count": cumulative_counts,
            "cumulative_positives": cumulative_positives,
            "cumulative_gain": cumulative_positives / total_positives,
            "cumulative_lift": cumulative_positives / cumulative_counts / overall_rate,
        }
    )
    if value is not None:
        values = _as_finite_vector("value", value)
        _check_same_length("y", labels, "value", values)
        total_value = values.sum()
        if total_value <= 0:
            raise ValueError(
                f"decile_table: value must have a positive total to compute shares; got {total_value}."
            )
        cumulative_values = _expected_cumulative_sums(scores, values, cuts)[1:]
        table["value_sum"] = np.diff(np.concatenate(([0.0], cumulative_values)))
        table["value_share"] = table["value_sum"] / total_value
        table["cumulative_value_share"] = cumulative_values / total_value
    return table


def lift_at(y: npt.ArrayLike, score: npt.ArrayLike, fraction: float) -> float:
    """Compute the lift in the top ``fraction`` of rows by score: their positive rate over the overall rate.

    The top group has ``ceil(fraction * n)`` rows, at least one; ``fraction`` must be in (0, 1].
    """
    labels, scores = _binary_inputs(y, score, p_name="score")
    if isinstance(fraction, bool) or not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], for example 0.1 for the top decile; got {fraction!r}.")
    total_positives = labels.sum()
    if total_positives == 0:
        raise ValueError("lift_at: y has no positives, so lift is undefined.")

    # The small offset keeps float noise such as 0.07 * 100 = 7.000000000000001 from adding a row.
    top_count = max(1, math.ceil(float(fraction) * labels.size - 1e-9))
    captured = _expected_cumulative_sums(scores, labels, np.array([top_count], dtype=np.int64))[0]
    return float((captured / top_count) / (total_positives / labels.size))


def alift(y: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Compute ALIFT, the area under the cumulative lift (gains) curve, in [0, 1].

    The curve plots the share of the population contacted in score order (x) against the share
    of all positives reached (y), from (0, 0) to (1, 1), and the area is taken with the
    trapezoidal rule. A random order scores 0.5 on average and a perfect one 1 - base_rate / 2.
    With ties averaged it equals ``base_rate / 2 + (1 - base_rate) * AUC``.

    The name and the curve follow Moro, Cortez and Rita, "A data-driven approach to predict
    the success of bank telemarketing", Decision Support Systems 62 (2014) 22-31. Their
    abstract describes the curve by the share of subscribers reached when the best-scored half
    of the clients is contacted.
    """
    # NOTE: the abstract reports AUC 0.8 with ALIFT 0.7, which the identity above does not give
    # at the bank data's base rate (about 0.11). Their exact normalization may differ, so
    # compare values from this function with each other, not with the published ones.
    labels, scores = _binary_inputs(y, score, p_name="score")
    if labels.sum() == 0:
        raise ValueError("alift: y has no positives, so the gains curve is undefined.")
    x, captured_share = _cumulative_share_curve(scores, labels)
    return _area_under(x, captured_share)


# --- lifetime value -----------------------------------------------------------------------------


def _gini(actual: FloatArray, order_by: FloatArray) -> float:
    x, captured_share = _cumulative_share_curve(order_by, actual)
    return 2.0 * _area_under(x, captured_share) - 1.0


def normalized_gini(y: npt.ArrayLike, pred: npt.ArrayLike) -> float:
    """Compute the Gini of ranking ``y`` by ``pred``, divided by the Gini of ranking ``y`` by itself.

    The Gini of an ordering is twice the area between its cumulative share curve (share of rows
    taken in descending ``pred`` order against the share of total ``y`` they hold) and the
    diagonal. Zeros and negative values (refunds) in ``y`` are fine as long as the total of
    ``y`` is not zero and ``y`` is not constant. The result is 1 for a perfect ordering, -1
    for the reversed one and 0 for constant predictions. Only the order of ``pred`` matters.
    """
    actual, predicted = _value_inputs(y, pred)
    _check_min_rows(actual.size, 2, "normalized_gini")
    if actual.sum() == 0:
        raise ValueError("normalized_gini: y sums to 0, so shares of the total are undefined.")
    perfect = _gini(actual, actual)
    if perfect == 0:
        raise ValueError("normalized_gini: y is constant, so no ordering can beat random; Gini is undefined.")
    return _gini(actual, predicted) / perfect


def spearman(y: npt.ArrayLike, pred: npt.ArrayLike) -> float:
    """Compute Spearman's rank correlation between actual and predicted values (ties get average ranks)."""
    actual, predicted = _value_inputs(y, pred)
    _check_min_rows(actual.size, 2, "spearman")
    for name, values in (("y", actual), ("pred", predicted)):
        if np.all(values == values[0]):
            raise ValueError(f"spearman: {name} is constant, so rank correlation is undefined.")
    return float(stats.spearmanr(actual, predicted).statistic)


def value_decile_table(y: npt.ArrayLike, pred: npt.ArrayLike) -> pd.DataFrame:
    """Compare mean predicted and mean actual value per predicted decile; decile 1 is the highest.

    Columns: decile, count, mean_predicted, mean_actual, actual_sum, actual_share and
    absolute_percentage_error (|mean_predicted - mean_actual| / |mean_actual|, NaN where the
    mean actual value is exactly zero).
    """
    actual, predicted = _value_inputs(y, pred)
    _check_min_rows(actual.size, N_DECILES, "value_decile_table")
    cuts = _decile_cuts(actual.size)
    counts = np.diff(cuts)
    actual_sums = np.diff(_expected_cumulative_sums(predicted, actual, cuts))
    predicted_sums = np.diff(_expected_cumulative_sums(predicted, predicted, cuts))
    mean_actual = actual_sums / counts
    mean_predicted = predicted_sums / counts
    total = actual.sum()

    with np.errstate(divide="ignore", invalid="ignore"):
        gaps = np.abs(mean_predicted - mean_actual)
        errors = np.where(mean_actual != 0, gaps / np.abs(mean_actual), np.nan)
        shares = actual_sums / total if total != 0 else np.full(N_DECILES, np.nan)
    return pd.DataFrame(
        {
            "decile": np.arange(1, N_DECILES + 1),
            "count": counts,
            "mean_predicted": mean_predicted,
            "mean_actual": mean_actual,
            "actual_sum": actual_sums,
            "actual_share": shares,
            "absolute_percentage_error": errors,
        }
    )


def decile_mape(y: npt.ArrayLike, pred: npt.ArrayLike) -> float:
    """Compute the mean absolute percentage error between mean predicted and mean actual per decile.

    Deciles are those of ``value_decile_table``. A decile whose mean actual value is exactly
    zero has no percentage error, so it is left out of the mean and a warning is logged with
    the count. If every decile has a zero mean, the metric is undefined and this raises.
    """
    table = value_decile_table(y, pred)
    errors = table["absolute_percentage_error"].to_numpy(dtype=np.float64)
    defined = ~np.isnan(errors)
    if not defined.any():
        raise ValueError("decile_mape: every decile has a mean actual value of 0, so MAPE is undefined.")
    skipped = int((~defined).sum())
    if skipped:
        logger.warning(
            "decile_mape left out %d of %d deciles whose mean actual value is 0", skipped, N_DECILES
        )
    return float(errors[defined].mean())


def top_decile_share(y: npt.ArrayLike, pred: npt.ArrayLike) -> float:
    """Compute the share of total actual value held by the top 10 % of rows by prediction.

    The top group is decile 1 of ``value_decile_table`` (``n // 10`` rows). The total of ``y``
    must be positive.
    """
    actual, predicted = _value_inputs(y, pred)
    _check_min_rows(actual.size, N_DECILES, "top_decile_share")
    total = actual.sum()
    if total <= 0:
        raise ValueError(f"top_decile_share: y must have a positive total to compute a share; got {total}.")
    top_count = _decile_cuts(actual.size)[1:2]
    return float(_expected_cumulative_sums(predicted, actual, top_count)[0] / total)
