"""Cold start: how much history is enough, and how training changes when there is little.

Three levels, from the training fold's counts of leads and conversions:

* ``refuse`` below 200 leads or 20 conversions (or 20 non-converted leads). With 20 positive
  labels a 10-bin calibration check contains about two positives per bin, so neither the model
  nor its calibration can be checked. Training raises InsufficientDataError.
* ``insufficient_data`` below 2,000 leads or 200 conversions. Ten events per feature is the
  common floor for a stable logistic model, and the conversion model has a few dozen features,
  so under 200 conversions its estimates are noisy. Training still produces a model, with
  stronger regularization, Platt calibration (two parameters instead of a step function) and a
  blend with the rule-score probability, and every score carries the ``insufficient_data`` flag.
* ``ok`` otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from leadscore.errors import DataValidationError, InsufficientDataError
from leadscore.i18n import Locale, register_messages, translate

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
SufficiencyLevel = Literal["ok", "insufficient_data", "refuse"]

MIN_LEADS = 200
MIN_CONVERSIONS = 20
OK_LEADS = 2_000
OK_CONVERSIONS = 200
# The rule-score prior counts as this many conversions' worth of evidence in the blend.
PRIOR_PSEUDO_CONVERSIONS = 30.0

COLD_START_MAX_ROUNDS = 300
COLD_START_EARLY_STOPPING_ROUNDS = 30

_MESSAGES: dict[str, dict[str, str]] = {
    "coldstart.leads_below_minimum": {
        "en": "{found} leads in the training data; at least {required} are needed to train a model",
        "zh-CN": "训练数据中只有 {found} 条线索，训练模型至少需要 {required} 条",
    },
    "coldstart.conversions_below_minimum": {
        "en": "{found} converted leads in the training data; at least {required} are needed to train a model",
        "zh-CN": "训练数据中只有 {found} 条成交线索，训练模型至少需要 {required} 条",
    },
    "coldstart.non_conversions_below_minimum": {
        "en": "{found} non-converted leads in the training data; at least {required} are needed",
        "zh-CN": "训练数据中只有 {found} 条未成交线索，至少需要 {required} 条",
    },
    "coldstart.leads_below_ok": {
        "en": "only {found} leads (fewer than {required}): scores are blended with the rule score "
        "and marked insufficient_data",
        "zh-CN": "线索只有 {found} 条（少于 {required} 条）：评分已与规则评分加权融合，并标记为数据不足",
    },
    "coldstart.conversions_below_ok": {
        "en": "only {found} converted leads (fewer than {required}): scores are blended with the rule "
        "score and marked insufficient_data",
        "zh-CN": "成交线索只有 {found} 条（少于 {required} 条）：评分已与规则评分加权融合，并标记为数据不足",
    },
}


def _register_messages_once() -> None:
    register_messages(_MESSAGES)


@dataclass(frozen=True)
class SufficiencyReason:
    """One count that is below a threshold: the message key, the count found and the count required."""

    code: str
    found: int
    required: int

    def text(self, locale: Locale = "en") -> str:
        """Return the reason as a sentence in ``locale``."""
        _register_messages_once()
        return translate(self.code, locale, found=self.found, required=self.required)


@dataclass(frozen=True)
class DataSufficiency:
    """The cold-start level of a training set with the counts it was judged on."""

    level: SufficiencyLevel
    reasons: tuple[SufficiencyReason, ...]
    n_rows: int
    n_positive: int
    n_leads: int

    @property
    def insufficient_data(self) -> bool:
        """Whether scores from a model trained on this data carry the ``insufficient_data`` flag."""
        return self.level != "ok"

    def reason_texts(self, locale: Locale = "en") -> list[str]:
        """Return every reason as a sentence in ``locale``."""
        return [reason.text(locale) for reason in self.reasons]

    def raise_if_refused(self) -> None:
        """Raise InsufficientDataError naming the counts found and needed when the level is ``refuse``."""
        if self.level != "refuse":
            return
        details = "; ".join(self.reason_texts("en"))
        raise InsufficientDataError(
            f"not enough history to train a conversion model: {details}. Import a longer CRM history "
            f"(at least {MIN_LEADS} leads with {MIN_CONVERSIONS} conversions), or score leads with the "
            "rule score until then"
        )

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> DataSufficiency:
        """Rebuild an assessment from ``to_dict`` output."""
        level = payload["level"]
        if level not in ("ok", "insufficient_data", "refuse"):
            raise DataValidationError(f"data sufficiency level {level!r} is invalid")
        reasons = tuple(
            SufficiencyReason(str(r["code"]), int(r["found"]), int(r["required"])) for r in payload["reasons"]
        )
        return cls(
            level, reasons, int(payload["n_rows"]), int(payload["n_positive"]), int(payload["n_leads"])
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the assessment as JSON-ready data for the model card."""
        return {
            "level": self.level,
            "insufficient_data": self.insufficient_data,
            "n_rows": self.n_rows,
            "n_positive": self.n_positive,
            "n_leads": self.n_leads,
            "reasons": [{"code": r.code, "found": r.found, "required": r.required} for r in self.reasons],
        }


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise DataValidationError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def assess(n_rows: int, n_positive: int, n_leads: int) -> DataSufficiency:
    """Judge whether a training set is large enough: ``ok``, ``insufficient_data`` or ``refuse``.

    ``n_rows`` counts training rows (snapshots), ``n_leads`` distinct leads and ``n_positive``
    converted leads. When the caller has only row counts, passing positive rows for
    ``n_positive`` overstates the evidence, since one lead can have several positive snapshots.
    """
    n_rows = _check_count("n_rows", n_rows)
    n_positive = _check_count("n_positive", n_positive)
    n_leads = _check_count("n_leads", n_leads)
    if n_leads > n_rows:
        raise DataValidationError(f"n_leads ({n_leads}) cannot exceed n_rows ({n_rows}); each lead has a row")
    if n_positive > n_leads:
        raise DataValidationError(f"n_positive ({n_positive}) cannot exceed n_leads ({n_leads})")

    n_negative = n_leads - n_positive
    refusals = [
        SufficiencyReason("coldstart.leads_below_minimum", n_leads, MIN_LEADS)
        if n_leads < MIN_LEADS
        else None,
        SufficiencyReason("coldstart.conversions_below_minimum", n_positive, MIN_CONVERSIONS)
        if n_positive < MIN_CONVERSIONS
        else None,
        SufficiencyReason("coldstart.non_conversions_below_minimum", n_negative, MIN_CONVERSIONS)
        if n_negative < MIN_CONVERSIONS
        else None,
    ]
    refused = tuple(reason for reason in refusals if reason is not None)
    if refused:
        result = DataSufficiency("refuse", refused, n_rows, n_positive, n_leads)
    else:
        warnings = [
            SufficiencyReason("coldstart.leads_below_ok", n_leads, OK_LEADS) if n_leads < OK_LEADS else None,
            SufficiencyReason("coldstart.conversions_below_ok", n_positive, OK_CONVERSIONS)
            if n_positive < OK_CONVERSIONS
            else None,
        ]
        reasons = tuple(reason for reason in warnings if reason is not None)
        result = DataSufficiency(
            "insufficient_data" if reasons else "ok", reasons, n_rows, n_positive, n_leads
        )
    logger.info(
        "data sufficiency %s: %d rows, %d leads, %d converted", result.level, n_rows, n_leads, n_positive
    )
    return result


@dataclass(frozen=True)
class ColdStartPlan:
    """Training settings for a data-sufficiency level.

    ``params`` are LightGBM overrides, ``prior_weight`` is the weight of the rule-score
    probability in the final blend (0 for ``ok``) and ``calibration_method`` the calibrator to fit.
    """

    params: dict[str, Any]
    num_boost_round: int
    early_stopping_rounds: int
    prior_weight: float
    calibration_method: Literal["auto", "isotonic", "platt"]


def prior_weight(sufficiency: DataSufficiency) -> float:
    """Return the rule-score weight: 30 / (conversions + 30) with too little data, else 0.

    The prior counts as 30 conversions' worth of evidence, so it dominates at 20 conversions
    (weight 0.6) and fades to 0.13 just below the ``ok`` threshold of 200. At ``ok`` the model's
    probability is used without a blend.
    """
    if not sufficiency.insufficient_data:
        return 0.0
    return PRIOR_PSEUDO_CONVERSIONS / (sufficiency.n_positive + PRIOR_PSEUDO_CONVERSIONS)


def plan(
    sufficiency: DataSufficiency,
    params: Mapping[str, Any],
    *,
    num_boost_round: int,
    early_stopping_rounds: int,
) -> ColdStartPlan:
    """Return the training settings for ``sufficiency``, tightening ``params`` when data is short.

    For ``insufficient_data``: at most 7 leaves and depth 3, at least 1 row in 25 per leaf,
    an L2 penalty of at least 10 on leaves and on categorical splits, at most 300 rounds and
    Platt calibration. Raises InsufficientDataError for ``refuse``.
    """
    sufficiency.raise_if_refused()
    if not sufficiency.insufficient_data:
        return ColdStartPlan(dict(params), num_boost_round, early_stopping_rounds, 0.0, "auto")

    n_rows = sufficiency.n_rows
    tightened = dict(params)
    tightened["num_leaves"] = min(int(tightened.get("num_leaves", 31)), 7)
    tightened["max_depth"] = 3
    tightened["min_data_in_leaf"] = max(int(tightened.get("min_data_in_leaf", 20)), 10, n_rows // 25)
    tightened["min_data_per_group"] = max(int(tightened.get("min_data_per_group", 20)), 10, n_rows // 50)
    tightened["lambda_l2"] = max(float(tightened.get("lambda_l2", 0.0)), 10.0)
    tightened["cat_l2"] = max(float(tightened.get("cat_l2", 10.0)), 10.0)
    tightened["feature_fraction"] = min(float(tightened.get("feature_fraction", 1.0)), 0.8)
    tightened["learning_rate"] = min(float(tightened.get("learning_rate", 0.05)), 0.05)
    logger.info("cold start: tightened LightGBM parameters for %d rows: %s", n_rows, tightened)
    return ColdStartPlan(
        params=tightened,
        num_boost_round=min(num_boost_round, COLD_START_MAX_ROUNDS),
        early_stopping_rounds=min(early_stopping_rounds, COLD_START_EARLY_STOPPING_ROUNDS),
        prior_weight=prior_weight(sufficiency),
        calibration_method="platt",
    )


def blend_with_prior(p_model: npt.ArrayLike, p_prior: npt.ArrayLike, weight: float) -> FloatArray:
    """Return ``(1 - weight) * p_model + weight * p_prior``.

    A mix of two calibrated probabilities stays between them, so the blend pulls the model's
    extreme probabilities towards the rule-score probability rather than past it.
    """
    if not 0.0 <= weight <= 1.0:
        raise DataValidationError(f"prior weight must be in [0, 1], got {weight!r}")
    model = np.asarray(p_model, dtype=np.float64)
    prior = np.asarray(p_prior, dtype=np.float64)
    if model.shape != prior.shape:
        raise DataValidationError(
            f"model probabilities have shape {model.shape} but prior probabilities {prior.shape}; "
            "score the same rows with both"
        )
    return np.asarray((1.0 - weight) * model + weight * prior, dtype=np.float64)
