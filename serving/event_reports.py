"""The work behind ``POST /activities``: store CRM events and close SLA timers.

Each event is stored in its own transaction, so one bad event does not undo the others. An
activity id already stored with other content is a conflict: the remaining events are still
stored, and the response is 409 listing every conflicting item (resending the others is
harmless, because repeats are ignored).
"""

from __future__ import annotations

import logging

from leadscore.errors import ConflictError
from leadscore.i18n import Locale, register_messages, translate
from serving.api_models import ActivitiesRequest, ActivitiesResponse
from serving.errors_http import ConflictProblemsError, Problem, register_error_messages
from serving.payloads import as_aware_field
from serving.routing import assign_queued, utc_now
from serving.runtime import ServiceRuntime
from serving.sla import ActivityReport, ContactOutcome, record_activity, record_stage_change

logger = logging.getLogger(__name__)

_MESSAGES: dict[str, dict[str, str]] = {
    "http.activity_conflicts": {
        "en": "{count} activity id(s) are already stored with other content, the first {first}; "
        "every other event was stored. Give each activity a unique activity_id",
        "zh-CN": "{count} 个跟进记录编号已存在且内容不同，第一个为 {first}；其余记录均已保存。"
        "请为每条跟进记录使用唯一的 activity_id",
    },
    "http.activity_conflict": {
        "en": "{field}={value} is already stored with other content (lead {stored_lead}); "
        "send each activity once with a unique activity_id",
        "zh-CN": "{field}={value} 已存储且内容不同（线索 {stored_lead}），"
        "每条跟进记录请使用唯一的 activity_id",
    },
}
_registered = False


def _register() -> None:
    global _registered  # noqa: PLW0603 - a once-only flag; the catalog lives in leadscore.i18n
    if not _registered:
        register_error_messages()
        register_messages(_MESSAGES)
        _registered = True


class _Tally:
    """Counts of what the events did."""

    def __init__(self) -> None:
        self.recorded = 0
        self.repeated = 0
        self.closed: list[str] = []
        self.closed_late: list[str] = []
        self.assignments_closed = 0

    def add(self, outcome: ContactOutcome) -> None:
        if outcome.closed_assignment_id is not None:
            self.assignments_closed += 1
        if outcome.recorded:
            self.recorded += 1
        else:
            self.repeated += 1
        # A lead without an assigned rep has no timer to close, although its contact is kept.
        has_timer = outcome.sla_due_at is not None
        if outcome.first_contact and has_timer and outcome.lead_id not in self.closed:
            self.closed.append(outcome.lead_id)
            if outcome.sla_met is False:
                self.closed_late.append(outcome.lead_id)


def record_reports(runtime: ServiceRuntime, body: ActivitiesRequest, locale: Locale) -> ActivitiesResponse:
    """Store every activity and stage change; raise ConflictError after storing the rest when ids clash."""
    timezone = runtime.settings.timezone
    now = utc_now()
    # Every time is checked before anything is stored, so a bad one leaves the report unrecorded.
    occurred = [
        as_aware_field(item.occurred_at, timezone, f"activities[{position}].occurred_at")
        for position, item in enumerate(body.activities)
    ]
    changed = [
        as_aware_field(change.changed_at, timezone, f"stage_changes[{position}].changed_at")
        for position, change in enumerate(body.stage_changes)
    ]

    activities = _Tally()
    conflicts: list[Problem] = []
    for position, item in enumerate(body.activities):
        report = ActivityReport(
            activity_id=item.activity_id,
            lead_id=item.lead_id,
            activity_type=item.type,
            direction=item.direction,
            occurred_at=occurred[position],
            rep_id=item.rep_id,
        )
        try:
            outcome = record_activity(runtime.store, runtime.policy, report, now=now)
        except ConflictError as error:
            conflicts.append(_conflict_problem(position, item.activity_id, str(error), locale))
            continue
        activities.add(outcome)
        _count_contact(runtime, outcome)

    stages = _Tally()
    for position, change in enumerate(body.stage_changes):
        outcome = record_stage_change(
            runtime.store,
            change.lead_id,
            change.stage,
            changed_at=changed[position],
            now=now,
        )
        stages.add(outcome)
        _count_contact(runtime, outcome)

    # A won or lost lead frees its rep's capacity for a lead that waits in a queue.
    assigned = assign_queued(runtime.store, runtime.policy, now=now) if stages.assignments_closed else []

    if conflicts:
        _register()
        logger.warning("%d activity id conflict(s) in one report", len(conflicts))
        message = translate("http.activity_conflicts", locale, count=len(conflicts), first=conflicts[0].value)
        raise ConflictProblemsError(conflicts, message)
    closed = activities.closed + [lead for lead in stages.closed if lead not in activities.closed]
    late = activities.closed_late + [
        lead for lead in stages.closed_late if lead not in activities.closed_late
    ]
    return ActivitiesResponse(
        activities_recorded=activities.recorded,
        activities_repeated=activities.repeated,
        stage_changes_recorded=stages.recorded,
        stage_changes_repeated=stages.repeated,
        sla_closed=closed,
        sla_closed_late=late,
        assigned_from_queue=[result.lead_id for result in assigned],
    )


def _conflict_problem(position: int, activity_id: str, detail: str, locale: Locale) -> Problem:
    _register()
    field = f"activities[{position}].activity_id"
    # The store's message names the lead the stored activity belongs to, as "(lead 'X')".
    stored_lead = detail.split("(lead ", 1)[1].split(")", 1)[0] if "(lead " in detail else "?"
    message = translate(
        "http.activity_conflict", locale, field=field, value=repr(activity_id), stored_lead=stored_lead
    )
    return Problem(field, activity_id, "an activity_id not stored with other content", message, "conflict")


def _count_contact(runtime: ServiceRuntime, outcome: ContactOutcome) -> None:
    if not outcome.first_contact or outcome.sla_met is None:
        return
    runtime.metrics.first_contacts.labels(on_time=str(outcome.sla_met).lower()).inc()
    if outcome.sla_met is False:
        runtime.metrics.sla_breaches.labels(kind="late_first_contact").inc()
