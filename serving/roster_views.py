"""The work behind ``GET /reps``, ``PUT /reps`` and ``GET /sla/overdue``."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from serving.api_models import (
    OverdueLead,
    OverdueResponse,
    RepOut,
    RosterResponse,
    RosterUpdateRequest,
    RosterUpdateResponse,
)
from serving.payloads import as_aware_field
from serving.roster import list_reps, upsert_reps
from serving.routing import utc_now
from serving.runtime import ServiceRuntime
from serving.sla import overdue

logger = logging.getLogger(__name__)


def roster_response(runtime: ServiceRuntime) -> RosterResponse:
    """Return every rep with its current load and whether routing can choose it."""
    reps = []
    for item in list_reps(runtime.store, include_inactive=True):
        rep = item.rep
        reps.append(
            RepOut(
                rep_id=rep.rep_id,
                name=rep.name,
                tier=rep.tier,
                capacity=rep.capacity,
                regions=list(rep.regions),
                skills=list(rep.skills),
                hired_at=rep.hired_at,
                active=rep.active,
                manager_id=rep.manager_id,
                open_leads=item.open_leads,
                available=rep.active and item.open_leads < rep.capacity,
            )
        )
    return RosterResponse(reps=reps)


def update_roster(runtime: ServiceRuntime, body: RosterUpdateRequest) -> RosterUpdateResponse:
    """Insert or update the request's reps in one transaction (deactivating others with replace)."""
    timezone = runtime.settings.timezone
    rows: list[dict[str, Any]] = []
    for position, rep in enumerate(body.reps):
        row = rep.model_dump()
        if row.get("hired_at") is not None:
            row["hired_at"] = as_aware_field(row["hired_at"], timezone, f"reps[{position}].hired_at")
        row["regions"] = row.get("regions") or []
        row["skills"] = row.get("skills") or []
        rows.append(row)
    update = upsert_reps(runtime.store, rows, now=utc_now(), deactivate_missing=body.replace)
    return RosterUpdateResponse(
        inserted=list(update.inserted), updated=list(update.updated), deactivated=list(update.deactivated)
    )


def overdue_response(runtime: ServiceRuntime, as_of: datetime | None) -> OverdueResponse:
    """Return the leads past their first-contact deadline at ``as_of`` (default now)."""
    now = utc_now() if as_of is None else as_aware_field(as_of, runtime.settings.timezone, "as_of")
    leads = overdue(runtime.store, now=now)
    runtime.metrics.sla_overdue.set(len(leads))
    return OverdueResponse(
        as_of=now,
        leads=[
            OverdueLead(
                lead_id=lead.lead_id,
                assignment_id=lead.assignment_id,
                rep_id=lead.rep_id,
                manager_id=lead.manager_id,
                tier=lead.tier,
                segment=lead.segment,
                assigned_at=lead.assigned_at,
                sla_due_at=lead.sla_due_at,
                overdue_minutes=round(lead.overdue_by.total_seconds() / 60.0, 1),
                escalated_at=lead.escalated_at,
            )
            for lead in leads
        ],
    )
