"""The work behind ``GET /reps``, ``PUT /reps`` and ``GET /sla/overdue``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from leadscore.i18n import Locale, register_messages, translate
from serving.api_models import (
    OverdueLead,
    OverdueResponse,
    RepIn,
    RepOut,
    RosterResponse,
    RosterUpdateRequest,
    RosterUpdateResponse,
)
from serving.errors_http import Problem, RequestProblemsError, register_error_messages
from serving.payloads import as_aware_field
from serving.roster import (
    NEW_REP_FIELDS,
    MissingRepFields,
    NewRepFieldsMissingError,
    RepeatedRep,
    RepeatedRepsError,
    apply_rep_changes,
    list_reps,
)
from serving.routing import assign_queued, utc_now
from serving.runtime import ServiceRuntime
from serving.sla import overdue

logger = logging.getLogger(__name__)

_MESSAGES: dict[str, dict[str, str]] = {
    "http.new_rep_field": {
        "en": "{field} is required because {rep_id} is a new rep; a new rep needs {required}",
        "zh-CN": "缺少必填字段 {field}：{rep_id} 是新销售，新销售须提供 {required}",
    },
    "http.repeated_rep": {
        "en": "{field}={rep_id} repeats the rep_id of reps[{first}]; list each rep once per request, "
        "with all of its changes in one entry",
        "zh-CN": "{field}={rep_id} 与 reps[{first}] 的 rep_id 重复；每位销售在一个请求中只能列出一次，"
        "其所有改动请写在同一条中",
    },
}


@cache
def _register() -> None:
    register_error_messages()
    register_messages(_MESSAGES)


class NewRepFieldsProblemsError(RequestProblemsError):
    """The 422 error that names each field a new rep of a PUT /reps request lacks."""

    def __init__(self, missing: Sequence[MissingRepFields]) -> None:
        self.missing = tuple(missing)
        super().__init__(self.problems_in("en"))

    def problems_in(self, locale: Locale) -> tuple[Problem, ...]:
        _register()
        required = ", ".join(NEW_REP_FIELDS)
        problems = []
        for item in self.missing:
            for name in item.fields:
                field = f"reps[{item.position}].{name}"
                message = translate(
                    "http.new_rep_field", locale, field=field, rep_id=repr(item.rep_id), required=required
                )
                problems.append(Problem(field, None, None, message, "missing"))
        return tuple(problems)


class RepeatedRepsProblemsError(RequestProblemsError):
    """The 422 error that names each rep a PUT /reps request lists a second time."""

    def __init__(self, repeated: Sequence[RepeatedRep]) -> None:
        self.repeated = tuple(repeated)
        super().__init__(self.problems_in("en"))

    def problems_in(self, locale: Locale) -> tuple[Problem, ...]:
        _register()
        problems = []
        for item in self.repeated:
            field = f"reps[{item.position}].rep_id"
            message = translate(
                "http.repeated_rep", locale, field=field, rep_id=repr(item.rep_id), first=item.first_position
            )
            problems.append(
                Problem(field, item.rep_id, "a rep_id not used earlier in the request", message, "repeated")
            )
        return tuple(problems)


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
    """Insert new reps and change the sent fields of stored ones in one transaction.

    With ``replace`` the reps left out of the request are made inactive. Raises
    RepeatedRepsProblemsError (422) when a rep is listed twice, and NewRepFieldsProblemsError
    (422) when a new rep lacks a field that has no safe default.
    """
    timezone = runtime.settings.timezone
    changes = [_rep_change(rep, position, timezone) for position, rep in enumerate(body.reps)]
    try:
        update = apply_rep_changes(runtime.store, changes, now=utc_now(), deactivate_missing=body.replace)
    except RepeatedRepsError as error:
        raise RepeatedRepsProblemsError(error.repeated) from None
    except NewRepFieldsMissingError as error:
        raise NewRepFieldsProblemsError(error.missing) from None

    # New reps or larger capacities make room for leads that wait in a queue.
    assigned = assign_queued(runtime.store, runtime.policy, now=utc_now())
    return RosterUpdateResponse(
        inserted=list(update.inserted),
        updated=list(update.updated),
        deactivated=list(update.deactivated),
        assigned_from_queue=[result.lead_id for result in assigned],
    )


def _rep_change(rep: RepIn, position: int, timezone: str) -> dict[str, Any]:
    """Return the fields the request sent for one rep, with hired_at in UTC."""
    change = rep.sent_fields()
    if change.get("hired_at") is not None:
        change["hired_at"] = as_aware_field(change["hired_at"], timezone, f"reps[{position}].hired_at")
    return change


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
