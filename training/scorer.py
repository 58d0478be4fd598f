"""The one score path: canonical tables and a spine (or raw lead records) in, score records out.

The service, batch rescoring, the MLflow pyfunc (and so Spark's ``spark_udf``) and the
promotion gate all call ``score_tables``, batch rescoring through ``score_tables_with_matrix``,
which also returns the model matrix. Every step works row by row: features use only the
row's own lead and its events before the cutoff, the spec maps categories by name, and
LightGBM and the calibrator score each row alone. So a lead scores the same alone or inside
any batch.

``score_payload`` first offers payloads of up to ``training.row_scorer.ROW_PATH_MAX_LEADS``
leads to ``training.row_scorer``, which computes the same records without pandas tables
and hands everything it does not support back to ``score_tables``. Parity tests compare
the two record by record.

A score record contains lead_id, as_of (the cutoff), p_convert (calibrated probability of
converting within the label horizon), ltv (expected net revenue over the LTV horizon once
converted), expected_value (p_convert * ltv), grade (A-D), segment, reasons_positive and
reasons_negative, model_version and flags (unseen_categories as {feature: value} and
insufficient_data).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from data.folder import CanonicalTables
from data.records import tables_from_records, timestamp_in_utc
from features.inputs import lead_index
from features.pipeline import build_features
from features.spec import FeatureSpec
from features.spine import lead_close_micros
from features.windows import scalar_micros, timestamp_micros
from leadscore.errors import DataValidationError
from leadscore.i18n import Locale, parse_locale
from training.bundle import ScorerBundle
from training.reasons import ReasonContext, reasons_for_rows, shap_contributions
from training.row_scorer import score_small_payload

logger = logging.getLogger(__name__)

SCORE_COLUMNS: tuple[str, ...] = (
    "lead_id",
    "as_of",
    "p_convert",
    "ltv",
    "expected_value",
    "grade",
    "segment",
    "reasons_positive",
    "reasons_negative",
    "model_version",
    "flags",
)
NESTED_KEYS: tuple[str, ...] = ("activities", "stage_changes", "orders")
DEFAULT_TOP_REASONS = 3
EXAMPLE_LEAD: dict[str, Any] = {
    "lead_id": "example-1",
    "created_at": "2025-03-01T09:00:00+08:00",
    "channel": "referral",
    "region": "华东",
    "industry": "制造",
    "company_size": "101-500",
    "declared_budget": 150000.0,
    "customer_id": "example-customer-1",
    "activities": [
        {"occurred_at": "2025-03-01T10:00:00+08:00", "type": "call", "direction": "outbound"},
        {"occurred_at": "2025-03-02T15:30:00+08:00", "type": "wechat", "direction": "inbound"},
    ],
}
"""A raw lead record in the payload format, logged as the pyfunc's input example."""
MAX_TOP_REASONS = 20


def example_lead_for(spec: FeatureSpec) -> dict[str, Any]:
    """Return ``EXAMPLE_LEAD`` with each categorical field set to a category the spec was fitted on.

    The example is scored when MLflow logs the model, and a category the model never saw would
    log an unseen-category warning on every training run.
    """
    example = dict(EXAMPLE_LEAD)
    for name, value in EXAMPLE_LEAD.items():
        fitted = spec.categories.get(name)
        if fitted and value not in fitted:
            example[name] = fitted[0]
    return example


@dataclass(frozen=True)
class ScoredTables:
    """Score records of a spine together with the model matrix they were computed from."""

    records: pd.DataFrame
    """One score record per spine row (``SCORE_COLUMNS``), with the spine's index."""
    matrix: pd.DataFrame
    """``FeatureSpec.transform`` of the spine's feature frame: the same rows and index as ``records``."""


def score_tables(
    bundle: ScorerBundle,
    tables: CanonicalTables,
    spine: pd.DataFrame,
    *,
    locale: str = "en",
    top_reasons: int = DEFAULT_TOP_REASONS,
) -> pd.DataFrame:
    """Score every spine row (lead_id, cutoff) and return one score record per row, in spine order.

    Returns a DataFrame with ``SCORE_COLUMNS`` and the spine's index. Reasons are lists of
    dicts (feature, direction, contribution, text) with ``text`` in ``locale``.
    """
    return score_tables_with_matrix(bundle, tables, spine, locale=locale, top_reasons=top_reasons).records


def score_tables_with_matrix(
    bundle: ScorerBundle,
    tables: CanonicalTables,
    spine: pd.DataFrame,
    *,
    locale: str = "en",
    top_reasons: int = DEFAULT_TOP_REASONS,
) -> ScoredTables:
    """Score like ``score_tables`` and also return the model matrix the scores were computed from.

    Batch rescoring counts drift on that matrix, so the features of a chunk are built once.
    The matrix of an empty spine has no columns.
    """
    language = parse_locale(locale)
    if not _valid_top_reasons(top_reasons):
        raise DataValidationError(
            f"top_reasons must be a whole number from 0 to {MAX_TOP_REASONS}; got {top_reasons!r}"
        )
    if spine.empty:
        records = pd.DataFrame({column: pd.Series(dtype=object) for column in SCORE_COLUMNS})
        return ScoredTables(records, pd.DataFrame(index=records.index))

    frame = build_features(spine, tables, bundle.feature_config)
    matrix = bundle.feature_spec.transform(frame).matrix
    records = _score_records(bundle, spine, frame, matrix, language, top_reasons)
    logger.info(
        "scored %d spine rows with model %s (%d with unseen categories)",
        len(records),
        bundle.bundle_version,
        sum(1 for flags in records["flags"] if flags["unseen_categories"]),
    )
    return ScoredTables(records, matrix)


def _score_records(
    bundle: ScorerBundle,
    spine: pd.DataFrame,
    frame: pd.DataFrame,
    matrix: pd.DataFrame,
    locale: Locale,
    top_reasons: int,
) -> pd.DataFrame:
    """Return the score records of the spine rows whose features are ``frame`` and model matrix ``matrix``."""
    prior = bundle.rule_prior.predict_proba(frame) if bundle.rule_prior is not None else None
    p_convert = np.clip(bundle.conversion.predict(matrix, prior), 0.0, 1.0)
    ltv = _predict_ltv(bundle, matrix)
    expected_value = p_convert * ltv
    grades = bundle.grade_bands.grade(expected_value)
    segments = bundle.segment_thresholds.segment(expected_value, p_convert)
    unseen = _unseen_categories(bundle, frame)
    positives, negatives = _reason_dicts(bundle, frame, matrix, locale, top_reasons)

    flags = [
        {"unseen_categories": unseen[position], "insufficient_data": bundle.insufficient_data}
        for position in range(len(frame))
    ]
    return pd.DataFrame(
        {
            "lead_id": spine["lead_id"].astype(str).to_numpy(),
            "as_of": spine["cutoff"],
            "p_convert": p_convert,
            "ltv": ltv,
            "expected_value": expected_value,
            "grade": grades,
            "segment": segments,
            "reasons_positive": positives,
            "reasons_negative": negatives,
            "model_version": bundle.bundle_version,
            "flags": flags,
        },
        index=spine.index,
    )


def _reason_dicts(
    bundle: ScorerBundle, frame: pd.DataFrame, matrix: pd.DataFrame, locale: Locale, top_reasons: int
) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """Return the positive and the negative reasons of each row as lists of dicts (empty for 0 reasons)."""
    if top_reasons == 0:
        return [[] for _ in range(len(frame))], [[] for _ in range(len(frame))]
    contributions = shap_contributions(bundle.conversion.booster, matrix)
    context = ReasonContext.of(bundle.feature_definitions, bundle.feature_config.first_contact_sla_hours)
    reasons = reasons_for_rows(
        contributions, frame, list(matrix.columns), locale=locale, context=context, top=top_reasons
    )
    positives = [[reason.to_dict() for reason in up] for up, _ in reasons]
    negatives = [[reason.to_dict() for reason in down] for _, down in reasons]
    return positives, negatives


def _valid_top_reasons(top_reasons: Any) -> bool:
    return (
        not isinstance(top_reasons, bool)
        and isinstance(top_reasons, int)
        and 0 <= top_reasons <= MAX_TOP_REASONS
    )


def _predict_ltv(bundle: ScorerBundle, matrix: pd.DataFrame) -> np.ndarray:
    if bundle.ltv_model is None:
        return np.full(len(matrix), bundle.ltv_fallback, dtype=np.float64)
    return np.maximum(np.asarray(bundle.ltv_model.predict(matrix), dtype=np.float64), 0.0)


def _unseen_categories(bundle: ScorerBundle, frame: pd.DataFrame) -> list[dict[str, str]]:
    """Return, per row, each categorical feature whose value is outside the fitted category set."""
    found: list[dict[str, str]] = [{} for _ in range(len(frame))]
    spec = bundle.feature_spec
    for name in spec.categorical_features:
        values = frame[name].astype(object)
        present = values.notna().to_numpy()
        texts = values.where(present, "").astype(str)
        unseen = present & ~texts.isin(spec.categories[name]).to_numpy()
        for position in np.flatnonzero(unseen):
            found[position][name] = texts.iloc[position]
    return found


# --- raw records ----------------------------------------------------------------------------------


def parse_as_of(value: Any, timezone: str) -> pd.Timestamp:
    """Return ``value`` as a tz-aware UTC timestamp; None means now, a naive time is read in ``timezone``.

    Accepts an ISO 8601 string, a datetime or a date, as lead records do. Numbers are rejected
    rather than guessed as seconds or nanoseconds, and so are words such as "now".
    """
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return pd.Timestamp.now(tz="UTC")
    try:
        timestamp = timestamp_in_utc(value, timezone)
    except DataValidationError as error:
        raise DataValidationError(f"as_of {error}") from None
    if timestamp is None:
        raise DataValidationError(
            f"as_of {str(value)[:60]!r} is not an ISO 8601 timestamp; "
            "send for example '2024-03-01T09:30:00+08:00', or leave it out to score as of now"
        )
    return timestamp


def split_records(
    records: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Split lead records with nested activities, stage_changes and orders into four record lists.

    A nested activity or stage change without ``lead_id`` gets its lead's id, and one with a
    different ``lead_id`` raises. A nested order without ``customer_id`` gets the lead's
    customer_id, and a lead without one cannot have orders. Missing ``activity_id`` and
    ``order_id`` values are generated as ``<lead_id>:activity:<n>`` and
    ``<lead_id>:order:<n>`` (n counts from 1 per lead), which is logged.
    """
    leads: list[dict[str, Any]] = []
    activities: list[dict[str, Any]] = []
    stage_changes: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    generated = 0
    for number, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            raise DataValidationError(
                f"lead record {number} is a {type(record).__name__}; expected an object of field: value"
            )
        lead = {key: value for key, value in record.items() if key not in NESTED_KEYS}
        lead_id = lead.get("lead_id")
        if lead_id is None or (isinstance(lead_id, float) and math.isnan(lead_id)) or str(lead_id) == "":
            raise DataValidationError(f"lead record {number} has no lead_id; every lead needs its CRM id")
        lead_id = str(lead_id)
        leads.append(lead)
        for key, target in (("activities", activities), ("stage_changes", stage_changes), ("orders", orders)):
            nested = _nested_list(record.get(key), key, lead_id)
            for position, item in enumerate(nested, start=1):
                row = dict(item)
                if key == "orders":
                    generated += _fill_order(row, lead, lead_id, position)
                else:
                    _check_lead_id(row, key, lead_id, position)
                    if key == "activities" and _is_blank(row.get("activity_id")):
                        row["activity_id"] = f"{lead_id}:activity:{position}"
                        generated += 1
                target.append(row)
    if generated:
        logger.info("generated %d missing activity or order ids from lead ids", generated)
    return leads, activities, stage_changes, orders


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _nested_list(value: Any, key: str, lead_id: str) -> list[Mapping[str, Any]]:
    if _is_blank(value):
        return []
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise DataValidationError(
            f"lead {lead_id!r}: {key} must be a list of objects; got {type(value).__name__}"
        )
    for position, item in enumerate(value, start=1):
        if not isinstance(item, Mapping):
            raise DataValidationError(
                f"lead {lead_id!r}: {key} item {position} is a {type(item).__name__}; expected an object"
            )
    return list(value)


def _check_lead_id(row: dict[str, Any], key: str, lead_id: str, position: int) -> None:
    given = row.get("lead_id")
    if _is_blank(given):
        row["lead_id"] = lead_id
    elif str(given) != lead_id:
        raise DataValidationError(
            f"lead {lead_id!r}: {key} item {position} has lead_id {str(given)[:40]!r}; "
            "nested items belong to their lead, so drop lead_id or make it match"
        )


def _fill_order(row: dict[str, Any], lead: Mapping[str, Any], lead_id: str, position: int) -> int:
    generated = 0
    if _is_blank(row.get("customer_id")):
        customer_id = lead.get("customer_id")
        if _is_blank(customer_id):
            raise DataValidationError(
                f"lead {lead_id!r} has orders but no customer_id; "
                "set customer_id on the lead or on each order"
            )
        row["customer_id"] = customer_id
    if _is_blank(row.get("order_id")):
        row["order_id"] = f"{lead_id}:order:{position}"
        generated = 1
    return generated


def payload_spine(tables: CanonicalTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """Return one spine row per lead at ``as_of``, raising for leads that cannot be scored then.

    A lead created at or after ``as_of`` has no history yet, and a lead that was won or lost
    before ``as_of`` is closed. Either raises DataValidationError naming the leads, so no
    record of a payload is dropped silently.
    """
    leads = tables.leads
    cutoff = scalar_micros(as_of, name="as_of")
    created = timestamp_micros(leads["created_at"], column="created_at")
    close = lead_close_micros(tables, lead_index(leads))
    lead_ids = leads["lead_id"].astype(str).to_numpy()
    too_new = lead_ids[created >= cutoff]
    if too_new.size:
        raise DataValidationError(
            f"lead(s) {too_new[:10].tolist()} were created at or after as_of {as_of.isoformat()}; "
            "send as_of later than created_at (omit it to score as of now)"
        )
    closed = lead_ids[close < cutoff]
    if closed.size:
        raise DataValidationError(
            f"lead(s) {closed[:10].tolist()} were already won or lost before as_of {as_of.isoformat()}; "
            "only open leads are scored, so leave them out or send an as_of before the close"
        )
    return pd.DataFrame(
        {
            "lead_id": leads["lead_id"].reset_index(drop=True),
            "cutoff": pd.Series([as_of] * len(leads)).dt.as_unit("us"),
        }
    )


def score_payload(
    bundle: ScorerBundle,
    records: Sequence[Mapping[str, Any]],
    *,
    as_of: Any = None,
    locale: str = "en",
    top_reasons: int = DEFAULT_TOP_REASONS,
    row_path: bool = True,
) -> list[dict[str, Any]]:
    """Score raw lead records (each with nested activities, stage_changes and orders lists).

    Timestamps are ISO 8601 strings or datetimes, and naive ones are read in the model's
    business timezone. ``as_of`` defaults to now. Returns JSON-ready score records in input order.

    Small payloads are scored on the row path (``training.row_scorer``), which gives the same
    records without building pandas tables. Any payload it does not support, and every
    invalid one, goes through the tables and ``score_tables``. ``row_path=False`` forces
    that table path, the reference that the row path is tested against.
    """
    language: Locale = parse_locale(locale)
    if not records:
        return []
    cutoff = parse_as_of(as_of, bundle.feature_config.timezone)
    leads, activities, stage_changes, orders = split_records(records)
    # A custom attribute the CRM did not send is unknown for that lead, not an error.
    for lead in leads:
        for attribute in bundle.attributes:
            lead.setdefault(attribute.name, None)
    if row_path and _valid_top_reasons(top_reasons):
        scored_rows = score_small_payload(
            bundle,
            leads,
            activities,
            stage_changes,
            orders,
            cutoff=cutoff,
            locale=language,
            top_reasons=top_reasons,
        )
        if scored_rows is not None:
            return scored_rows

    tables = tables_from_records(
        leads,
        activities,
        stage_changes,
        orders,
        timezone=bundle.feature_config.timezone,
        attributes=bundle.attributes,
    )
    spine = payload_spine(tables, cutoff)
    scored = score_tables(bundle, tables, spine, locale=language, top_reasons=top_reasons)
    return [
        _json_record({str(key): value for key, value in row.items()})
        for row in scored.to_dict(orient="records")
    ]


def _json_record(row: Mapping[str, Any]) -> dict[str, Any]:
    record = dict(row)
    as_of = record["as_of"]
    record["as_of"] = pd.Timestamp(as_of).isoformat() if as_of is not None else None
    for key in ("p_convert", "ltv", "expected_value"):
        record[key] = float(record[key])
    record["grade"] = str(record["grade"])
    record["segment"] = str(record["segment"])
    return record
