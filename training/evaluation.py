"""Score the model and the baselines (logistic, rules, BG/NBD + Gamma-Gamma) on a run's test folds."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from leadscore.errors import InsufficientDataError
from training import metrics
from training.baselines import btyd
from training.baselines.logistic import fit_logistic
from training.reasons import shap_contributions

if TYPE_CHECKING:
    from training.train import FittedScorer, TrainOptions

logger = logging.getLogger(__name__)

_MAX_SHAP_ROWS = 5_000
_DAYS_PER_WEEK = 7.0


def btyd_baseline(
    train_rows: pd.DataFrame, test_rows: pd.DataFrame, horizon_days: int
) -> tuple[np.ndarray | None, str]:
    """Predict LTV with BG/NBD + Gamma-Gamma fitted on the purchase history before each cutoff.

    Uses the customer_frequency, customer_recency, customer_T and customer_monetary_value
    features (days, converted to weeks). A lead without purchase history gets the value of a
    newly acquired customer: its first purchase plus the expected repeat purchases, each at the
    population mean spend. Returns (None, reason) when the training rows cannot fit the models,
    for example without repeat buyers.
    """
    columns = ["customer_frequency", "customer_recency", "customer_T", "customer_monetary_value"]
    missing = [column for column in columns if column not in train_rows.columns]
    if missing:
        return None, f"skipped: the customer features {missing} are not in the model"
    history = train_rows.dropna(subset=["customer_T"])
    history = history.loc[history["customer_T"] > 0]
    try:
        prediction, substituted = _btyd_predict(history, test_rows, horizon_days / _DAYS_PER_WEEK)
    except (InsufficientDataError, ValueError) as error:
        logger.warning("BG/NBD + Gamma-Gamma baseline skipped: %s", error)
        return None, f"skipped: {error}"
    note = f"fitted on {len(history)} training rows with purchase history"
    if substituted:
        note += (
            f"; Gamma-Gamma leaves the spend per purchase undefined (q <= 1 or p x + q - 1 <= 0) for "
            f"{substituted} test rows, which use the observed mean spend instead"
        )
        logger.info("BG/NBD + Gamma-Gamma baseline: %s", note)
    return prediction, note


def _btyd_predict(history: pd.DataFrame, test_rows: pd.DataFrame, weeks: float) -> tuple[np.ndarray, int]:
    """Fit BG/NBD and Gamma-Gamma on ``history`` and predict each test row's value over ``weeks``.

    Gamma-Gamma's expected spend per purchase is finite only where p x + q - 1 > 0, so with a
    heavy-tailed fit (q <= 1) it is undefined for customers with few repeat purchases and for
    new customers. Those rows use the observed mean spend instead: their own when they have
    repeat purchases, else the training customers' mean. Returns the predictions and how many
    test rows used that substitute.
    """
    bgnbd = btyd.fit_bgnbd(
        history["customer_frequency"].to_numpy(dtype=np.float64),
        history["customer_recency"].to_numpy(dtype=np.float64) / _DAYS_PER_WEEK,
        history["customer_T"].to_numpy(dtype=np.float64) / _DAYS_PER_WEEK,
        penalizer=0.001,
    )
    gamma_gamma = btyd.fit_gamma_gamma(
        history["customer_frequency"].to_numpy(dtype=np.float64),
        history["customer_monetary_value"].to_numpy(dtype=np.float64),
        penalizer=0.001,
    )
    has_history = test_rows["customer_T"].fillna(0).to_numpy(dtype=np.float64) > 0
    frequency = test_rows["customer_frequency"].fillna(0).to_numpy(dtype=np.float64)
    monetary = test_rows["customer_monetary_value"].fillna(0).to_numpy(dtype=np.float64)
    recency = test_rows["customer_recency"].fillna(0).to_numpy(dtype=np.float64) / _DAYS_PER_WEEK
    age = test_rows["customer_T"].fillna(0).to_numpy(dtype=np.float64) / _DAYS_PER_WEEK
    observed_spend = _observed_mean_spend(history)
    defined = gamma_gamma.p * frequency + gamma_gamma.q - 1.0 > 0

    repeat_purchases = float(btyd.expected_purchases_new(bgnbd, np.array([weeks]))[0])
    new_customer_defined = gamma_gamma.q > 1.0
    mean_spend = (
        float(btyd.conditional_expected_average_profit(gamma_gamma, np.array([0.0]), np.array([0.0]))[0])
        if new_customer_defined
        else observed_spend
    )
    prediction = np.full(len(test_rows), (1.0 + repeat_purchases) * mean_spend, dtype=np.float64)

    modelled = has_history & defined
    if modelled.any():
        prediction[modelled] = btyd.customer_lifetime_value(
            bgnbd,
            gamma_gamma,
            frequency[modelled],
            recency[modelled],
            age[modelled],
            monetary[modelled],
            horizon=weeks,
        )
    substitute = has_history & ~defined
    if substitute.any():
        own_spend = np.where((frequency > 0) & (monetary > 0), monetary, observed_spend)[substitute]
        purchases = btyd.expected_purchases(
            bgnbd, weeks, frequency[substitute], recency[substitute], age[substitute]
        )
        prediction[substitute] = purchases * own_spend
    substituted = int(substitute.sum()) + (0 if new_customer_defined else int((~has_history).sum()))
    return prediction, substituted


def _observed_mean_spend(history: pd.DataFrame) -> float:
    """Return the mean spend per repeat purchase of the training customers that have repeat purchases."""
    repeat = history.loc[history["customer_frequency"] > 0, "customer_monetary_value"].dropna()
    repeat = repeat.loc[repeat > 0]
    return float(repeat.mean()) if len(repeat) else 0.0


def conversion_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Compute the conversion metrics the card and the gate report, for a model or a baseline."""
    return {
        "conversion_auc": metrics.roc_auc(y, p),
        "conversion_pr_auc": metrics.pr_auc(y, p),
        "conversion_ece": metrics.expected_calibration_error(y, p),
        "conversion_brier": metrics.brier(y, p),
        "conversion_alift": metrics.alift(y, p),
    }


def ltv_metrics(value: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Compute ranking metrics of an LTV prediction on converted leads."""
    if value.size < 2 or np.ptp(value) == 0:
        return {}
    result = {
        "ltv_gini": metrics.normalized_gini(value, prediction),
        "ltv_top_decile_share": metrics.top_decile_share(value, prediction),
    }
    if np.ptp(prediction) > 0:
        result["ltv_spearman"] = metrics.spearman(value, prediction)
    return result


def evaluate_test_folds(
    options: TrainOptions, fitted: FittedScorer, holdout: pd.DataFrame, holdout_scores: pd.DataFrame
) -> tuple[dict[str, dict[str, float]], dict[str, Any], dict[str, str]]:
    """Score the model and the baselines on the test folds; return metrics, plot inputs and notes.

    The notes record, per baseline, how it was fitted or why it was skipped.
    The model's numbers come from ``holdout_scores`` (the one score path). The rule and
    logistic baselines score the conversion test fold and BG/NBD + Gamma-Gamma the converted
    leads of the LTV test fold.
    """
    parts, folds, ltv, bundle = fitted.parts, fitted.folds, fitted.ltv, fitted.bundle
    test = parts["test"].reset_index(drop=True)
    y = folds["test"].y
    scored = holdout_scores.reset_index(drop=True)
    keys = pd.MultiIndex.from_frame(holdout[["lead_id", "cutoff"]])
    position = keys.get_indexer(pd.MultiIndex.from_frame(test[["lead_id", "cutoff"]]))
    p_model = scored["p_convert"].to_numpy(dtype=np.float64)[position]

    logistic = fit_logistic(parts["train"], fitted.kept, seed=options.seed)
    p_logistic = logistic.predict_proba(test)
    p_rules = fitted.rule_model.predict_proba(test)
    notes = {"btyd": "skipped: no converted lead in the LTV test fold"}
    results = {
        "model": conversion_metrics(y, p_model),
        "logistic": conversion_metrics(y, p_logistic),
        "rules": conversion_metrics(y, p_rules),
    }

    buyers = ltv.test_rows.loc[ltv.test_rows["converted"] == 1].reset_index(drop=True)
    if len(buyers):
        value = buyers["value"].to_numpy(dtype=np.float64)
        buyer_position = keys.get_indexer(pd.MultiIndex.from_frame(buyers[["lead_id", "cutoff"]]))
        results["model"].update(ltv_metrics(value, scored["ltv"].to_numpy(dtype=np.float64)[buyer_position]))
        btyd_prediction, notes["btyd"] = btyd_baseline(
            ltv.train_rows, buyers, options.feature_config.ltv_horizon_days
        )
        if btyd_prediction is not None:
            results["btyd"] = ltv_metrics(value, btyd_prediction)

    raw = bundle.conversion.predict_raw(folds["test"].matrix)
    sample = np.arange(len(test))
    if sample.size > _MAX_SHAP_ROWS:
        sample = np.sort(np.random.default_rng(options.seed).choice(sample, _MAX_SHAP_ROWS, replace=False))
    matrix = folds["test"].matrix.iloc[sample].reset_index(drop=True)

    plot_inputs: dict[str, Any] = {
        "y": y,
        "scores": {"model": p_model, "logistic": p_logistic, "rules": p_rules},
        "uncalibrated": raw,
        "feature_names": list(folds["test"].matrix.columns),
        "importance_gain": bundle.conversion.booster.feature_importance("gain"),
        "contributions": shap_contributions(bundle.conversion.booster, matrix),
        "matrix": matrix,
    }
    return results, plot_inputs, notes
