"""Tests for training.metrics: hand-computed cases, invariants and input validation."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from training import metrics


@pytest.fixture(scope="module")
def tied_scores() -> tuple[np.ndarray, np.ndarray]:
    """Binary labels with scores rounded to one decimal, so many ties straddle decile edges."""
    rng = np.random.default_rng(7)
    scores = np.round(rng.random(503), 1)
    labels = (rng.random(503) < 0.2 + 0.5 * scores).astype(float)
    return labels, scores


# --- ROC AUC, PR AUC, Brier -------------------------------------------------------------------


def test_roc_auc_hand_case() -> None:
    # Pairs (positive, negative): (0.35, 0.1) won, (0.35, 0.4) lost, (0.8, *) won twice -> 3 / 4.
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_roc_auc_perfect_reversed_constant() -> None:
    y = [0, 0, 1, 1, 0, 1]
    score = [0.1, 0.2, 0.7, 0.9, 0.3, 0.8]
    assert metrics.roc_auc(y, score) == 1.0
    assert metrics.roc_auc(y, [-s for s in score]) == 0.0
    assert metrics.roc_auc(y, [0.5] * 6) == 0.5


def test_roc_auc_matches_sklearn_with_ties(tied_scores: tuple[np.ndarray, np.ndarray]) -> None:
    labels, scores = tied_scores
    assert metrics.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_roc_auc_single_class_raises() -> None:
    with pytest.raises(ValueError, match="ROC AUC is undefined because y contains only class 0"):
        metrics.roc_auc([0, 0, 0], [0.1, 0.2, 0.3])


def test_pr_auc_hand_case() -> None:
    # Descending scores: 0.8 (pos), 0.4 (neg), 0.35 (pos), 0.1 (neg).
    # Recall 0.5 at precision 1, then recall 1.0 at precision 2/3: AP = 0.5 * 1 + 0.5 * 2/3.
    assert metrics.pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5 + 1 / 3)


def test_pr_auc_matches_sklearn(tied_scores: tuple[np.ndarray, np.ndarray]) -> None:
    labels, scores = tied_scores
    assert metrics.pr_auc(labels, scores) == pytest.approx(average_precision_score(labels, scores))


def test_pr_auc_without_positives_raises() -> None:
    with pytest.raises(ValueError, match="PR AUC is undefined because y has no positives"):
        metrics.pr_auc([0, 0], [0.1, 0.2])


def test_brier_hand_case() -> None:
    assert metrics.brier([0, 1], [0.2, 0.6]) == pytest.approx((0.04 + 0.16) / 2)
    assert metrics.brier([0, 1, 1], [0, 1, 1]) == 0.0


def test_brier_rejects_out_of_range_probability() -> None:
    with pytest.raises(ValueError, match=r"p must be probabilities in \[0, 1\].*\[1\]=1.2"):
        metrics.brier([0, 1], [0.2, 1.2])


# --- calibration --------------------------------------------------------------------------------


def test_ece_hand_case() -> None:
    # Two uniform bins: [0, 0.5) has mean p 0.15 vs rate 0.5, [0.5, 1] has 0.85 vs 0.5.
    ece = metrics.expected_calibration_error([0, 1, 0, 1], [0.1, 0.2, 0.8, 0.9], n_bins=2)
    assert ece == pytest.approx(0.35)


def test_ece_zero_when_calibrated() -> None:
    y = [0, 1] * 50
    assert metrics.expected_calibration_error(y, [0.5] * 100) == 0.0
    assert metrics.expected_calibration_error(y, [0.5] * 100, strategy="quantile") == 0.0


def test_ece_weights_bins_by_count() -> None:
    # Bin [0, 0.5): 3 rows, p 0.2, rate 1/3 -> gap 2/15. Bin [0.5, 1]: 1 row, p 0.9, rate 1 -> 0.1.
    ece = metrics.expected_calibration_error([0, 0, 1, 1], [0.2, 0.2, 0.2, 0.9], n_bins=2)
    assert ece == pytest.approx((3 * (1 / 3 - 0.2) + 1 * 0.1) / 4)


def test_calibration_points_bins_and_edges() -> None:
    points = metrics.calibration_curve_points([0, 1, 1, 0, 1], [0.0, 0.05, 0.55, 0.95, 1.0], n_bins=10)
    assert list(points.columns) == ["bin", "lower", "upper", "count", "mean_predicted", "observed_rate"]
    # 0.0 and 0.05 share the first bin; 1.0 falls in the last bin with 0.95; empty bins are left out.
    assert points["bin"].tolist() == [1, 6, 10]
    assert points["count"].tolist() == [2, 1, 2]
    assert points["mean_predicted"].tolist() == pytest.approx([0.025, 0.55, 0.975])
    assert points["observed_rate"].tolist() == pytest.approx([0.5, 1.0, 0.5])
    assert points["count"].sum() == 5


def test_calibration_points_quantile_bins_hold_equal_counts() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(float)
    points = metrics.calibration_curve_points(y, p, n_bins=4, strategy="quantile")
    assert points["count"].tolist() == [250, 250, 250, 250]
    assert points["lower"].iloc[0] == 0.0
    assert points["upper"].iloc[-1] == 1.0


def test_calibration_points_quantile_merges_repeated_edges() -> None:
    p = [0.1] * 8 + [0.9] * 2
    points = metrics.calibration_curve_points([0] * 5 + [1] * 5, p, n_bins=10, strategy="quantile")
    assert points["count"].sum() == 10
    assert len(points) == 2


def test_calibration_points_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_bins must be a positive integer; got 0"):
        metrics.calibration_curve_points([0, 1], [0.1, 0.2], n_bins=0)
    with pytest.raises(ValueError, match="strategy must be one of uniform, quantile; got 'kmeans'"):
        metrics.calibration_curve_points([0, 1], [0.1, 0.2], strategy="kmeans")  # type: ignore[arg-type]


# --- lift and gains -----------------------------------------------------------------------------


def test_decile_table_hand_case() -> None:
    score = np.arange(20, 0, -1, dtype=float)
    y = np.array([1, 1, 1, 1] + [0] * 16, dtype=float)
    table = metrics.decile_table(y, score)

    assert table["decile"].tolist() == list(range(1, 11))
    assert table["count"].tolist() == [2] * 10
    assert table["positives"].tolist() == [2, 2] + [0] * 8
    assert table["rate"].iloc[0] == 1.0
    assert table["lift"].iloc[0] == pytest.approx(5.0)
    assert table["cumulative_gain"].iloc[1] == pytest.approx(1.0)
    assert table["cumulative_lift"].iloc[1] == pytest.approx(5.0)
    assert table["cumulative_lift"].iloc[-1] == pytest.approx(1.0)
    assert table["max_score"].iloc[0] == 20.0
    assert table["min_score"].iloc[0] == 19.0
    assert table["min_score"].iloc[-1] == 1.0


def test_decile_table_with_value_shares() -> None:
    score = np.arange(10, 0, -1, dtype=float)
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    value = np.array([50, 0, 30, 0, 0, 0, 0, 0, 0, 20], dtype=float)
    table = metrics.decile_table(y, score, value=value)
    assert table["value_sum"].tolist() == [50, 0, 30, 0, 0, 0, 0, 0, 0, 20]
    assert table["value_share"].iloc[0] == pytest.approx(0.5)
    assert table["cumulative_value_share"].iloc[2] == pytest.approx(0.8)
    assert table["cumulative_value_share"].iloc[-1] == pytest.approx(1.0)


def test_decile_table_uneven_row_count() -> None:
    table = metrics.decile_table([1] + [0] * 22, np.linspace(1, 0, 23))
    assert table["count"].sum() == 23
    assert table["count"].max() - table["count"].min() <= 1


def test_decile_table_constant_score_has_lift_one() -> None:
    y = [1, 0, 0, 0, 1] * 4
    table = metrics.decile_table(y, [0.3] * 20)
    assert table["lift"].tolist() == pytest.approx([1.0] * 10)
    assert table["positives"].tolist() == pytest.approx([0.8] * 10)


def test_decile_table_invariant_to_row_order(tied_scores: tuple[np.ndarray, np.ndarray]) -> None:
    labels, scores = tied_scores
    permutation = np.random.default_rng(11).permutation(labels.size)
    original = metrics.decile_table(labels, scores, value=scores * 3)
    shuffled = metrics.decile_table(labels[permutation], scores[permutation], value=scores[permutation] * 3)
    pd.testing.assert_frame_equal(original, shuffled, check_exact=False, rtol=1e-12)


def test_decile_table_needs_ten_rows_and_positives() -> None:
    with pytest.raises(ValueError, match="decile_table needs at least 10 rows; got 3"):
        metrics.decile_table([1, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="y has no positives"):
        metrics.decile_table([0] * 10, np.arange(10.0))
    with pytest.raises(ValueError, match="value must have a positive total"):
        metrics.decile_table([1] * 10, np.arange(10.0), value=[0.0] * 10)


def test_lift_at_hand_case() -> None:
    score = np.arange(20, 0, -1, dtype=float)
    y = np.array([1, 1, 0, 1] + [0] * 16, dtype=float)
    assert metrics.lift_at(y, score, 0.1) == pytest.approx(1.0 / 0.15)
    assert metrics.lift_at(y, score, 0.2) == pytest.approx(0.75 / 0.15)
    # ceil(0.12 * 20) = 3 rows taken: two positives among them.
    assert metrics.lift_at(y, score, 0.12) == pytest.approx((2 / 3) / 0.15)
    assert metrics.lift_at(y, score, 1.0) == pytest.approx(1.0)
    # A fraction below one row still takes the top row.
    assert metrics.lift_at(y, score, 1e-6) == pytest.approx(1.0 / 0.15)
    # 0.07 * 100 is 7.000000000000001 in floating point; the top group is still 7 rows.
    y100 = np.zeros(100)
    y100[:7] = 1.0
    assert metrics.lift_at(y100, np.arange(100.0, 0.0, -1.0), 0.07) == pytest.approx(100 / 7)


def test_lift_at_splits_tied_group() -> None:
    # Top 2 rows come from one tie group of 4 rows with 1 positive: expected 0.5 positives.
    y = [1, 0, 0, 0, 1, 0, 0, 0]
    score = [0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1]
    assert metrics.lift_at(y, score, 0.25) == pytest.approx((0.5 / 2) / 0.25)


def test_lift_at_rejects_bad_fraction() -> None:
    for fraction in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
            metrics.lift_at([0, 1], [0.1, 0.2], fraction)


def test_alift_perfect_and_constant() -> None:
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0], dtype=float)
    assert metrics.alift(y, y) == pytest.approx(1 - 0.2 / 2)
    assert metrics.alift(y, np.zeros(10)) == pytest.approx(0.5)
    assert metrics.alift(y, 1 - y) == pytest.approx(0.2 / 2)


def test_alift_equals_auc_identity(tied_scores: tuple[np.ndarray, np.ndarray]) -> None:
    labels, scores = tied_scores
    base_rate = labels.mean()
    expected = base_rate / 2 + (1 - base_rate) * metrics.roc_auc(labels, scores)
    assert metrics.alift(labels, scores) == pytest.approx(expected, abs=1e-12)


# --- lifetime value -----------------------------------------------------------------------------


def test_normalized_gini_hand_case() -> None:
    # By pred: values 1, 3, 0 -> cumulative shares 1/4, 1, 1; by value: 3, 1, 0 -> 3/4, 1, 1.
    # Gini ~ sum(shares) / n - (n + 1) / (2n): (2.25 / 3 - 2 / 3) / (2.75 / 3 - 2 / 3) = 1 / 3.
    assert metrics.normalized_gini([0, 1, 3], [0.1, 0.3, 0.2]) == pytest.approx(1 / 3)


def test_normalized_gini_perfect_reversed_constant() -> None:
    rng = np.random.default_rng(5)
    y = rng.gamma(0.5, 40.0, 300) * (rng.random(300) < 0.4)
    assert metrics.normalized_gini(y, y) == pytest.approx(1.0)
    assert metrics.normalized_gini(y, -y) == pytest.approx(-1.0)
    assert metrics.normalized_gini(y, np.full(300, 7.0)) == pytest.approx(0.0, abs=1e-12)


def test_normalized_gini_depends_on_order_only() -> None:
    rng = np.random.default_rng(9)
    y = rng.gamma(1.0, 10.0, 200)
    pred = y + rng.normal(0, 10.0, 200)
    assert metrics.normalized_gini(y, pred) == pytest.approx(metrics.normalized_gini(y, np.exp(pred / 10)))


def test_normalized_gini_with_zeros_and_refunds() -> None:
    y = np.array([0.0, -5.0, 0.0, 20.0, 40.0, 0.0, 10.0])
    assert metrics.normalized_gini(y, y) == pytest.approx(1.0)
    gini = metrics.normalized_gini(y, [0, 1, 0, 3, 2, 0, 1])
    assert 0.0 < gini < 1.0


def test_normalized_gini_undefined_cases_raise() -> None:
    with pytest.raises(ValueError, match="y sums to 0"):
        metrics.normalized_gini([5.0, -5.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="y is constant"):
        metrics.normalized_gini([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="normalized_gini needs at least 2 rows; got 1"):
        metrics.normalized_gini([2.0], [1.0])


def test_spearman_hand_case() -> None:
    assert metrics.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert metrics.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Ranks of pred (1, 3, 2, 4): 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15) = 0.8.
    assert metrics.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


def test_spearman_constant_raises() -> None:
    with pytest.raises(ValueError, match="spearman: pred is constant"):
        metrics.spearman([1, 2, 3], [5, 5, 5])


def test_decile_mape_scaled_prediction() -> None:
    y = np.arange(1.0, 101.0)
    assert metrics.decile_mape(y, 1.1 * y) == pytest.approx(0.1)
    assert metrics.decile_mape(y, y) == pytest.approx(0.0)


def test_decile_mape_hand_case() -> None:
    # Ten rows, one per decile: |20 - 10| / 10 = 1 in decile 1 and 0 elsewhere, so MAPE is 1 / 10.
    y = np.arange(10.0, 0.0, -1.0)
    pred = y.copy()
    pred[0] = 20.0
    assert metrics.decile_mape(y, pred) == pytest.approx(0.1)


def test_decile_mape_skips_zero_deciles(caplog: pytest.LogCaptureFixture) -> None:
    y = np.array([10.0, 8, 6, 4, 2, 0, 0, 0, 0, 0])
    pred = np.array([11.0, 8, 6, 4, 2, 1, 1, 1, 1, 1]) - np.arange(10) * 1e-3
    with caplog.at_level(logging.WARNING, logger="training.metrics"):
        result = metrics.decile_mape(y, pred)
    # Deciles 1 to 5 are defined: errors 0.1 (approximately) and 0 for the others.
    table = metrics.value_decile_table(y, pred)
    expected = table["absolute_percentage_error"].iloc[:5].mean()
    assert result == pytest.approx(expected)
    assert table["absolute_percentage_error"].iloc[5:].isna().all()
    assert "left out 5 of 10 deciles" in caplog.text


def test_decile_mape_all_zero_raises() -> None:
    with pytest.raises(ValueError, match="every decile has a mean actual value of 0"):
        metrics.decile_mape(np.zeros(10), np.arange(10.0))


def test_value_decile_table_ties_share_means() -> None:
    y = np.arange(20.0)
    table = metrics.value_decile_table(y, np.ones(20))
    assert table["mean_actual"].tolist() == pytest.approx([9.5] * 10)
    assert table["mean_predicted"].tolist() == pytest.approx([1.0] * 10)
    assert table["actual_share"].sum() == pytest.approx(1.0)


def test_top_decile_share_hand_case() -> None:
    y = np.arange(1.0, 101.0)
    assert metrics.top_decile_share(y, y) == pytest.approx(sum(range(91, 101)) / 5050)
    assert metrics.top_decile_share(y, -y) == pytest.approx(sum(range(1, 11)) / 5050)
    assert metrics.top_decile_share(y, np.zeros(100)) == pytest.approx(0.1)


def test_top_decile_share_needs_positive_total() -> None:
    with pytest.raises(ValueError, match="y must have a positive total"):
        metrics.top_decile_share(np.zeros(10), np.arange(10.0))


# --- input validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "function",
    [metrics.roc_auc, metrics.pr_auc, metrics.brier, metrics.expected_calibration_error, metrics.alift],
)
def test_binary_metrics_validate_inputs(function: object) -> None:
    assert callable(function)
    with pytest.raises(ValueError, match=r"has 3 values but .* has 2"):
        function([0, 1, 1], [0.1, 0.2])
    with pytest.raises(
        ValueError, match=r"y must contain only 0 and 1; found 1 other value\(s\), first: \[1\]=2.0"
    ):
        function([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"contains 1 non-finite value\(s\).*\[0\]=nan"):
        function([0, 1], [float("nan"), 0.2])
    with pytest.raises(ValueError, match="y is empty"):
        function([], [])
    with pytest.raises(ValueError, match=r"must be one-dimensional; got shape \(1, 2\)"):
        function([[0, 1]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="must contain numbers only"):
        function(["a", "b"], [0.1, 0.2])


@pytest.mark.parametrize(
    "function",
    [metrics.normalized_gini, metrics.spearman, metrics.decile_mape, metrics.top_decile_share],
)
def test_value_metrics_validate_inputs(function: object) -> None:
    assert callable(function)
    with pytest.raises(ValueError, match="y has 12 values but pred has 11"):
        function(np.arange(12.0), np.arange(11.0))
    with pytest.raises(ValueError, match=r"pred contains 1 non-finite value\(s\).*\[3\]=inf"):
        function(np.arange(12.0), np.where(np.arange(12) == 3, np.inf, 1.0))
