"""CDNOW lifetime-value experiment: BG/NBD + Gamma-Gamma against LightGBM on CLV features.

Data: the full CDNOW master file (23,570 customers acquired in Q1 1997, transactions until
1998-06-30). Calibration is 1997-01-01 to 1997-09-30 and the holdout is 1997-10-01 to
1998-06-30 (39 weeks each), the split used throughout the buy-till-you-die literature. Every
model predicts each customer's holdout revenue from calibration data only.

Models:

- ``bgnbd_gg``: BG/NBD for the number of purchases and Gamma-Gamma for the spend per purchase,
  fitted on the calibration RFM summary (weeks).
- ``lgbm_crossfit``: LightGBM (Tweedie objective) on ``features.clv.clv_features`` at the
  1997-10-01 cutoff, predicting holdout revenue, cross-fitted over customers. Each customer's
  prediction comes from a model that never saw that customer. The models do see other
  customers' holdout revenue, so they learn the overall holdout level, which a model deployed
  on 1997-10-01 could not know yet.
- ``lgbm_temporal``: LightGBM trained only on calibration data. Features at 1997-04-01 and the
  label is the revenue from 1997-04-01 to 1997-09-30 (183 days), scaled to 39 weeks. It is
  then applied to the features at 1997-10-01. Nothing after the calibration cutoff is used.
- ``naive_rate``: calibration revenue per week since the first purchase, times 39.

Run from the repository root:
    .venv/bin/python -m experiments.cdnow_ltv --data /work/shared/datasets/cdnow \
        --out experiments/results/cdnow-ltv.md
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.model_selection import KFold

from features.clv import CLV_COLUMNS, clv_features
from leadscore.logs import configure_logging
from training import metrics
from training.baselines import btyd
from training.params import TWEEDIE_DEFAULTS, build_params
from training.rfm import summarize_transactions

logger = logging.getLogger("experiments.cdnow_ltv")

StepResult = TypeVar("StepResult")

TIMEZONE = "Asia/Shanghai"
CUTOFF = "1997-10-01"
HOLDOUT_END = "1998-07-01"
HOLDOUT_WEEKS = 39.0
TEMPORAL_CUTOFF = "1997-04-01"
SEED = 20240601
N_FOLDS = 5
EARLY_STOPPING_FRACTION = 0.2
NUM_BOOST_ROUND = 3000
EARLY_STOPPING_ROUNDS = 100
BOOTSTRAP_RESAMPLES = 200
BASELINE = "bgnbd_gg"

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4}
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}

MODEL_LABELS = {
    "bgnbd_gg": "BG/NBD + Gamma-Gamma",
    "lgbm_crossfit": "LightGBM, cross-fitted over customers",
    "lgbm_temporal": "LightGBM, trained on calibration only",
    "naive_rate": "Naive: calibration revenue rate x 39 weeks",
}


@dataclass
class Timings:
    """Wall-clock seconds per experiment step, in the order the steps ran."""

    steps: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, step: Callable[[], StepResult]) -> StepResult:
        start = time.perf_counter()
        result = step()
        self.steps[name] = time.perf_counter() - start
        logger.info("%s took %.2f s", name, self.steps[name])
        return result


# --- data ---------------------------------------------------------------------------------------


def read_cdnow(path: Path, *, has_header: bool, id_column: int) -> pd.DataFrame:
    """Read a CDNOW transaction file into orders: customer_id, ordered_at (UTC), amount.

    Dates are calendar days in the business timezone. They are stored as that midnight in UTC,
    as the canonical orders table stores timestamps.
    """
    raw = pd.read_csv(path, sep=r"\s+", header=0 if has_header else None, dtype=str)
    dates = pd.to_datetime(raw.iloc[:, id_column + 1], format="%Y%m%d")
    return pd.DataFrame(
        {
            "customer_id": raw.iloc[:, id_column].astype("str"),
            "ordered_at": dates.dt.tz_localize(TIMEZONE).dt.tz_convert("UTC"),
            "amount": raw.iloc[:, id_column + 3].astype("float64"),
        }
    )


def cutoff_timestamp(day: str) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize(TIMEZONE)


def revenue_between(orders: pd.DataFrame, customers: pd.Series, start: str, end: str) -> np.ndarray:
    """Sum each customer's order amounts in [start, end), aligned with ``customers``."""
    in_window = (orders["ordered_at"] >= cutoff_timestamp(start)) & (
        orders["ordered_at"] < cutoff_timestamp(end)
    )
    totals = orders.loc[in_window].groupby("customer_id")["amount"].sum()
    return customers.map(totals).fillna(0.0).to_numpy(dtype=np.float64)


def clv_matrix(orders: pd.DataFrame, customers: pd.Series, cutoff: str) -> pd.DataFrame:
    spine = pd.DataFrame({"customer_id": customers.to_numpy(), "cutoff": cutoff_timestamp(cutoff)})
    return clv_features(orders, spine, timezone=TIMEZONE)[list(CLV_COLUMNS)]


# --- models -------------------------------------------------------------------------------------


def fit_btyd(summary: pd.DataFrame) -> tuple[btyd.BgNbdParams, btyd.GammaGammaParams]:
    bgnbd = btyd.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    gamma_gamma = btyd.fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    return bgnbd, gamma_gamma


def predict_btyd(
    summary: pd.DataFrame, bgnbd: btyd.BgNbdParams, gamma_gamma: btyd.GammaGammaParams
) -> np.ndarray:
    return btyd.customer_lifetime_value(
        bgnbd,
        gamma_gamma,
        summary["frequency"],
        summary["recency"],
        summary["T"],
        summary["monetary_value"],
        horizon=HOLDOUT_WEEKS,
    )


def lightgbm_params() -> dict[str, object]:
    return build_params(TWEEDIE_DEFAULTS, {"learning_rate": 0.03}, seed=SEED, num_threads=2)


def train_lightgbm(features: pd.DataFrame, target: np.ndarray, seed: int) -> lgb.Booster:
    """Train on a random 80 % of rows and early-stop on the other 20 %."""
    rng = np.random.default_rng(seed)
    is_stopping = rng.random(len(features)) < EARLY_STOPPING_FRACTION
    train_set = lgb.Dataset(features.loc[~is_stopping], label=target[~is_stopping], free_raw_data=False)
    stopping_set = lgb.Dataset(features.loc[is_stopping], label=target[is_stopping], reference=train_set)
    return lgb.train(
        lightgbm_params(),
        train_set,
        num_boost_round=NUM_BOOST_ROUND,
        valid_sets=[stopping_set],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )


def cross_fit_lightgbm(features: pd.DataFrame, target: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Predict each customer with a model trained on the other folds; return predictions and rounds."""
    predictions = np.zeros(len(features))
    rounds: list[int] = []
    folds = KFold(n_splits=N_FOLDS, shuffle=True, random_state=SEED)
    for fold, (train_rows, test_rows) in enumerate(folds.split(features)):
        booster = train_lightgbm(
            features.iloc[train_rows].reset_index(drop=True), target[train_rows], SEED + fold
        )
        predictions[test_rows] = booster.predict(
            features.iloc[test_rows], num_iteration=booster.best_iteration
        )
        rounds.append(int(booster.best_iteration))
    return predictions, rounds


def temporal_lightgbm(
    orders: pd.DataFrame, customers: pd.Series, apply_features: pd.DataFrame
) -> tuple[np.ndarray, int, float]:
    """Train on features at TEMPORAL_CUTOFF and revenue up to CUTOFF, then predict from CUTOFF features."""
    train_features = clv_matrix(orders, customers, TEMPORAL_CUTOFF)
    label_days = (pd.Timestamp(CUTOFF) - pd.Timestamp(TEMPORAL_CUTOFF)).days
    scale = HOLDOUT_WEEKS * 7 / label_days
    label = revenue_between(orders, customers, TEMPORAL_CUTOFF, CUTOFF) * scale
    booster = train_lightgbm(train_features, label, SEED)
    predictions = booster.predict(apply_features, num_iteration=booster.best_iteration)
    return np.asarray(predictions, dtype=np.float64), int(booster.best_iteration), scale


def naive_rate(features: pd.DataFrame) -> np.ndarray:
    """Calibration net revenue per week since the first purchase, extended over the holdout."""
    weeks = features["tenure_days"].to_numpy() / 7.0
    return features["total_net_value"].to_numpy() / weeks * HOLDOUT_WEEKS


# --- evaluation ---------------------------------------------------------------------------------


def evaluate(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {
        "normalized_gini": metrics.normalized_gini(actual, predicted),
        "spearman": metrics.spearman(actual, predicted),
        "decile_mape": metrics.decile_mape(actual, predicted),
        "top_decile_share": metrics.top_decile_share(actual, predicted),
        "predicted_total": float(predicted.sum()),
        "actual_total": float(actual.sum()),
    }


def bootstrap_gaps(
    actual: np.ndarray, predictions: dict[str, np.ndarray]
) -> dict[str, dict[str, tuple[float, float]]]:
    """Return 95 % paired-bootstrap intervals of (model - BG/NBD) for Gini and Spearman.

    Customers are resampled with replacement; every model is scored on the same resample.
    """
    rng = np.random.default_rng(SEED)
    baseline = predictions[BASELINE]
    challengers = [name for name in predictions if name != BASELINE]
    gaps: dict[str, dict[str, list[float]]] = {name: {"gini": [], "spearman": []} for name in challengers}
    for _ in range(BOOTSTRAP_RESAMPLES):
        rows = rng.integers(0, actual.size, actual.size)
        sample = actual[rows]
        base_gini = metrics.normalized_gini(sample, baseline[rows])
        base_spearman = metrics.spearman(sample, baseline[rows])
        for name in challengers:
            gaps[name]["gini"].append(metrics.normalized_gini(sample, predictions[name][rows]) - base_gini)
            gaps[name]["spearman"].append(metrics.spearman(sample, predictions[name][rows]) - base_spearman)
    return {
        name: {
            metric: (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))
            for metric, values in by_metric.items()
        }
        for name, by_metric in gaps.items()
    }


def bgnbd_lowest_decile(
    summary: pd.DataFrame, actual: np.ndarray, predictions: dict[str, np.ndarray], bgnbd: btyd.BgNbdParams
) -> dict[str, float]:
    """Describe the repeat buyers in BG/NBD's lowest predicted decile and how LightGBM ranks them."""
    n = actual.size
    order = np.argsort(-predictions[BASELINE], kind="stable")
    lowest = order[(9 * n) // 10 :]
    middle = order[(5 * n) // 10 : (9 * n) // 10]
    frequency = summary["frequency"].to_numpy()
    recency = summary["recency"].to_numpy()
    age = summary["T"].to_numpy()
    repeat = lowest[frequency[lowest] > 0]
    alive = btyd.probability_alive(bgnbd, frequency[repeat], recency[repeat], age[repeat])
    # Rank percentiles: 1.0 is the highest prediction, ties share their mean rank.
    baseline_rank = stats.rankdata(predictions[BASELINE]) / n
    lightgbm_rank = stats.rankdata(predictions["lgbm_temporal"]) / n
    return {
        "customers": float(lowest.size),
        "repeat_customers": float(repeat.size),
        "repeat_median_frequency": float(np.median(frequency[repeat])),
        "repeat_median_silence_weeks": float(np.median(age[repeat] - recency[repeat])),
        "repeat_median_alive": float(np.median(alive)),
        "repeat_mean_predicted": float(predictions[BASELINE][repeat].mean()),
        "repeat_mean_revenue": float(actual[repeat].mean()),
        "middle_deciles_mean_revenue": float(actual[middle].mean()),
        "repeat_median_rank_baseline": float(np.median(baseline_rank[repeat])),
        "repeat_median_rank_lightgbm": float(np.median(lightgbm_rank[repeat])),
    }


def check_feature_agreement(summary: pd.DataFrame, features: pd.DataFrame) -> float:
    """Return the largest gap between the RFM summary (weeks) and the CLV features (days / 7)."""
    gaps = [
        np.abs(summary["frequency"].to_numpy() - features["frequency"].to_numpy()),
        np.abs(summary["recency"].to_numpy() - features["recency"].to_numpy() / 7.0),
        np.abs(summary["T"].to_numpy() - features["T"].to_numpy() / 7.0),
        np.abs(summary["monetary_value"].to_numpy() - features["monetary_value"].to_numpy()),
    ]
    return float(max(gap.max() for gap in gaps))


ParameterRow = tuple[str, str, float | None, float, float]


def sample_parameter_rows(data_dir: Path) -> list[ParameterRow]:
    """Fit both models on the CDNOW sample from the published summary and from our own RFM."""
    published_summary = pd.read_csv(data_dir / "cdnow_customers_summary_with_transactions.csv")
    from_csv = btyd.fit_bgnbd(published_summary["x"], published_summary["t_x"], published_summary["T"])
    gg_csv = btyd.fit_gamma_gamma(published_summary["x"], published_summary["zbar"])

    sample_orders = read_cdnow(data_dir / "CDNOW_sample.txt", has_header=False, id_column=1)
    own = summarize_transactions(sample_orders, cutoff=CUTOFF, timezone=TIMEZONE).customers
    from_own, gg_own = fit_btyd(own)

    rows: list[ParameterRow] = []
    for name, published in PUBLISHED_BGNBD.items():
        rows.append(("BG/NBD", name, published, getattr(from_csv, name), getattr(from_own, name)))
    for name, published in PUBLISHED_GAMMA_GAMMA.items():
        rows.append(("Gamma-Gamma", name, published, getattr(gg_csv, name), getattr(gg_own, name)))
    return rows


@dataclass
class ExperimentResult:
    """Everything the report shows."""

    context: dict[str, Any]
    sample_rows: list[ParameterRow]
    bgnbd: btyd.BgNbdParams
    gamma_gamma: btyd.GammaGammaParams
    actual: np.ndarray
    predictions: dict[str, np.ndarray]
    scores: dict[str, dict[str, float]]
    intervals: dict[str, dict[str, tuple[float, float]]]
    lowest_decile: dict[str, float]
    timings: Timings


# --- report -------------------------------------------------------------------------------------


def format_number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def setup_section(context: dict[str, Any]) -> list[str]:
    return [
        "## Setup",
        "",
        f"- Data: `CDNOW_master.txt`, {context['transactions']:,} transaction rows, "
        f"{context['customers']:,} customers (Q1 1997 cohort).",
        "- Calibration 1997-01-01 to 1997-09-30, holdout 1997-10-01 to 1998-06-30 (39 weeks each).",
        "  Transactions are aggregated per customer and day, as in the BTYD literature.",
        "- Target: each customer's holdout revenue (sum of `dollar_value`). It is zero for "
        f"{context['zero_holdout_share']:.1%} of customers.",
        "- LightGBM features: the 12 columns of `features.clv.clv_features` "
        f"({', '.join(CLV_COLUMNS)}). Objective Tweedie (`training.params.TWEEDIE_DEFAULTS`, "
        "learning rate 0.03), early stopping on a random 20 % of the training customers.",
        f"  - Cross-fitted: {N_FOLDS} folds over customers, best rounds per fold "
        f"{context['crossfit_rounds']}. Each prediction comes from a model that never saw the "
        "customer, but the models learn from other customers' holdout revenue.",
        f"  - Calibration only: features at {TEMPORAL_CUTOFF}, label = revenue {TEMPORAL_CUTOFF} to "
        f"1997-09-30 scaled by {context['temporal_scale']:.3f} to 39 weeks, "
        f"{context['temporal_rounds']} rounds, applied to the features at {CUTOFF}. No data after the "
        "cutoff is used. At training time customers are 1 to 13 weeks old; at prediction time they "
        "are 27 to 39 weeks old.",
        f"- The RFM summary of `training.rfm` and the CLV features agree to {context['feature_gap']:.1e} "
        "(frequency, recency and T in weeks, monetary value).",
    ]


def parameter_section(result: ExperimentResult) -> list[str]:
    lines = [
        "## Parameters",
        "",
        "CDNOW 1/10 sample (2,357 customers, calibration 1997-01-01 to 1997-09-30, weeks). Published",
        "values: BG/NBD from Fader, Hardie and Lee (2005), *Counting Your Customers the Easy Way*,",
        "Marketing Science 24(2); Gamma-Gamma from Fader, Hardie and Lee (2005), *RFM and CLV*,",
        "Journal of Marketing Research 42(4). Gamma-Gamma is fitted on the 946 repeat customers.",
        "",
        "| model | parameter | published | ours, published summary file | ours, RFM from CDNOW_sample.txt |",
        "|---|---|---:|---:|---:|",
    ]
    for model, name, published, from_csv, from_own in result.sample_rows:
        # Published values keep the precision they were printed with.
        published_text = "n/a" if published is None else f"{published:g}"
        lines.append(
            f"| {model} | {name} | {published_text} | {format_number(from_csv)} | {format_number(from_own)} |"
        )
    gamma_gamma = result.gamma_gamma
    lines += [
        "",
        "Full CDNOW master (23,570 customers, same calibration window). No published fit of the",
        "full file was at hand, so only our values are shown.",
        "",
        "| model | parameter | ours |",
        "|---|---|---:|",
    ]
    for name, value in result.bgnbd.to_dict().items():
        lines.append(f"| BG/NBD | {name} | {format_number(value)} |")
    for name in ("p", "q", "v", "log_likelihood"):
        lines.append(f"| Gamma-Gamma | {name} | {format_number(getattr(gamma_gamma, name))} |")
    lines.append(
        f"| Gamma-Gamma | customers used / left out | {gamma_gamma.n_customers:,} / "
        f"{gamma_gamma.n_excluded:,} |"
    )
    return lines


def metric_section(result: ExperimentResult) -> list[str]:
    lines = [
        "## Holdout revenue, 1997-10-01 to 1998-06-30",
        "",
        f"Metrics from `training.metrics` over all {result.actual.size:,} customers. Decile MAPE compares",
        "mean predicted and mean actual revenue within each predicted decile. Top-decile share is the",
        "share of actual holdout revenue held by the 10 % of customers with the highest prediction.",
        "",
        "| model | normalized Gini | Spearman | decile MAPE | top-decile share "
        "| predicted total | actual total |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, score in result.scores.items():
        lines.append(
            f"| {MODEL_LABELS[name]} | {score['normalized_gini']:.4f} | {score['spearman']:.4f} | "
            f"{score['decile_mape']:.3f} | {score['top_decile_share']:.4f} | "
            f"{score['predicted_total']:,.0f} | {score['actual_total']:,.0f} |"
        )
    lines += [
        "",
        f"Gap to BG/NBD + Gamma-Gamma, 95 % paired bootstrap interval ({BOOTSTRAP_RESAMPLES} resamples "
        "of customers):",
        "",
        "| model | normalized Gini gap | Spearman gap |",
        "|---|---:|---:|",
    ]
    for name, interval in result.intervals.items():
        gini_low, gini_high = interval["gini"]
        spearman_low, spearman_high = interval["spearman"]
        lines.append(
            f"| {MODEL_LABELS[name]} | {gini_low:+.4f} to {gini_high:+.4f} | "
            f"{spearman_low:+.4f} to {spearman_high:+.4f} |"
        )
    return lines


def verdict_lines(result: ExperimentResult) -> list[str]:
    """State, per metric, whether each LightGBM variant beats BG/NBD + Gamma-Gamma."""
    baseline = result.scores[BASELINE]
    lines = []
    for name in ("lgbm_crossfit", "lgbm_temporal"):
        score = result.scores[name]
        parts = []
        for metric, higher_is_better in (
            ("normalized_gini", True),
            ("spearman", True),
            ("decile_mape", False),
            ("top_decile_share", True),
        ):
            gap = score[metric] - baseline[metric]
            better = gap > 0 if higher_is_better else gap < 0
            parts.append(
                f"{metric} {'better' if better else 'worse'} ({score[metric]:.4f} vs {baseline[metric]:.4f})"
            )
        lines.append(f"- {MODEL_LABELS[name]}: " + "; ".join(parts) + ".")
    return lines


def compare(value: float, reference: float, higher_is_better: bool = True) -> str:
    better = value > reference if higher_is_better else value < reference
    return "better" if better else "worse"


def discussion_section(result: ExperimentResult) -> list[str]:
    scores = result.scores
    lowest = result.lowest_decile

    def bias(name: str) -> str:
        ratio = scores[name]["predicted_total"] / scores[name]["actual_total"] - 1
        return f"{abs(ratio):.1%} {'above' if ratio > 0 else 'below'}"

    temporal, baseline, naive = scores["lgbm_temporal"], scores[BASELINE], scores["naive_rate"]
    lines = ["## LightGBM against the BG/NBD baseline", ""]
    lines += verdict_lines(result)
    lines += [
        "",
        "Reading the numbers:",
        "",
        f"- Ranking. {lowest['repeat_customers']:,.0f} of the {lowest['customers']:,.0f} customers in "
        "BG/NBD's lowest predicted decile are repeat buyers (median frequency "
        f"{lowest['repeat_median_frequency']:.0f}) whose last purchase was a median "
        f"{lowest['repeat_median_silence_weeks']:.1f} weeks before the cutoff.",
        f"  BG/NBD gives them a median P(alive) of {lowest['repeat_median_alive']:.2f}: in this model a "
        "customer drops out only right after a purchase, so a long silence after a repeat purchase "
        "reads as drop-out.",
        f"  It predicts {lowest['repeat_mean_predicted']:.2f} dollars each for the holdout. They spent "
        f"{lowest['repeat_mean_revenue']:.2f}, more than the {lowest['middle_deciles_mean_revenue']:.2f} "
        "of the customers BG/NBD ranks in deciles 6 to 9.",
        "  The calibration-only LightGBM places them at a median rank percentile of "
        f"{lowest['repeat_median_rank_lightgbm']:.2f}, against {lowest['repeat_median_rank_baseline']:.2f} "
        "under BG/NBD (1.00 is the top).",
        f"- Level. BG/NBD + Gamma-Gamma predicts a holdout total {bias(BASELINE)} the actual one, and "
        f"the calibration-only LightGBM {bias('lgbm_temporal')}. LightGBM learns the revenue rate of "
        f"April to September 1997 ({result.context['label_weekly_revenue']:,.0f} dollars a week for the "
        "cohort), when the cohort was young, and carries it into the holdout, where the cohort spent "
        f"{result.context['holdout_weekly_revenue']:,.0f} dollars a week.",
        f"  Its decile MAPE is {compare(temporal['decile_mape'], baseline['decile_mape'], False)} than "
        f"BG/NBD's ({temporal['decile_mape']:.3f} vs {baseline['decile_mape']:.3f}).",
        f"- The cross-fitted LightGBM predicts a total {bias('lgbm_crossfit')} the actual one, with "
        f"decile MAPE {scores['lgbm_crossfit']['decile_mape']:.3f}, but it learned the holdout level "
        "from other customers' holdout revenue. A model deployed at the cutoff has no such labels, "
        "so read its level metrics as an optimistic bound.",
        f"- The naive revenue rate is {compare(naive['normalized_gini'], baseline['normalized_gini'])} than "
        f"BG/NBD on Gini and {compare(naive['spearman'], baseline['spearman'])} on Spearman. Its total is "
        f"{bias('naive_rate')} the actual one because it counts the first purchase in the rate and "
        "assumes that no customer drops out.",
    ]
    return lines


def decile_section(result: ExperimentResult) -> list[str]:
    predictions = result.predictions
    lines = ["## Mean revenue per predicted decile (predicted / actual, dollars)", ""]
    header = "| decile | " + " | ".join(MODEL_LABELS[name] for name in predictions) + " |"
    lines += [header, "|---|" + "---:|" * len(predictions)]
    tables = {name: metrics.value_decile_table(result.actual, values) for name, values in predictions.items()}
    for decile in range(metrics.N_DECILES):
        cells = [
            f"{table['mean_predicted'].iloc[decile]:.2f} / {table['mean_actual'].iloc[decile]:.2f}"
            for table in tables.values()
        ]
        lines.append(f"| {decile + 1} | " + " | ".join(cells) + " |")
    return lines


def runtime_section(result: ExperimentResult) -> list[str]:
    steps = result.timings.steps
    lines = [
        "## Runtime",
        "",
        f"Machine: {result.context['machine']}. LightGBM uses 2 threads. One-minute load average "
        f"at the start: {result.context['load_average']:.1f}; other processes on the machine slow the "
        "steps down when it is above the CPU count.",
        "",
        "| step | seconds |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in steps.items()]
    lines.append(f"| total | {sum(steps.values()):.2f} |")
    return lines


def render_report(result: ExperimentResult) -> str:
    lines = [
        "# CDNOW lifetime value: BG/NBD + Gamma-Gamma against LightGBM",
        "",
        "Generated by `experiments/cdnow_ltv.py`; do not edit by hand. Reproduce from the repository root:",
        "",
        "```",
        ".venv/bin/python -m experiments.cdnow_ltv --data /work/shared/datasets/cdnow \\",
        "    --out experiments/results/cdnow-ltv.md",
        "```",
        "",
    ]
    for section in (
        setup_section(result.context),
        parameter_section(result),
        metric_section(result),
        discussion_section(result),
        decile_section(result),
        runtime_section(result),
    ):
        lines += [*section, ""]
    return "\n".join(lines)


# --- entry point --------------------------------------------------------------------------------


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = f"Python {platform.python_version()}, LightGBM {lgb.__version__}"
    return f"{cpu}, {os.cpu_count()} logical CPUs, {versions}"


def run(data_dir: Path) -> ExperimentResult:
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    timings = Timings()
    master = data_dir / "CDNOW_master.txt"
    orders = timings.run("read CDNOW_master", lambda: read_cdnow(master, has_header=True, id_column=0))
    rfm = timings.run(
        "RFM summary",
        lambda: summarize_transactions(orders, cutoff=CUTOFF, holdout_end=HOLDOUT_END, timezone=TIMEZONE),
    )
    summary = rfm.customers
    customers = summary["customer_id"]
    actual = summary["revenue_holdout"].to_numpy(dtype=np.float64)

    sample_rows = timings.run("sample fits", lambda: sample_parameter_rows(data_dir))
    bgnbd, gamma_gamma = timings.run("BG/NBD + Gamma-Gamma fit", lambda: fit_btyd(summary))
    predictions = {BASELINE: predict_btyd(summary, bgnbd, gamma_gamma)}

    features = timings.run("CLV features at cutoff", lambda: clv_matrix(orders, customers, CUTOFF))
    predictions["lgbm_crossfit"], crossfit_rounds = timings.run(
        "LightGBM cross-fit", lambda: cross_fit_lightgbm(features, actual)
    )
    predictions["lgbm_temporal"], temporal_rounds, temporal_scale = timings.run(
        "LightGBM calibration-only", lambda: temporal_lightgbm(orders, customers, features)
    )
    predictions["naive_rate"] = naive_rate(features)

    scores = {name: evaluate(actual, values) for name, values in predictions.items()}
    intervals = timings.run("bootstrap intervals", lambda: bootstrap_gaps(actual, predictions))
    context: dict[str, Any] = {
        "transactions": len(orders),
        "customers": len(summary),
        "zero_holdout_share": float(np.mean(actual == 0)),
        "label_weekly_revenue": float(
            revenue_between(orders, customers, TEMPORAL_CUTOFF, CUTOFF).sum()
            / ((pd.Timestamp(CUTOFF) - pd.Timestamp(TEMPORAL_CUTOFF)).days / 7)
        ),
        "holdout_weekly_revenue": float(actual.sum() / HOLDOUT_WEEKS),
        "crossfit_rounds": crossfit_rounds,
        "temporal_rounds": temporal_rounds,
        "temporal_scale": temporal_scale,
        "feature_gap": check_feature_agreement(summary, features),
        "machine": machine_description(),
        "load_average": load_average,
    }
    return ExperimentResult(
        context=context,
        sample_rows=sample_rows,
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        actual=actual,
        predictions=predictions,
        scores=scores,
        intervals=intervals,
        lowest_decile=bgnbd_lowest_decile(summary, actual, predictions, bgnbd),
        timings=timings,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with the CDNOW files and summaries")
    parser.add_argument("--out", type=Path, required=True, help="Markdown report to write")
    arguments = parser.parse_args()
    configure_logging("INFO")
    report = render_report(run(arguments.data))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(report, encoding="utf-8")
    logger.info("wrote %s", arguments.out)


if __name__ == "__main__":
    main()
