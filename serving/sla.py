"""First-contact SLA: deadlines, first contacts, overdue leads and their escalation.

Every assignment to a rep gets ``sla_due_at`` = assignment time + the segment's
``sla_hours`` (``sla.default_hours`` when unset). The timer of a lead closes at its first
contact: an outbound activity of a type in ``sla.contact_types``, or a stage change to
contacted or beyond. A contact recorded before the assignment counts too. Won and lost
close the assignment itself and free the rep's capacity.

Public API (the service's ``/activities`` and ``/sla/overdue`` endpoints call the first three)::

    record_activity(store, policy, activity, now=None) -> ContactOutcome
    record_stage_change(store, lead_id, stage, changed_at=..., now=None) -> ContactOutcome
    overdue(store, now=...) -> list[OverdueLead]
    check_sla(store, policy, now=..., action="escalate", notifier=None) -> SlaCheckReport

``check_sla`` escalates each overdue lead once: it logs a warning, POSTs to the webhook
when one is given, and appends an ``escalated`` entry to the decision log. With
``action="reassign"`` or ``"return_to_queue"`` it also moves the lead (see
``serving.routing``) and notifies again. A failed webhook is logged and retried on the next
check; it never stops the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal, Protocol

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.schema import ACTIVITY_TYPES, DIRECTIONS
from data.stages import TERMINAL_STAGES, parse_stage, stage_order
from leadscore.errors import ConfigError, DataValidationError
from leadscore.i18n import DEFAULT_LOCALE, Locale, register_messages, translate
from serving.policy import Reason
from serving.policy_config import RoutingPolicy
from serving.routing import RouteResult, reassign_lead, require_aware, return_to_queue, utc_now
from serving.store import (
    EVENT_CLOSED,
    EVENT_ESCALATED,
    RoutingStore,
    active_assignment,
    append_decision,
    close_assignment,
    current_assignment,
    first_contact_at,
    insert_activity,
    insert_stage_change,
    mark_escalated,
    overdue_rows,
    record_first_contact,
)
from serving.store_models import assignments

logger = logging.getLogger(__name__)

_LOCALES: tuple[Locale, ...] = ("en", "zh-CN")
SlaAction = Literal["escalate", "reassign", "return_to_queue"]
SLA_ACTIONS: tuple[str, ...] = ("escalate", "reassign", "return_to_queue")

_SUMMARY_TEXTS: dict[str, dict[str, str]] = {
    "sla_check_summary": {
        "en": "{overdue} overdue leads at {checked_at}: {escalated} escalated, {reassigned} reassigned, "
        "{returned} returned to queue, {failed} notifications failed.",
        "zh-CN": "截至 {checked_at} 共 {overdue} 条线索首次联系超时：已上报 {escalated} 条，"
        "改派 {reassigned} 条，退回队列 {returned} 条，通知失败 {failed} 条。",
    },
}


@cache
def _register_summary_texts() -> None:
    register_messages(_SUMMARY_TEXTS)


@dataclass(frozen=True)
class ActivityReport:
    """An activity the CRM reports for a lead; field values as in ``data.schema.ACTIVITIES``."""

    activity_id: str
    lead_id: str
    activity_type: str
    direction: str
    occurred_at: datetime
    rep_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("activity_id", "lead_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise DataValidationError(f"activity {self.activity_id!r}: {name} must be a non-empty id")
        if self.activity_type not in ACTIVITY_TYPES:
            raise DataValidationError(
                f"activity {self.activity_id!r}: unknown type {self.activity_type!r}; "
                f"expected one of {', '.join(ACTIVITY_TYPES)}"
            )
        if self.direction not in DIRECTIONS:
            raise DataValidationError(
                f"activity {self.activity_id!r}: unknown direction {self.direction!r}; "
                f"expected one of {', '.join(DIRECTIONS)}"
            )
        if self.occurred_at.tzinfo is None:
            raise DataValidationError(
                f"activity {self.activity_id!r}: occurred_at {self.occurred_at.isoformat()} has no time zone"
            )


@dataclass(frozen=True)
class ContactOutcome:
    """Effect of an activity or stage change on a lead's SLA.

    ``recorded`` is False for a repeat of an event already stored. ``first_contact`` is
    True when this event is now the lead's earliest contact. ``sla_met`` compares the
    first contact with the deadline of the lead's current assignment (None while either
    is missing). ``closed_assignment_id`` is set when a won or lost stage closed it.
    """

    lead_id: str
    recorded: bool
    first_contact: bool
    first_contact_at: datetime | None
    sla_due_at: datetime | None
    sla_met: bool | None
    closed_assignment_id: int | None = None


@dataclass(frozen=True)
class OverdueLead:
    """A lead whose owner missed the first-contact deadline, with the manager to notify."""

    lead_id: str
    assignment_id: int
    rep_id: str
    manager_id: str | None
    segment: str
    tier: str | None
    team: str | None
    assigned_at: datetime
    sla_due_at: datetime
    overdue_by: timedelta
    escalated_at: datetime | None

    @property
    def overdue_hours(self) -> float:
        return self.overdue_by.total_seconds() / 3600

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (times in ISO 8601 UTC)."""
        return {
            "lead_id": self.lead_id,
            "assignment_id": self.assignment_id,
            "rep_id": self.rep_id,
            "manager_id": self.manager_id,
            "segment": self.segment,
            "tier": self.tier,
            "team": self.team,
            "assigned_at": self.assigned_at.isoformat(),
            "sla_due_at": self.sla_due_at.isoformat(),
            "overdue_hours": round(self.overdue_hours, 2),
            "escalated_at": self.escalated_at.isoformat() if self.escalated_at else None,
        }


@dataclass(frozen=True)
class EscalationOutcome:
    """Outcome of ``check_sla`` for one overdue lead.

    ``action`` is ``none``, ``reassigned``, ``not_reassigned`` (no other rep had room),
    ``returned_to_queue`` or ``moved`` (the lead changed owner while the check ran).
    ``escalated`` is True when a notice went out in this run; ``notice_failed`` when the
    webhook did not accept it.
    """

    lead: OverdueLead
    action: str
    escalated: bool
    notice_failed: bool
    new_result: RouteResult | None = None


@dataclass(frozen=True)
class SlaCheckReport:
    """The outcome of one ``check_sla`` run."""

    checked_at: datetime
    action: SlaAction
    outcomes: tuple[EscalationOutcome, ...] = field(default_factory=tuple)

    def count(self, action: str) -> int:
        """Return how many overdue leads ended with ``action``."""
        return sum(1 for outcome in self.outcomes if outcome.action == action)

    @property
    def escalated(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.escalated)

    @property
    def failed_notices(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.notice_failed)

    def summary(self, locale: Locale = DEFAULT_LOCALE) -> str:
        """Render a one-line summary for people in ``locale``."""
        _register_summary_texts()
        return translate(
            "sla_check_summary",
            locale,
            overdue=len(self.outcomes),
            checked_at=self.checked_at.isoformat(timespec="minutes"),
            escalated=self.escalated,
            reassigned=self.count("reassigned"),
            returned=self.count("returned_to_queue"),
            failed=self.failed_notices,
        )


class Notifier(Protocol):
    """Something that delivers one escalation notice; returns False when delivery failed."""

    def notify(self, payload: Mapping[str, Any]) -> bool: ...


def is_first_contact_activity(activity: ActivityReport, policy: RoutingPolicy) -> bool:
    """Return True when ``activity`` counts as a first contact under ``policy``."""
    return activity.direction == "outbound" and activity.activity_type in policy.sla.contact_types


def _outcome(
    connection: Connection,
    lead_id: str,
    *,
    recorded: bool,
    first_contact: bool,
    closed_assignment_id: int | None = None,
) -> ContactOutcome:
    contacted_at = first_contact_at(connection, lead_id)
    assignment = current_assignment(connection, lead_id)
    due = assignment.sla_due_at if assignment is not None else None
    met = contacted_at <= due if contacted_at is not None and due is not None else None
    return ContactOutcome(
        lead_id=lead_id,
        recorded=recorded,
        first_contact=first_contact,
        first_contact_at=contacted_at,
        sla_due_at=due,
        sla_met=met,
        closed_assignment_id=closed_assignment_id,
    )


def record_activity(
    store: RoutingStore, policy: RoutingPolicy, activity: ActivityReport, *, now: datetime | None = None
) -> ContactOutcome:
    """Store an activity and close the lead's SLA timer when it is a first contact.

    Reporting the same activity twice is harmless (``recorded=False``); the same
    activity_id with other content raises ConflictError.
    """
    now = utc_now() if now is None else require_aware(now)
    contact = is_first_contact_activity(activity, policy)

    def work(connection: Connection) -> ContactOutcome:
        recorded = insert_activity(
            connection,
            activity_id=activity.activity_id,
            lead_id=activity.lead_id,
            rep_id=activity.rep_id,
            activity_type=activity.activity_type,
            direction=activity.direction,
            occurred_at=activity.occurred_at,
            recorded_at=now,
        )
        first = False
        if recorded and contact:
            first = record_first_contact(
                connection,
                lead_id=activity.lead_id,
                contacted_at=activity.occurred_at,
                source="activity",
                source_id=activity.activity_id,
                now=now,
            )
        return _outcome(connection, activity.lead_id, recorded=recorded, first_contact=first)

    outcome = store.run(work, operation=f"record activity {activity.activity_id}")
    if outcome.first_contact:
        logger.info(
            "lead %s first contacted at %s by activity %s; SLA met=%s",
            activity.lead_id,
            activity.occurred_at.isoformat(),
            activity.activity_id,
            outcome.sla_met,
        )
    return outcome


def record_stage_change(
    store: RoutingStore, lead_id: str, stage: str, *, changed_at: datetime, now: datetime | None = None
) -> ContactOutcome:
    """Store a stage change; contacted or beyond closes the SLA timer, won or lost the assignment.

    ``stage`` accepts the English code or the Chinese name (see ``data.stages``).
    """
    now = utc_now() if now is None else require_aware(now)
    changed_at = require_aware(changed_at)
    code = parse_stage(stage)
    order = stage_order(code)
    is_contact = order is not None and order >= 1

    def work(connection: Connection) -> ContactOutcome:
        recorded = insert_stage_change(
            connection, lead_id=lead_id, stage=code, changed_at=changed_at, recorded_at=now
        )
        first = False
        if recorded and is_contact:
            first = record_first_contact(
                connection,
                lead_id=lead_id,
                contacted_at=changed_at,
                source="stage_change",
                source_id=code,
                now=now,
            )
        closed_id = _close_on_terminal_stage(connection, lead_id, code, now) if recorded else None
        return _outcome(
            connection, lead_id, recorded=recorded, first_contact=first, closed_assignment_id=closed_id
        )

    outcome = store.run(work, operation=f"record stage change of lead {lead_id}")
    if outcome.closed_assignment_id is not None:
        logger.info(
            "lead %s reached stage %s; assignment %s closed", lead_id, code, outcome.closed_assignment_id
        )
    return outcome


def _close_on_terminal_stage(connection: Connection, lead_id: str, stage: str, now: datetime) -> int | None:
    if stage not in TERMINAL_STAGES:
        return None
    assignment = active_assignment(connection, lead_id)
    if assignment is None:
        return None
    close_assignment(connection, assignment.assignment_id, closed_at=now, reason=f"stage_{stage}")
    append_decision(
        connection,
        event=EVENT_CLOSED,
        lead_id=lead_id,
        created_at=now,
        reasons=(Reason("stage_closed", {"stage": stage}),),
        assignment_id=assignment.assignment_id,
        rep_id=assignment.rep_id,
        queue=assignment.queue,
        tier=assignment.tier,
        segment=assignment.segment,
        team=assignment.team,
        model_version=assignment.model_version,
        policy_version=assignment.policy_version,
    )
    return assignment.assignment_id


def overdue(store: RoutingStore, *, now: datetime) -> list[OverdueLead]:
    """Return leads whose first-contact deadline passed by ``now`` without a contact, oldest first."""
    now = require_aware(now)
    rows = store.run(
        lambda connection: overdue_rows(connection, now=now), write=False, operation="overdue read"
    )
    leads: list[OverdueLead] = []
    for row in rows:
        assignment = row.assignment
        if assignment.rep_id is None or assignment.sla_due_at is None:
            continue  # the query selects rep assignments with a deadline only
        leads.append(
            OverdueLead(
                lead_id=assignment.lead_id,
                assignment_id=assignment.assignment_id,
                rep_id=assignment.rep_id,
                manager_id=row.manager_id,
                segment=assignment.segment,
                tier=assignment.tier,
                team=assignment.team,
                assigned_at=assignment.assigned_at,
                sla_due_at=assignment.sla_due_at,
                overdue_by=now - assignment.sla_due_at,
                escalated_at=assignment.escalated_at,
            )
        )
    return leads


def _overdue_reason(lead: OverdueLead) -> Reason:
    return Reason(
        "sla_overdue",
        {
            "sla_due_at": lead.sla_due_at.strftime("%Y-%m-%d %H:%M"),
            "overdue_hours": round(lead.overdue_hours, 2),
        },
    )


def _escalation_reason(lead: OverdueLead) -> Reason:
    if lead.manager_id is None:
        return Reason("sla_escalated_no_manager", {"rep_id": lead.rep_id})
    return Reason("sla_escalated", {"rep_id": lead.rep_id, "manager_id": lead.manager_id})


def _move_lead(
    store: RoutingStore,
    policy: RoutingPolicy,
    lead: OverdueLead,
    action: SlaAction,
    now: datetime,
    late_reps: frozenset[str],
) -> tuple[str, RouteResult | None]:
    reasons = (_overdue_reason(lead),)
    if action == "reassign":
        result = reassign_lead(
            store,
            policy,
            lead.lead_id,
            now=now,
            extra_reasons=reasons,
            expected_assignment_id=lead.assignment_id,
            exclude_rep_ids=late_reps,
        )
        if result is not None:
            return "reassigned", result
        return ("not_reassigned" if _still_active(store, lead) else "moved"), None
    if action == "return_to_queue":
        result = return_to_queue(
            store,
            policy,
            lead.lead_id,
            now=now,
            extra_reasons=reasons,
            expected_assignment_id=lead.assignment_id,
        )
        return ("returned_to_queue" if result is not None else "moved"), result
    return "none", None


def _still_active(store: RoutingStore, lead: OverdueLead) -> bool:
    """Return True when the overdue assignment is still the lead's active one."""
    current = store.run(
        lambda connection: active_assignment(connection, lead.lead_id),
        write=False,
        operation="assignment read",
    )
    return current is not None and current.assignment_id == lead.assignment_id


def _release_claim(connection: Connection, assignment_id: int, claimed_at: datetime) -> None:
    connection.execute(
        sa.update(assignments)
        .where(assignments.c.assignment_id == assignment_id, assignments.c.escalated_at == claimed_at)
        .values(escalated_at=None)
    )


def escalation_payload(
    lead: OverdueLead, *, action: str, new_result: RouteResult | None, now: datetime, policy: RoutingPolicy
) -> dict[str, Any]:
    """Return the JSON body POSTed to the webhook for one overdue lead; it contains ids, never names."""
    reasons = [_overdue_reason(lead), _escalation_reason(lead)]
    if new_result is not None:
        reasons.extend(
            reason for reason in new_result.reasons if reason.code in ("reassigned_from", "returned_to_queue")
        )
    return {
        "event": "sla_overdue",
        **lead.to_dict(),
        "checked_at": now.isoformat(),
        "action": action,
        "new_rep_id": new_result.rep_id if new_result else None,
        "new_assignment_id": new_result.assignment_id if new_result else None,
        "new_queue": new_result.queue if new_result else None,
        "new_sla_due_at": new_result.sla_due_at.isoformat() if new_result and new_result.sla_due_at else None,
        "policy_version": policy.version,
        "messages": {locale: " ".join(reason.text(locale) for reason in reasons) for locale in _LOCALES},
    }


def check_sla(
    store: RoutingStore,
    policy: RoutingPolicy,
    *,
    now: datetime,
    action: SlaAction = "escalate",
    notifier: Notifier | None = None,
) -> SlaCheckReport:
    """Escalate every overdue lead once and, if asked, reassign it or return it to the queue.

    A lead already escalated by an earlier run is escalated again only when this run
    moved it. Reassignment skips every rep that owns an overdue lead in this check, and
    never exceeds a rep's capacity, because it goes through the same locked transaction
    as routing.
    """
    now = require_aware(now)
    if action not in SLA_ACTIONS:
        raise ConfigError(f"unknown SLA action {action!r}; expected one of {', '.join(SLA_ACTIONS)}")
    late = overdue(store, now=now)
    # Reps with overdue leads of their own are not given more; otherwise two slow reps
    # could simply swap their overdue leads.
    late_reps = frozenset(lead.rep_id for lead in late)
    outcomes = [_handle_overdue(store, policy, lead, action, now, notifier, late_reps) for lead in late]
    report = SlaCheckReport(checked_at=now, action=action, outcomes=tuple(outcomes))
    logger.info(
        "SLA check at %s: %d overdue, %d escalated, %d reassigned, %d returned to queue, %d notices failed",
        now.isoformat(),
        len(outcomes),
        report.escalated,
        report.count("reassigned"),
        report.count("returned_to_queue"),
        report.failed_notices,
    )
    return report


def _handle_overdue(
    store: RoutingStore,
    policy: RoutingPolicy,
    lead: OverdueLead,
    action: SlaAction,
    now: datetime,
    notifier: Notifier | None,
    late_reps: frozenset[str],
) -> EscalationOutcome:
    moved_as, new_result = _move_lead(store, policy, lead, action, now, late_reps)
    claimed = False
    if lead.escalated_at is None:
        # Claim the escalation before notifying, so two concurrent checks do not both notify.
        claimed = store.run(
            lambda connection: mark_escalated(connection, lead.assignment_id, escalated_at=now),
            operation=f"claim escalation of lead {lead.lead_id}",
        )
    if not claimed and new_result is None:
        logger.debug("lead %s is still overdue and was escalated at %s", lead.lead_id, lead.escalated_at)
        return EscalationOutcome(lead=lead, action=moved_as, escalated=False, notice_failed=False)

    logger.warning(
        "SLA overdue: lead %s, rep %s, manager %s, %.1f h late; action %s%s",
        lead.lead_id,
        lead.rep_id,
        lead.manager_id,
        lead.overdue_hours,
        moved_as,
        f" to {new_result.rep_id or new_result.queue}" if new_result else "",
    )

    payload = escalation_payload(lead, action=moved_as, new_result=new_result, now=now, policy=policy)
    delivered = notifier.notify(payload) if notifier is not None else True
    if not delivered:
        if claimed:
            store.run(
                lambda connection: _release_claim(connection, lead.assignment_id, now),
                operation=f"release escalation of lead {lead.lead_id}",
            )
        return EscalationOutcome(
            lead=lead, action=moved_as, escalated=False, notice_failed=True, new_result=new_result
        )

    reasons = [_overdue_reason(lead), _escalation_reason(lead)]
    store.run(
        lambda connection: append_decision(
            connection,
            event=EVENT_ESCALATED,
            lead_id=lead.lead_id,
            created_at=now,
            reasons=reasons,
            assignment_id=lead.assignment_id,
            rep_id=lead.rep_id,
            tier=lead.tier,
            segment=lead.segment,
            team=lead.team,
            sla_due_at=lead.sla_due_at,
            policy_version=policy.version,
        ),
        operation=f"log escalation of lead {lead.lead_id}",
    )
    return EscalationOutcome(
        lead=lead, action=moved_as, escalated=True, notice_failed=False, new_result=new_result
    )


class WebhookNotifier:
    """POSTs each escalation as JSON to one URL, with a timeout and retries.

    Transport errors, timeouts, HTTP 429 and 5xx are retried ``retries`` times with
    exponential backoff starting at ``backoff_seconds``. Other 4xx responses fail at once.
    Failures are logged, never raised. Logs show only the URL's scheme and host, because
    chat-bot webhook URLs carry their access key in the path or query. httpx itself logs
    each full request URL at INFO on the ``httpx`` logger, so entry points that use this
    class set that logger to WARNING (``leadscore sla check`` does).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 5.0,
        retries: int = 2,
        backoff_seconds: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise ConfigError(
                f"invalid webhook URL; expected http(s)://host/path, got {url[:40]!r}"
            ) from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(
                f"invalid webhook URL; expected http(s)://host/path, got scheme {parsed.scheme!r}"
            )
        if retries < 0 or timeout_seconds <= 0 or backoff_seconds < 0:
            raise ConfigError("webhook retries and backoff must be >= 0 and the timeout > 0 seconds")
        self._url = parsed
        self._where = f"{parsed.scheme}://{parsed.host}"
        self._retries = retries
        self._backoff_seconds = backoff_seconds
        self._client = httpx.Client(timeout=timeout_seconds, transport=transport, follow_redirects=False)

    def notify(self, payload: Mapping[str, Any]) -> bool:
        """POST ``payload``; return True on a 2xx response, False after the last failed attempt."""
        lead_id = payload.get("lead_id")
        attempts = self._retries + 1
        for attempt in range(1, attempts + 1):
            problem, retryable = self._post_once(payload)
            if problem is None:
                return True
            if not retryable or attempt == attempts:
                logger.error(
                    "webhook %s failed for lead %s after %d attempt(s): %s",
                    self._where,
                    lead_id,
                    attempt,
                    problem,
                )
                return False
            delay = self._backoff_seconds * 2 ** (attempt - 1)
            logger.warning(
                "webhook %s attempt %d of %d for lead %s failed (%s); retrying in %.1f s",
                self._where,
                attempt,
                attempts,
                lead_id,
                problem,
                delay,
            )
            time.sleep(delay)
        return False  # pragma: no cover - the loop always returns

    def _post_once(self, payload: Mapping[str, Any]) -> tuple[str | None, bool]:
        """Return (None, _) on success, else a problem description and whether to retry."""
        try:
            response = self._client.post(self._url, json=dict(payload))
        except httpx.TimeoutException:
            return "timed out", True
        except httpx.TransportError as error:
            return f"{type(error).__name__}", True
        if response.is_success:
            return None, False
        retryable = response.status_code == 429 or response.status_code >= 500
        return f"HTTP {response.status_code}", retryable

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def __enter__(self) -> WebhookNotifier:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
