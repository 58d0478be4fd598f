"""Route scored leads through the policy and persist the outcome in the routing store.

Public API (the service's ``/route`` endpoint calls ``route_lead``)::

    route_lead(store, lead, policy, now=None) -> RouteResult
    reassign_lead(store, policy, lead_id, now=..., extra_reasons=(), expected_assignment_id=None)
        -> RouteResult | None
    return_to_queue(store, policy, lead_id, now=..., extra_reasons=(), expected_assignment_id=None)
        -> RouteResult | None
    assign_queued(store, policy, now=..., limit=100) -> list[RouteResult]

Each call is one transaction: lock the roster, read loads, call ``serving.policy.decide``,
write the assignment and append the decision log entry, commit, and only then return. So
concurrent workers never push a rep over capacity, and every returned decision is logged.

``route_lead`` is idempotent by lead_id: once a lead has been routed, every later call
returns its current assignment (or its shadow decision) with ``replayed=True`` and logs
nothing new, even if the score record changed. Moving a lead afterwards goes through
``reassign_lead`` or ``return_to_queue``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from leadscore.errors import DataValidationError, NotFoundError
from leadscore.i18n import DEFAULT_LOCALE, Locale
from serving.policy import Reason, RoutingDecision, ScoredLead, as_segment, decide
from serving.policy_config import RoutingPolicy
from serving.store import (
    EVENT_ASSIGNED,
    EVENT_QUEUED,
    EVENT_REASSIGNED,
    EVENT_RETURNED_TO_QUEUE,
    EVENT_SHADOW,
    AssignmentRecord,
    DecisionRecord,
    RoutingStore,
    active_assignment,
    append_decision,
    close_assignment,
    current_assignment,
    get_assignment,
    get_decision,
    get_lead,
    insert_assignment,
    insert_lead,
    latest_decision,
    link_decision,
    lock_roster,
    queued_assignments,
    read_roster_state,
)
from serving.store_models import ASSIGNMENT_ACTIVE

logger = logging.getLogger(__name__)

STATUS_SHADOW = "shadow"


@dataclass(frozen=True)
class RouteResult:
    """The routing state of one lead: its owner, deadline and the reasons.

    ``status`` is ``active`` or ``closed`` for an assignment and ``shadow`` for a shadow
    decision, which has no ``assignment_id``. ``replayed`` is True when the call returned
    a stored result instead of deciding anew.
    """

    lead_id: str
    assignment_id: int | None
    decision_id: int
    rep_id: str | None
    queue: str | None
    tier: str | None
    segment: str | None
    team: str | None
    status: str
    shadow: bool
    decided_at: datetime
    sla_due_at: datetime | None
    reasons: tuple[Reason, ...]
    policy_version: str | None
    model_version: str | None
    replayed: bool = False

    def reason_texts(self, locale: Locale = DEFAULT_LOCALE) -> list[str]:
        """Render every reason in ``locale``."""
        return [reason.text(locale) for reason in self.reasons]

    def to_dict(self, locale: Locale = DEFAULT_LOCALE) -> dict[str, Any]:
        """Return a JSON-ready dict with reason codes and their texts in ``locale``."""
        return {
            "lead_id": self.lead_id,
            "assignment_id": self.assignment_id,
            "decision_id": self.decision_id,
            "rep_id": self.rep_id,
            "queue": self.queue,
            "tier": self.tier,
            "segment": self.segment,
            "team": self.team,
            "status": self.status,
            "shadow": self.shadow,
            "decided_at": self.decided_at.isoformat(),
            "sla_due_at": self.sla_due_at.isoformat() if self.sla_due_at else None,
            "reasons": [
                {"code": reason.code, "params": dict(reason.params), "text": reason.text(locale)}
                for reason in self.reasons
            ],
            "policy_version": self.policy_version,
            "model_version": self.model_version,
            "replayed": self.replayed,
        }


def utc_now() -> datetime:
    """Return the current time, tz-aware in UTC."""
    return datetime.now(UTC)


def require_aware(now: datetime) -> datetime:
    """Return ``now`` in UTC, raising DataValidationError for a naive time."""
    if now.tzinfo is None:
        raise DataValidationError(f"time {now.isoformat()} has no time zone; pass a tz-aware datetime")
    return now.astimezone(UTC)


def _result_from_assignment(
    assignment: AssignmentRecord, decision: DecisionRecord, *, replayed: bool
) -> RouteResult:
    return RouteResult(
        lead_id=assignment.lead_id,
        assignment_id=assignment.assignment_id,
        decision_id=decision.decision_id,
        rep_id=assignment.rep_id,
        queue=assignment.queue,
        tier=assignment.tier,
        segment=assignment.segment,
        team=assignment.team,
        status=assignment.status,
        shadow=False,
        decided_at=decision.created_at,
        sla_due_at=assignment.sla_due_at,
        reasons=decision.reasons,
        policy_version=assignment.policy_version,
        model_version=assignment.model_version,
        replayed=replayed,
    )


def _result_from_shadow(decision: DecisionRecord, *, replayed: bool) -> RouteResult:
    return RouteResult(
        lead_id=decision.lead_id,
        assignment_id=None,
        decision_id=decision.decision_id,
        rep_id=decision.rep_id,
        queue=decision.queue,
        tier=decision.tier,
        segment=decision.segment,
        team=decision.team,
        status=STATUS_SHADOW,
        shadow=True,
        decided_at=decision.created_at,
        sla_due_at=decision.sla_due_at,
        reasons=decision.reasons,
        policy_version=decision.policy_version,
        model_version=decision.model_version,
        replayed=replayed,
    )


def stored_result(connection: Connection, lead_id: str) -> RouteResult | None:
    """Return the lead's current routing result, or None if it was never routed."""
    assignment = current_assignment(connection, lead_id)
    if assignment is not None:
        decision = get_decision(connection, assignment.decision_id) if assignment.decision_id else None
        if decision is None:
            raise NotFoundError(
                f"assignment {assignment.assignment_id} of lead {lead_id!r} has no decision-log entry; "
                "the routing store is inconsistent, restore it from a backup"
            )
        return _result_from_assignment(assignment, decision, replayed=True)
    shadow = latest_decision(connection, lead_id, events=(EVENT_SHADOW,))
    return _result_from_shadow(shadow, replayed=True) if shadow is not None else None


def get_route(store: RoutingStore, lead_id: str) -> RouteResult:
    """Return the current routing result of ``lead_id`` or raise NotFoundError."""
    result = store.run(
        lambda connection: stored_result(connection, lead_id), write=False, operation="route read"
    )
    if result is None:
        raise NotFoundError(f"lead {lead_id!r} has not been routed; route it first")
    return result


def _persist_decision(
    connection: Connection,
    decision: RoutingDecision,
    *,
    now: datetime,
    event: str,
    previous_rep_id: str | None = None,
) -> RouteResult:
    """Write the assignment (unless shadow) and its decision-log entry for ``decision``."""
    assignment_id: int | None = None
    if not decision.shadow:
        assignment_id = insert_assignment(
            connection,
            lead_id=decision.lead_id,
            rep_id=decision.rep_id,
            queue=decision.queue,
            tier=decision.tier,
            segment=decision.segment,
            team=decision.team,
            assigned_at=now,
            sla_due_at=decision.sla_due_at,
            policy_version=decision.policy_version,
            model_version=decision.model_version,
        )
    decision_id = append_decision(
        connection,
        event=event,
        lead_id=decision.lead_id,
        created_at=now,
        reasons=decision.reasons,
        shadow=decision.shadow,
        assignment_id=assignment_id,
        rep_id=decision.rep_id,
        previous_rep_id=previous_rep_id,
        queue=decision.queue,
        tier=decision.tier,
        segment=decision.segment,
        team=decision.team,
        expected_value=decision.expected_value,
        sla_due_at=decision.sla_due_at,
        model_version=decision.model_version,
        policy_version=decision.policy_version,
    )
    if assignment_id is not None:
        link_decision(connection, assignment_id, decision_id)
    return RouteResult(
        lead_id=decision.lead_id,
        assignment_id=assignment_id,
        decision_id=decision_id,
        rep_id=decision.rep_id,
        queue=decision.queue,
        tier=decision.tier,
        segment=decision.segment,
        team=decision.team,
        status=STATUS_SHADOW if decision.shadow else ASSIGNMENT_ACTIVE,
        shadow=decision.shadow,
        decided_at=now,
        sla_due_at=decision.sla_due_at,
        reasons=decision.reasons,
        policy_version=decision.policy_version,
        model_version=decision.model_version,
    )


def _route_in_transaction(
    connection: Connection, lead: ScoredLead, policy: RoutingPolicy, now: datetime
) -> RouteResult:
    lock_roster(connection)
    existing = stored_result(connection, lead.lead_id)
    if existing is not None:
        return existing
    roster = read_roster_state(connection, now=now, window_days=policy.balancing.expected_value_window_days)
    decision = decide(lead, roster, policy, now=now)
    insert_lead(connection, lead, received_at=now)
    if decision.shadow:
        event = EVENT_SHADOW
    else:
        event = EVENT_ASSIGNED if decision.rep_id is not None else EVENT_QUEUED
    return _persist_decision(connection, decision, now=now, event=event)


def route_lead(
    store: RoutingStore, lead: ScoredLead, policy: RoutingPolicy, *, now: datetime | None = None
) -> RouteResult:
    """Route one scored lead: decide, persist the assignment and decision log, return the result.

    A lead that was routed before gets its stored result back (``replayed=True``).
    """
    now = utc_now() if now is None else require_aware(now)
    try:
        result = store.run(
            lambda connection: _route_in_transaction(connection, lead, policy, now),
            operation=f"route lead {lead.lead_id}",
        )
    except IntegrityError:
        # Another worker routed the same lead between our check and our insert, so return
        # the result it committed. Any other integrity failure re-raises below.
        existing = store.run(
            lambda connection: stored_result(connection, lead.lead_id), write=False, operation="route re-read"
        )
        if existing is None:
            raise
        logger.info(
            "lead %s was routed concurrently; returning assignment %s", lead.lead_id, existing.assignment_id
        )
        return existing
    _log_result(result)
    return result


def _log_result(result: RouteResult) -> None:
    if result.replayed:
        logger.info(
            "lead %s already routed (assignment %s, decision %d); returned the stored result",
            result.lead_id,
            result.assignment_id,
            result.decision_id,
        )
        return
    logger.info(
        "lead %s routed: rep=%s queue=%s tier=%s segment=%s shadow=%s assignment=%s decision=%d policy=%s",
        result.lead_id,
        result.rep_id,
        result.queue,
        result.tier,
        result.segment,
        result.shadow,
        result.assignment_id,
        result.decision_id,
        result.policy_version,
    )


def _decide_again(
    connection: Connection,
    policy: RoutingPolicy,
    lead_id: str,
    *,
    now: datetime,
    exclude_rep_ids: Iterable[str] = (),
) -> RoutingDecision:
    lead = get_lead(connection, lead_id)
    if lead is None:
        raise NotFoundError(f"lead {lead_id!r} has no stored score record; route it with route_lead first")
    roster = read_roster_state(connection, now=now, window_days=policy.balancing.expected_value_window_days)
    return decide(lead, roster, policy, now=now, exclude_rep_ids=exclude_rep_ids)


def _with_reasons(decision: RoutingDecision, extra: Sequence[Reason]) -> RoutingDecision:
    return dataclasses.replace(decision, reasons=(*extra, *decision.reasons))


def _still_current(assignment: AssignmentRecord | None, expected_assignment_id: int | None) -> bool:
    if assignment is None:
        return False
    return expected_assignment_id is None or assignment.assignment_id == expected_assignment_id


def reassign_lead(
    store: RoutingStore,
    policy: RoutingPolicy,
    lead_id: str,
    *,
    now: datetime,
    extra_reasons: Sequence[Reason] = (),
    expected_assignment_id: int | None = None,
    exclude_rep_ids: Iterable[str] = (),
) -> RouteResult | None:
    """Move a lead from its current rep to another eligible rep with free capacity.

    Returns the new assignment, or None when no other rep has room (the lead stays where
    it is), the lead has no active rep assignment, or ``expected_assignment_id`` no longer
    is the active one (someone moved the lead meanwhile). Neither the current rep nor
    any rep in ``exclude_rep_ids`` is chosen.
    """
    excluded = set(exclude_rep_ids)
    now = require_aware(now)

    def work(connection: Connection) -> RouteResult | None:
        lock_roster(connection)
        current = active_assignment(connection, lead_id)
        if not _still_current(current, expected_assignment_id) or current is None or current.rep_id is None:
            return None
        decision = _decide_again(
            connection, policy, lead_id, now=now, exclude_rep_ids={current.rep_id, *excluded}
        )
        if decision.rep_id is None or decision.shadow:
            return None
        close_assignment(connection, current.assignment_id, closed_at=now, reason=EVENT_REASSIGNED)
        reasons = (*extra_reasons, Reason("reassigned_from", {"previous_rep_id": current.rep_id}))
        return _persist_decision(
            connection,
            _with_reasons(decision, reasons),
            now=now,
            event=EVENT_REASSIGNED,
            previous_rep_id=current.rep_id,
        )

    result = store.run(work, operation=f"reassign lead {lead_id}")
    if result is None:
        logger.info("lead %s not reassigned: no other eligible rep has free capacity or it moved", lead_id)
    else:
        logger.info(
            "lead %s reassigned to rep %s (assignment %s)", lead_id, result.rep_id, result.assignment_id
        )
    return result


def return_to_queue(
    store: RoutingStore,
    policy: RoutingPolicy,
    lead_id: str,
    *,
    now: datetime,
    extra_reasons: Sequence[Reason] = (),
    expected_assignment_id: int | None = None,
) -> RouteResult | None:
    """Take a lead from its rep and put it in the policy's queue.

    Returns the queued assignment, or None when the lead has no active rep assignment or
    ``expected_assignment_id`` is no longer the active one.
    """
    now = require_aware(now)

    def work(connection: Connection) -> RouteResult | None:
        current = active_assignment(connection, lead_id)
        if not _still_current(current, expected_assignment_id) or current is None or current.rep_id is None:
            return None
        close_assignment(connection, current.assignment_id, closed_at=now, reason=EVENT_RETURNED_TO_QUEUE)
        reasons = (
            *extra_reasons,
            Reason("returned_to_queue", {"previous_rep_id": current.rep_id, "queue": policy.queue}),
        )
        queued = RoutingDecision(
            lead_id=lead_id,
            rep_id=None,
            queue=policy.queue,
            tier=None,
            segment=as_segment(current.segment),
            reasons=reasons,
            policy_version=policy.version,
            shadow=False,
            expected_value=_expected_value_of(connection, lead_id),
            model_version=current.model_version,
            team=current.team,
        )
        return _persist_decision(
            connection, queued, now=now, event=EVENT_RETURNED_TO_QUEUE, previous_rep_id=current.rep_id
        )

    result = store.run(work, operation=f"return lead {lead_id} to queue")
    if result is not None:
        logger.info(
            "lead %s returned to queue %s (assignment %s)", lead_id, result.queue, result.assignment_id
        )
    return result


def _expected_value_of(connection: Connection, lead_id: str) -> float:
    lead = get_lead(connection, lead_id)
    return lead.expected_value if lead is not None else 0.0


def assign_queued(
    store: RoutingStore, policy: RoutingPolicy, *, now: datetime, limit: int | None = 100
) -> list[RouteResult]:
    """Route queued leads, oldest first, to reps that now have free capacity.

    Each lead is one transaction. Leads for which no rep has room stay queued. ``limit``
    caps the queued leads tried (None tries all). Returns the new assignments.
    """
    now = require_aware(now)
    waiting = store.run(
        lambda connection: [item.assignment_id for item in queued_assignments(connection, limit=limit)],
        write=False,
        operation="queue read",
    )
    results: list[RouteResult] = []
    for assignment_id in waiting:
        result = store.run(
            functools.partial(_assign_one_queued, policy=policy, assignment_id=assignment_id, now=now),
            operation=f"assign queued assignment {assignment_id}",
        )
        if result is not None:
            results.append(result)
    logger.info("assigned %d of %d queued leads", len(results), len(waiting))
    return results


def _assign_one_queued(
    connection: Connection, *, policy: RoutingPolicy, assignment_id: int, now: datetime
) -> RouteResult | None:
    lock_roster(connection)
    queued = get_assignment(connection, assignment_id)
    if queued is None or queued.status != ASSIGNMENT_ACTIVE or queued.rep_id is not None:
        return None
    decision = _decide_again(connection, policy, queued.lead_id, now=now)
    if decision.rep_id is None or decision.shadow:
        return None
    close_assignment(connection, queued.assignment_id, closed_at=now, reason="assigned_from_queue")
    reasons = (Reason("assigned_from_queue", {"queue": queued.queue}),)
    return _persist_decision(connection, _with_reasons(decision, reasons), now=now, event=EVENT_ASSIGNED)
