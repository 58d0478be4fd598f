"""The work behind ``POST /score``, ``POST /route`` and ``GET /model``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel

from leadscore.i18n import Locale
from serving.api_models import (
    AttributeOut,
    LeadScore,
    ModelInfo,
    RouteRequest,
    RouteResponse,
    RouteResultOut,
    ScoreRequest,
    ScoreResponse,
)
from serving.errors_http import RequestProblemsError
from serving.payloads import lead_problems, lead_records, to_lead_score
from serving.policy import ScoredLead
from serving.routing import RouteResult, route_lead
from serving.runtime import ServiceRuntime
from training.registry import MODEL_NAME
from training.scorer import parse_as_of

logger = logging.getLogger(__name__)

NO_TIER = "none"


def _checked_records(
    runtime: ServiceRuntime, leads: Sequence[BaseModel], as_of: Any, locale: Locale
) -> tuple[list[dict[str, Any]], pd.Timestamp | None]:
    """Check ``leads``; return them as scorer records, and the cutoff (None means now)."""
    bundle = runtime.model.bundle
    problems = lead_problems(leads, bundle.attributes, locale)
    if problems:
        raise RequestProblemsError(problems)
    cutoff = parse_as_of(as_of, bundle.feature_config.timezone) if as_of is not None else None
    return lead_records(leads, bundle.attributes), cutoff


def _scored(
    runtime: ServiceRuntime, leads: Sequence[BaseModel], as_of: Any, locale: Locale, endpoint: str
) -> tuple[pd.Timestamp, list[LeadScore]]:
    """Check and score ``leads``; return the cutoff used and one LeadScore per lead in order."""
    records, cutoff = _checked_records(runtime, leads, as_of, locale)
    used, results = runtime.score(records, as_of=cutoff, locale=locale, endpoint=endpoint)
    return used, [to_lead_score(record) for record in results]


def _score_response(
    runtime: ServiceRuntime, cutoff: pd.Timestamp, scores: list[LeadScore], locale: Locale
) -> ScoreResponse:
    return ScoreResponse(
        model_version=runtime.model.model_version,
        registry_version=runtime.model.registry_version,
        as_of=cutoff.to_pydatetime(),
        locale=locale,
        results=scores,
    )


def score_leads(runtime: ServiceRuntime, body: ScoreRequest, locale: Locale) -> ScoreResponse:
    """Score the request's leads with the champion bundle."""
    cutoff, scores = _scored(runtime, body.leads, body.as_of, locale, "score")
    return _score_response(runtime, cutoff, scores, locale)


async def score_leads_async(runtime: ServiceRuntime, body: ScoreRequest, locale: Locale) -> ScoreResponse:
    """Score the request's leads as ``score_leads`` does, awaiting the scoring thread on the event loop."""
    records, cutoff = _checked_records(runtime, body.leads, body.as_of, locale)
    used, results = await runtime.score_async(records, as_of=cutoff, locale=locale, endpoint="score")
    return _score_response(runtime, used, [to_lead_score(record) for record in results], locale)


def route_leads(runtime: ServiceRuntime, body: RouteRequest, locale: Locale) -> RouteResponse:
    """Score the request's leads, then route each one in request order.

    ``as_of`` is both the scoring cutoff and the assignment time that SLA deadlines count
    from. Without it both are now.
    """
    cutoff, scores = _scored(runtime, body.leads, body.as_of, locale, "route")
    now = cutoff.to_pydatetime()
    results: list[RouteResultOut] = []
    for lead, score in zip(body.leads, scores, strict=True):
        scored_lead = ScoredLead(
            lead_id=score.lead_id,
            p_convert=score.p_convert,
            ltv=score.ltv,
            expected_value=score.expected_value,
            model_version=score.model_version,
            grade=score.grade,
            segment=score.segment,
            region=lead.region,
            industry=lead.industry,
        )
        result = route_lead(runtime.store, scored_lead, runtime.policy, now=now)
        _count_decision(runtime, result)
        results.append(_route_out(result, score, locale))
    return RouteResponse(results=results)


def _count_decision(runtime: ServiceRuntime, result: RouteResult) -> None:
    if result.replayed:
        outcome = "existing"
    elif result.shadow:
        outcome = "shadow"
    elif result.rep_id is None:
        outcome = "queued"
    else:
        outcome = "assigned"
    runtime.metrics.routing_decisions.labels(
        segment=result.segment or NO_TIER, tier=result.tier or NO_TIER, outcome=outcome
    ).inc()


def _route_out(result: RouteResult, score: LeadScore, locale: Locale) -> RouteResultOut:
    payload = result.to_dict(locale)
    return RouteResultOut(
        lead_id=result.lead_id,
        assignment_id=result.assignment_id,
        decision_id=result.decision_id,
        rep_id=result.rep_id,
        queue=result.queue,
        tier=result.tier,
        segment=result.segment,
        team=result.team,
        status=result.status,
        shadow=result.shadow,
        decided_at=result.decided_at,
        sla_due_at=result.sla_due_at,
        reasons=payload["reasons"],
        policy_version=result.policy_version,
        model_version=result.model_version,
        replayed=result.replayed,
        score=score,
    )


def model_info(runtime: ServiceRuntime) -> ModelInfo:
    """Describe the champion model this worker serves."""
    model = runtime.model
    bundle = model.bundle
    return ModelInfo(
        model_name=MODEL_NAME,
        registry_version=model.registry_version,
        model_version=model.model_version,
        run_id=model.run_id,
        insufficient_data=bundle.insufficient_data,
        attributes=[
            AttributeOut(name=item.name, type=item.type, description=item.description)
            for item in bundle.attributes
        ],
        feature_names=list(bundle.feature_names),
    )
