"""The scorer's row path: small payloads scored from plain rows, without pandas frames.

``training.scorer.score_payload`` tries ``score_small_payload`` first for payloads of at
most ``ROW_PATH_MAX_LEADS`` leads. It converts the records with ``data.payload_rows`` and
computes each lead's features with ``features.single_lead``. It then maps them to a numpy
model row with the bundle's fitted category codes. The boosters, calibrator, rule prior,
grade bands, segment thresholds and reason sentences are those of
``training.scorer.score_tables``.

It returns None whenever a payload or a bundle is outside what it supports, and the caller
then takes the table path. So the table path stays the reference: it raises every
validation error and scores every case the row path leaves out.

The model-side steps below restate small parts of ``ConversionModel.predict``,
``LtvModel.predict`` and ``RuleScoreModel.predict_proba`` for numpy rows. The parity tests
in ``tests/training/test_row_scorer.py`` compare both paths record by record.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from data.payload_rows import LeadRow, PayloadRows, payload_rows
from data.stages import TERMINAL_STAGES
from features.pipeline import feature_definitions
from features.single_lead import lead_features
from features.spec import OTHER_LEVEL
from features.windows import scalar_micros
from leadscore.i18n import Locale
from training import coldstart
from training.baselines.rules import CategoryLevel, NumericBand, RuleFactor, RuleScoreModel, score_range
from training.bundle import ScorerBundle
from training.calibration import sigmoid
from training.reasons import ReasonContext, reasons_for_row

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

ROW_PATH_MAX_LEADS = 64
"""Payloads with more leads take the table path, whose cost grows more slowly per lead."""

_LTV_ROLES: dict[str, tuple[str, ...]] = {
    "tweedie": ("tweedie",),
    "hurdle_gamma": ("occurrence", "gamma"),
    "hurdle_log1p": ("occurrence", "log1p"),
}
_MAX_CACHED_PLANS = 8


@dataclass(frozen=True)
class _RowPlan:
    """Model columns and category codes of one bundle, as the row path uses them."""

    names: tuple[str, ...]
    categorical: frozenset[str]
    codes: dict[str, dict[str, int]]
    other_codes: dict[str, int]


_plans: dict[int, tuple[ScorerBundle, _RowPlan | None]] = {}


def score_small_payload(
    bundle: ScorerBundle,
    leads: Sequence[Mapping[str, Any]],
    activities: Sequence[Mapping[str, Any]],
    stage_changes: Sequence[Mapping[str, Any]],
    orders: Sequence[Mapping[str, Any]],
    *,
    cutoff: pd.Timestamp,
    locale: Locale,
    top_reasons: int,
) -> list[dict[str, Any]] | None:
    """Return the JSON-ready score records of a small payload, or None to use the table path.

    The records are those of ``training.scorer.split_records``, with every declared custom
    attribute present on each lead. ``cutoff`` is a tz-aware timestamp.
    """
    plan = _plan_of(bundle)
    if plan is None or len(leads) > ROW_PATH_MAX_LEADS or cutoff.nanosecond != 0:
        return None
    config = bundle.feature_config
    rows = payload_rows(
        leads, activities, stage_changes, orders, timezone=config.timezone, attributes=bundle.attributes
    )
    cutoff_micros = scalar_micros(cutoff, name="as_of")
    if rows is None or not _scorable_at(rows, cutoff_micros):
        return None

    features = [
        lead_features(
            lead,
            rows.orders_by_customer.get(lead.customer_id, []) if lead.customer_id is not None else [],
            cutoff_micros,
            config,
            bundle.attributes,
        )
        for lead in rows.leads
    ]
    lead_ids = [lead.lead_id for lead in rows.leads]
    return _score_feature_rows(bundle, plan, lead_ids, features, cutoff, locale, top_reasons)


def _scorable_at(rows: PayloadRows, cutoff: int) -> bool:
    """Return False when a lead is created at or after the cutoff or closed before it.

    ``training.scorer.payload_spine`` raises for those leads, so they take the table path.
    """
    return all(lead.created_at < cutoff and _close_time(lead) >= cutoff for lead in rows.leads)


def _close_time(lead: LeadRow) -> float:
    closes = [change.changed_at for change in lead.stage_changes if change.stage in TERMINAL_STAGES]
    return min(closes) if closes else math.inf


# --- bundle plan -----------------------------------------------------------------------------------


def _plan_of(bundle: ScorerBundle) -> _RowPlan | None:
    cached = _plans.get(id(bundle))
    if cached is not None and cached[0] is bundle:
        return cached[1]
    plan = _build_plan(bundle)
    if plan is None:
        logger.info("model %s is scored on the table path only", bundle.bundle_version)
    if len(_plans) >= _MAX_CACHED_PLANS:
        _plans.clear()
    _plans[id(bundle)] = (bundle, plan)
    return plan


def _build_plan(bundle: ScorerBundle) -> _RowPlan | None:
    """Return the plan, or None when some model part differs from what the row path restates."""
    spec = bundle.feature_spec
    names = tuple(spec.feature_names)
    boosters = _boosters_with_layout(bundle, names)
    if boosters is None:
        return None

    # LightGBM maps pandas categories to codes through the category lists stored in the
    # booster, so the row path uses codes only when those lists equal the spec's.
    expected = [spec.model_categories(name) for name in spec.categorical_features]
    for booster in boosters:
        if booster.pandas_categorical != expected or booster.num_feature() != len(names):
            return None

    definitions = {
        definition.name: definition.kind
        for definition in feature_definitions(bundle.feature_config, bundle.attributes)
    }
    if any(name not in definitions for name in names):
        return None
    if bundle.rule_prior is not None and not _rules_fit(bundle.rule_prior.rules, definitions):
        return None

    categorical = spec.categorical_features
    codes = {name: {level: code for code, level in enumerate(spec.categories[name])} for name in categorical}
    other_codes = {name: spec.model_categories(name).index(OTHER_LEVEL) for name in categorical}
    return _RowPlan(names, frozenset(categorical), codes, other_codes)


def _boosters_with_layout(bundle: ScorerBundle, names: tuple[str, ...]) -> list[lgb.Booster] | None:
    """Return every booster of the bundle, or None when a layout or an LTV kind is unexpected."""
    boosters = [bundle.conversion.booster]
    if names != bundle.conversion.layout.feature_names:
        return None
    if bundle.ltv_model is not None:
        roles = _LTV_ROLES.get(bundle.ltv_model.kind)
        if roles is None or set(roles) != set(bundle.ltv_model.boosters):
            return None
        if names != bundle.ltv_model.layout.feature_names:
            return None
        boosters.extend(bundle.ltv_model.boosters[role] for role in roles)
    return boosters


def _rules_fit(rules: Sequence[RuleFactor], kinds: Mapping[str, str]) -> bool:
    """Return True when every rule reads a feature of the kind its levels expect."""
    for rule in rules:
        expected = "numeric" if rule.is_numeric else "categorical"
        if kinds.get(rule.column) != expected:
            return False
        if rule.only_if is not None and kinds.get(rule.only_if) != "numeric":
            return False
    return True


# --- scoring ---------------------------------------------------------------------------------------


def _score_feature_rows(
    bundle: ScorerBundle,
    plan: _RowPlan,
    lead_ids: Sequence[str],
    features: Sequence[Mapping[str, Any]],
    cutoff: pd.Timestamp,
    locale: Locale,
    top_reasons: int,
) -> list[dict[str, Any]]:
    """Score feature rows (as ``features.single_lead.lead_features`` returns them) like ``score_tables``."""
    matrix, unseen = _model_matrix(plan, features)
    prior = _rule_prior(bundle.rule_prior, features) if bundle.rule_prior is not None else None
    p_convert = np.clip(_conversion(bundle, matrix, prior), 0.0, 1.0)
    ltv = _ltv(bundle, matrix)
    expected_value = p_convert * ltv
    grades = bundle.grade_bands.grade(expected_value)
    segments = bundle.segment_thresholds.segment(expected_value, p_convert)
    reasons = _reasons(bundle, plan, matrix, features, locale, top_reasons)

    as_of = cutoff.as_unit("us").isoformat()
    records = []
    for position, lead_id in enumerate(lead_ids):
        positives, negatives = reasons[position]
        records.append(
            {
                "lead_id": lead_id,
                "as_of": as_of,
                "p_convert": float(p_convert[position]),
                "ltv": float(ltv[position]),
                "expected_value": float(expected_value[position]),
                "grade": str(grades[position]),
                "segment": str(segments[position]),
                "reasons_positive": positives,
                "reasons_negative": negatives,
                "model_version": bundle.bundle_version,
                "flags": {
                    "unseen_categories": unseen[position],
                    "insufficient_data": bundle.insufficient_data,
                },
            }
        )
    logger.info(
        "scored %d leads on the row path with model %s (%d with unseen categories)",
        len(records),
        bundle.bundle_version,
        sum(1 for values in unseen if values),
    )
    return records


def _model_matrix(
    plan: _RowPlan, features: Sequence[Mapping[str, Any]]
) -> tuple[FloatArray, list[dict[str, str]]]:
    """Return the float64 rows LightGBM receives from ``FeatureSpec.transform`` and the unseen values.

    A categorical value becomes its category code, a value outside the fitted set the code
    of ``__other__``, and a missing value NaN, as LightGBM converts pandas categoricals.
    """
    matrix = np.empty((len(features), len(plan.names)), dtype=np.float64)
    unseen: list[dict[str, str]] = [{} for _ in features]
    counts: dict[str, int] = {}
    for row_number, row in enumerate(features):
        for column, name in enumerate(plan.names):
            value = row[name]
            if name not in plan.categorical:
                matrix[row_number, column] = value
                continue
            if value is None:
                matrix[row_number, column] = math.nan
                continue
            code = plan.codes[name].get(value)
            if code is None:
                code = plan.other_codes[name]
                unseen[row_number][name] = value
                counts[name] = counts.get(name, 0) + 1
            matrix[row_number, column] = code
    if counts:
        logger.warning("values outside the fitted categories mapped to %s: %s", OTHER_LEVEL, counts)
    return matrix, unseen


def _best_iteration(booster: lgb.Booster) -> int | None:
    return booster.best_iteration if booster.best_iteration > 0 else None


def _predict(booster: lgb.Booster, matrix: FloatArray) -> FloatArray:
    """Predict like ``training.boosting.predict_booster``, from a float64 matrix."""
    return np.asarray(booster.predict(matrix, num_iteration=_best_iteration(booster)), dtype=np.float64)


def _conversion(bundle: ScorerBundle, matrix: FloatArray, prior: FloatArray | None) -> FloatArray:
    """Restate ``ConversionModel.predict``: calibrate, then blend with the rule prior when trained so."""
    model = bundle.conversion
    calibrated = model.calibrator.predict(_predict(model.booster, matrix))
    if model.prior_weight == 0.0:
        return calibrated
    if prior is None:
        raise ValueError("the conversion model blends a rule-score prior, but the bundle has no rule model")
    return coldstart.blend_with_prior(calibrated, prior, model.prior_weight)


def _ltv(bundle: ScorerBundle, matrix: FloatArray) -> FloatArray:
    """Restate ``training.scorer._predict_ltv`` and ``LtvModel.predict`` for a float64 matrix."""
    model = bundle.ltv_model
    if model is None:
        return np.full(len(matrix), bundle.ltv_fallback, dtype=np.float64)
    if model.kind == "tweedie":
        predicted = _predict(model.boosters["tweedie"], matrix)
    else:
        p_any = _predict(model.boosters["occurrence"], matrix)
        if model.kind == "hurdle_gamma":
            amount = _predict(model.boosters["gamma"], matrix)
        else:
            log_amount = _predict(model.boosters["log1p"], matrix)
            amount = np.maximum(np.expm1(log_amount) * model.smearing + (model.smearing - 1.0), 0.0)
        predicted = np.asarray(p_any * amount, dtype=np.float64)
    return np.maximum(predicted, 0.0)


def _rule_prior(model: RuleScoreModel, features: Sequence[Mapping[str, Any]]) -> FloatArray:
    """Restate ``RuleScoreModel.predict_proba`` for feature rows."""
    totals = np.array(
        [sum(_rule_points(rule, row) for rule in model.rules) for row in features], dtype=np.float64
    )
    low, high = score_range(model.rules)
    scores = np.asarray((totals - low) / (high - low) * 100.0, dtype=np.float64)
    return sigmoid(model.slope * scores / 100.0 + model.intercept)


def _rule_points(rule: RuleFactor, row: Mapping[str, Any]) -> float:
    """Return the points of one row on one factor, as ``RuleFactor.points`` gives them."""
    value = row[rule.column]
    points = 0.0
    if rule.is_numeric:
        for band in rule.levels:
            if isinstance(band, NumericBand) and _in_band(band, value):
                points = float(band.points)
                break
    elif value is not None:
        normalized = str(value).strip().casefold()
        for level in rule.levels:
            if isinstance(level, CategoryLevel) and _matches(level, normalized):
                points = float(level.points)
                break
    if rule.only_if is not None and not row[rule.only_if] > 0:
        points = 0.0
    return points


def _in_band(band: NumericBand, value: float) -> bool:
    upper = math.inf if band.upper is None else band.upper
    return bool(band.lower <= value < upper)


def _matches(level: CategoryLevel, normalized: str) -> bool:
    keywords = [keyword.strip().casefold() for keyword in level.values]
    if level.match == "exact":
        return normalized in keywords
    return any(keyword in normalized for keyword in keywords)


def _reasons(
    bundle: ScorerBundle,
    plan: _RowPlan,
    matrix: FloatArray,
    features: Sequence[Mapping[str, Any]],
    locale: Locale,
    top_reasons: int,
) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Return the positive and negative reasons of each row, as ``score_tables`` builds them."""
    if top_reasons == 0:
        return [([], []) for _ in features]
    booster = bundle.conversion.booster
    contributions = np.asarray(
        booster.predict(matrix, pred_contrib=True, num_iteration=_best_iteration(booster)), dtype=np.float64
    )
    expected_shape = (len(matrix), len(plan.names) + 1)
    if contributions.shape != expected_shape:
        raise ValueError(f"pred_contrib returned shape {contributions.shape}, expected {expected_shape}")
    context = ReasonContext.of(bundle.feature_definitions, bundle.feature_config.first_contact_sla_hours)
    names = list(plan.names)
    result = []
    for position, row in enumerate(features):
        # The table path reads a missing category from a pandas string column, as NaN.
        values = {name: math.nan if row[name] is None else row[name] for name in names}
        up, down = reasons_for_row(
            contributions[position], names, values, locale=locale, context=context, top=top_reasons
        )
        result.append(([reason.to_dict() for reason in up], [reason.to_dict() for reason in down]))
    return result
