"""Route the unassigned leads of a scored chunk through the service's policy and routing store.

A lead is unassigned when ``owner_rep_id`` is empty in leads.parquet. Each one goes through
``serving.routing.route_lead``, the call behind the service's ``/route`` endpoint: one
transaction that locks the roster, decides with the policy, writes the assignment and appends
the decision log. ``route_lead`` is idempotent by lead_id, so routing a chunk again after a
crash returns the stored decisions (``replayed``) and assigns no lead twice.

Within a chunk, leads are routed by expected value, highest first, then by lead_id, so the
order (and with it who gets which rep) does not depend on the engine.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from leadscore.errors import LeadscoreError
from leadscore.i18n import Locale
from serving.policy import ScoredLead
from serving.policy_config import RoutingPolicy
from serving.routing import RouteResult, route_lead
from serving.store import RoutingStore

logger = logging.getLogger(__name__)

ROUTE_ASSIGNED = "assigned"
ROUTE_QUEUED = "queued"
ROUTE_SHADOW = "shadow"
ROUTE_HAS_OWNER = "has_owner"
ROUTE_FAILED = "failed"
ROUTE_STATUSES: tuple[str, ...] = (ROUTE_ASSIGNED, ROUTE_QUEUED, ROUTE_SHADOW, ROUTE_HAS_OWNER, ROUTE_FAILED)

ROUTING_SCHEMA = pa.schema(
    [
        ("lead_id", pa.string()),
        ("route_status", pa.string()),
        ("rep_id", pa.string()),
        ("queue", pa.string()),
        ("tier", pa.string()),
        ("team", pa.string()),
        ("sla_due_at", pa.timestamp("us", tz="UTC")),
        ("assignment_id", pa.int64()),
        ("decision_id", pa.int64()),
        ("replayed", pa.bool_()),
        ("routing_reasons", pa.string()),
    ]
)
_SCORE_FIELDS = ("lead_id", "p_convert", "ltv", "expected_value", "model_version", "grade", "segment")


def route_chunk(
    store: RoutingStore, policy: RoutingPolicy, scores: pa.Table, *, locale: Locale
) -> tuple[pa.Table, dict[str, int]]:
    """Route the unassigned leads of one chunk; return a routing row per scored lead and the counts.

    Rows are in the order of ``scores``. A lead whose routing raises a LeadscoreError gets
    status ``failed`` with the error as its reason, and the rest of the chunk is still routed.
    """
    frame = scores.to_pandas()
    rows: dict[str, dict[str, Any]] = {}
    routing_order = frame.sort_values(["expected_value", "lead_id"], ascending=[False, True], kind="stable")
    for record in routing_order.to_dict(orient="records"):
        lead_id = str(record["lead_id"])
        if _text(record.get("owner_rep_id")) is not None:
            rows[lead_id] = _row(lead_id, ROUTE_HAS_OWNER)
            continue
        try:
            result = route_lead(store, _scored_lead(record), policy)
        except LeadscoreError as error:
            logger.warning("routing lead %s failed: %s", lead_id, error)
            rows[lead_id] = _row(lead_id, ROUTE_FAILED, reasons=str(error)[:500])
            continue
        rows[lead_id] = _result_row(result, locale)

    ordered = [rows[str(lead_id)] for lead_id in frame["lead_id"]]
    counts = Counter(row["route_status"] for row in ordered)
    summary = {status: int(counts.get(status, 0)) for status in ROUTE_STATUSES}
    summary["replayed"] = sum(1 for row in ordered if row["replayed"])
    return pa.Table.from_pylist(ordered, schema=ROUTING_SCHEMA), summary


def _scored_lead(record: dict[str, Any]) -> ScoredLead:
    values = {name: record[name] for name in _SCORE_FIELDS}
    return ScoredLead(
        lead_id=str(values["lead_id"]),
        p_convert=float(values["p_convert"]),
        ltv=float(values["ltv"]),
        expected_value=float(values["expected_value"]),
        model_version=_text(values["model_version"]),
        grade=_text(values["grade"]),
        segment=_text(values["segment"]),
        region=_text(record.get("region")),
        industry=_text(record.get("industry")),
    )


def _result_row(result: RouteResult, locale: Locale) -> dict[str, Any]:
    if result.shadow:
        status = ROUTE_SHADOW
    elif result.rep_id is not None:
        status = ROUTE_ASSIGNED
    else:
        status = ROUTE_QUEUED
    return _row(
        result.lead_id,
        status,
        rep_id=result.rep_id,
        queue=result.queue,
        tier=result.tier,
        team=result.team,
        sla_due_at=result.sla_due_at,
        assignment_id=result.assignment_id,
        decision_id=result.decision_id,
        replayed=result.replayed,
        reasons=" ".join(result.reason_texts(locale)),
    )


def _row(
    lead_id: str,
    status: str,
    *,
    rep_id: str | None = None,
    queue: str | None = None,
    tier: str | None = None,
    team: str | None = None,
    sla_due_at: datetime | None = None,
    assignment_id: int | None = None,
    decision_id: int | None = None,
    replayed: bool = False,
    reasons: str = "",
) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "route_status": status,
        "rep_id": rep_id,
        "queue": queue,
        "tier": tier,
        "team": team,
        "sla_due_at": sla_due_at,
        "assignment_id": assignment_id,
        "decision_id": decision_id,
        "replayed": replayed,
        "routing_reasons": reasons,
    }


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None
