"""The routing store: engine setup, transactions and repository functions over ``store_models``.

``open_store(url)`` returns a ``RoutingStore`` on SQLite or PostgreSQL. SQLite is the
default: a file in WAL mode with a busy timeout. PostgreSQL URLs use psycopg 3
(``postgresql+psycopg://...``), and a bare ``postgresql://`` URL is switched to it.
Nothing is kept in memory between calls, so every worker of the service opens its own
store on the same URL.

Capacity safety. ``RoutingStore.run(work)`` runs ``work(connection)`` in one transaction and
retries it on deadlocks, serialization failures and SQLite lock timeouts. A write
transaction on SQLite starts with ``BEGIN IMMEDIATE``, which takes the database write lock
up front, so two routers never read the same loads. On PostgreSQL ``lock_roster`` takes
``SELECT ... FOR UPDATE`` on every reps row in rep_id order before loads are read, so
routers that can change a rep's load queue behind each other until commit.

The functions that take a ``Connection`` are meant to run inside ``RoutingStore.run``; the
functions that take a ``RoutingStore`` open their own transaction. Logs carry lead and rep
ids only, never rep names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import StaticPool

from leadscore.errors import ConfigError, ConflictError
from serving.policy import Reason, RepState, RosterState, ScoredLead
from serving.store_models import (
    ASSIGNMENT_ACTIVE,
    ASSIGNMENT_CLOSED,
    activities,
    assignments,
    create_schema,
    decision_log,
    lead_contacts,
    leads,
    reps,
    row_to_dict,
    stage_changes,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Decision-log events.
EVENT_ASSIGNED = "assigned"
EVENT_QUEUED = "queued"
EVENT_SHADOW = "shadow"
EVENT_ESCALATED = "escalated"
EVENT_REASSIGNED = "reassigned"
EVENT_RETURNED_TO_QUEUE = "returned_to_queue"
EVENT_CLOSED = "closed"
# Events whose expected value counts as received by the rep in the balancing window.
_RECEIVING_EVENTS = (EVENT_ASSIGNED, EVENT_REASSIGNED, EVENT_SHADOW)

SQLITE_BUSY_TIMEOUT_MS = 30_000
MAX_TRANSACTION_ATTEMPTS = 5
# PostgreSQL SQLSTATEs after which the whole transaction can simply run again.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


@dataclass(frozen=True)
class AssignmentRecord:
    """One row of ``assignments``: a lead's owner (rep or queue) and its SLA state."""

    assignment_id: int
    lead_id: str
    rep_id: str | None
    queue: str | None
    tier: str | None
    segment: str
    team: str | None
    status: str
    assigned_at: datetime
    sla_due_at: datetime | None
    escalated_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    decision_id: int | None
    policy_version: str
    model_version: str | None


@dataclass(frozen=True)
class DecisionRecord:
    """One row of the append-only ``decision_log``."""

    decision_id: int
    created_at: datetime
    event: str
    lead_id: str
    assignment_id: int | None
    rep_id: str | None
    previous_rep_id: str | None
    queue: str | None
    tier: str | None
    segment: str | None
    team: str | None
    expected_value: float | None
    sla_due_at: datetime | None
    reasons: tuple[Reason, ...]
    model_version: str | None
    policy_version: str | None
    shadow: bool


@dataclass(frozen=True)
class OverdueRow:
    """An active assignment past its first-contact deadline, with the owner's manager."""

    assignment: AssignmentRecord
    manager_id: str | None


class RoutingStore:
    """An engine on the routing database plus transaction helpers; share one per process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Connection]:
        """Yield a connection inside one transaction; commit on success, roll back on error."""
        with self.engine.connect() as plain:
            connection = plain.execution_options(leadscore_write=write)
            with connection.begin():
                yield connection

    def run(
        self, work: Callable[[Connection], T], *, write: bool = True, operation: str = "transaction"
    ) -> T:
        """Run ``work`` in one transaction, retrying it on deadlocks and lock timeouts.

        ``work`` must not have effects outside the database, because it can run more than
        once. ``operation`` names the call in retry logs.
        """
        for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
            try:
                with self.transaction(write=write) as connection:
                    return work(connection)
            except DBAPIError as error:
                if not _is_retryable(error) or attempt == MAX_TRANSACTION_ATTEMPTS:
                    raise
                delay = 0.05 * 2 ** (attempt - 1)
                logger.warning(
                    "%s failed on attempt %d of %d (%s); retrying in %.2f s",
                    operation,
                    attempt,
                    MAX_TRANSACTION_ATTEMPTS,
                    type(error.orig).__name__,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def dispose(self) -> None:
        """Close every pooled connection; call before forking worker processes and at shutdown."""
        self.engine.dispose()


def _is_retryable(error: DBAPIError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    return isinstance(error, OperationalError) and "database is locked" in str(error.orig)


def normalize_url(url: str) -> URL:
    """Parse a SQLAlchemy URL, choosing psycopg for a bare ``postgresql://`` URL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"invalid database URL {url!r}; use sqlite:///path/to/routing.db or "
            "postgresql+psycopg://user@host:5432/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported database {backend!r} in URL {parsed.render_as_string(hide_password=True)}; "
            "the routing store runs on sqlite or postgresql"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def open_store(url: str, *, create: bool = True, pool_size: int = 5, max_overflow: int = 10) -> RoutingStore:
    """Open the routing store at ``url`` and, unless ``create`` is False, create its schema.

    ``pool_size`` and ``max_overflow`` size the connection pool of this process; callers
    above pool_size + max_overflow wait for a free connection (30 s, then an error).
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed, pool_size=pool_size, max_overflow=max_overflow)
    else:
        engine = sa.create_engine(
            parsed,
            isolation_level="READ COMMITTED",
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
    store = RoutingStore(engine)
    if create:
        create_schema(engine)
    logger.info(
        "opened routing store %s (%s)", parsed.render_as_string(hide_password=True), parsed.get_backend_name()
    )
    return store


def _sqlite_engine(url: URL, *, pool_size: int, max_overflow: int) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    if not in_memory and url.database is not None:
        # SQLite creates the file but not its folder (the default lives in the work folder).
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if in_memory:
        # One shared connection, or every checkout would see a different empty database.
        engine = sa.create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = sa.create_engine(url, pool_size=pool_size, max_overflow=max_overflow)

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN instead of the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        write = connection.get_execution_options().get("leadscore_write", True)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


# ---------------------------------------------------------------------------------------
# Roster state for routing (call inside RoutingStore.run)


def lock_roster(connection: Connection) -> None:
    """Lock every reps row until commit so no other router changes loads in between.

    SQLite needs nothing here: ``BEGIN IMMEDIATE`` already holds the database write lock.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(reps.c.rep_id).order_by(reps.c.rep_id).with_for_update())


def open_loads(connection: Connection) -> dict[str, int]:
    query = (
        sa.select(assignments.c.rep_id, sa.func.count())
        .where(assignments.c.status == ASSIGNMENT_ACTIVE, assignments.c.rep_id.is_not(None))
        .group_by(assignments.c.rep_id)
    )
    return {rep_id: int(count) for rep_id, count in connection.execute(query)}


def _expected_value_received(connection: Connection, since: datetime) -> dict[str, float]:
    query = (
        sa.select(decision_log.c.rep_id, sa.func.sum(decision_log.c.expected_value))
        .where(
            decision_log.c.rep_id.is_not(None),
            decision_log.c.event.in_(_RECEIVING_EVENTS),
            decision_log.c.created_at >= since,
        )
        .group_by(decision_log.c.rep_id)
    )
    return {rep_id: float(total or 0.0) for rep_id, total in connection.execute(query)}


def read_roster_state(connection: Connection, *, now: datetime, window_days: float) -> RosterState:
    """Return every rep with its open leads and the expected value it received since now - window."""
    loads = open_loads(connection)
    received = _expected_value_received(connection, now - timedelta(days=window_days))
    states = []
    for row in connection.execute(sa.select(reps).order_by(reps.c.rep_id)):
        states.append(
            RepState(
                rep_id=row.rep_id,
                tier=row.tier,
                capacity=row.capacity,
                open_leads=loads.get(row.rep_id, 0),
                active=bool(row.active),
                regions=frozenset(row.regions or ()),
                skills=frozenset(row.skills or ()),
                expected_value_window=received.get(row.rep_id, 0.0),
                manager_id=row.manager_id,
            )
        )
    return RosterState(tuple(states))


def rep_manager(connection: Connection, rep_id: str) -> str | None:
    """Return the manager id of ``rep_id`` (None when the rep has none or is unknown)."""
    return connection.execute(sa.select(reps.c.manager_id).where(reps.c.rep_id == rep_id)).scalar()


# ---------------------------------------------------------------------------------------
# Leads, assignments and the decision log (call inside RoutingStore.run)


def insert_lead(connection: Connection, lead: ScoredLead, *, received_at: datetime) -> None:
    """Store the score record a lead was routed with; a second insert raises IntegrityError."""
    connection.execute(
        sa.insert(leads).values(
            lead_id=lead.lead_id,
            p_convert=lead.p_convert,
            ltv=lead.ltv,
            expected_value=lead.expected_value,
            grade=lead.grade,
            score_segment=lead.segment,
            region=lead.region,
            industry=lead.industry,
            model_version=lead.model_version,
            received_at=received_at,
        )
    )


def get_lead(connection: Connection, lead_id: str) -> ScoredLead | None:
    """Return the stored score record of ``lead_id`` or None."""
    row = connection.execute(sa.select(leads).where(leads.c.lead_id == lead_id)).first()
    if row is None:
        return None
    return ScoredLead(
        lead_id=row.lead_id,
        p_convert=row.p_convert,
        ltv=row.ltv,
        expected_value=row.expected_value,
        model_version=row.model_version,
        grade=row.grade,
        segment=row.score_segment,
        region=row.region,
        industry=row.industry,
    )


def append_decision(
    connection: Connection,
    *,
    event: str,
    lead_id: str,
    created_at: datetime,
    reasons: Sequence[Reason],
    shadow: bool = False,
    assignment_id: int | None = None,
    rep_id: str | None = None,
    previous_rep_id: str | None = None,
    queue: str | None = None,
    tier: str | None = None,
    segment: str | None = None,
    team: str | None = None,
    expected_value: float | None = None,
    sla_due_at: datetime | None = None,
    model_version: str | None = None,
    policy_version: str | None = None,
) -> int:
    """Append one entry to the decision log and return its decision_id."""
    result = connection.execute(
        sa.insert(decision_log)
        .values(
            created_at=created_at,
            event=event,
            lead_id=lead_id,
            assignment_id=assignment_id,
            rep_id=rep_id,
            previous_rep_id=previous_rep_id,
            queue=queue,
            tier=tier,
            segment=segment,
            team=team,
            expected_value=expected_value,
            sla_due_at=sla_due_at,
            reasons=[reason.to_dict() for reason in reasons],
            model_version=model_version,
            policy_version=policy_version,
            shadow=shadow,
        )
        .returning(decision_log.c.decision_id)
    )
    return int(result.scalar_one())


def insert_assignment(
    connection: Connection,
    *,
    lead_id: str,
    rep_id: str | None,
    queue: str | None,
    tier: str | None,
    segment: str,
    team: str | None,
    assigned_at: datetime,
    sla_due_at: datetime | None,
    policy_version: str,
    model_version: str | None,
) -> int:
    """Insert the active assignment of a lead and return its id.

    Raises IntegrityError when the lead already has an active assignment.
    """
    result = connection.execute(
        sa.insert(assignments)
        .values(
            lead_id=lead_id,
            rep_id=rep_id,
            queue=queue,
            tier=tier,
            segment=segment,
            team=team,
            status=ASSIGNMENT_ACTIVE,
            assigned_at=assigned_at,
            sla_due_at=sla_due_at,
            policy_version=policy_version,
            model_version=model_version,
        )
        .returning(assignments.c.assignment_id)
    )
    return int(result.scalar_one())


def link_decision(connection: Connection, assignment_id: int, decision_id: int) -> None:
    """Point an assignment at the decision-log entry that created it."""
    connection.execute(
        sa.update(assignments)
        .where(assignments.c.assignment_id == assignment_id)
        .values(decision_id=decision_id)
    )


def close_assignment(connection: Connection, assignment_id: int, *, closed_at: datetime, reason: str) -> bool:
    """Close an active assignment, freeing the rep's capacity; return False if it was not active."""
    result = connection.execute(
        sa.update(assignments)
        .where(assignments.c.assignment_id == assignment_id, assignments.c.status == ASSIGNMENT_ACTIVE)
        .values(status=ASSIGNMENT_CLOSED, closed_at=closed_at, close_reason=reason)
    )
    return result.rowcount == 1


def mark_escalated(connection: Connection, assignment_id: int, *, escalated_at: datetime) -> bool:
    """Record that an active assignment's overdue SLA was escalated; False if it already was."""
    result = connection.execute(
        sa.update(assignments)
        .where(
            assignments.c.assignment_id == assignment_id,
            assignments.c.status == ASSIGNMENT_ACTIVE,
            assignments.c.escalated_at.is_(None),
        )
        .values(escalated_at=escalated_at)
    )
    return result.rowcount == 1


def _assignment_from_row(row: Mapping[str, Any]) -> AssignmentRecord:
    return AssignmentRecord(**{name: row[name] for name in AssignmentRecord.__dataclass_fields__})


def get_assignment(connection: Connection, assignment_id: int) -> AssignmentRecord | None:
    """Return the assignment with ``assignment_id`` or None."""
    row = connection.execute(
        sa.select(assignments).where(assignments.c.assignment_id == assignment_id)
    ).first()
    return _assignment_from_row(row_to_dict(row)) if row is not None else None


def current_assignment(connection: Connection, lead_id: str) -> AssignmentRecord | None:
    """Return the lead's active assignment, else its most recent closed one, else None."""
    query = (
        sa.select(assignments)
        .where(assignments.c.lead_id == lead_id)
        .order_by((assignments.c.status == ASSIGNMENT_ACTIVE).desc(), assignments.c.assignment_id.desc())
        .limit(1)
    )
    row = connection.execute(query).first()
    return _assignment_from_row(row_to_dict(row)) if row is not None else None


def active_assignment(connection: Connection, lead_id: str) -> AssignmentRecord | None:
    """Return the lead's active assignment or None."""
    row = connection.execute(
        sa.select(assignments).where(
            assignments.c.lead_id == lead_id, assignments.c.status == ASSIGNMENT_ACTIVE
        )
    ).first()
    return _assignment_from_row(row_to_dict(row)) if row is not None else None


def queued_assignments(connection: Connection, *, limit: int | None = None) -> list[AssignmentRecord]:
    """Return active assignments that wait in a queue, oldest first."""
    query = (
        sa.select(assignments)
        .where(assignments.c.status == ASSIGNMENT_ACTIVE, assignments.c.rep_id.is_(None))
        .order_by(assignments.c.assigned_at, assignments.c.assignment_id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [_assignment_from_row(row_to_dict(row)) for row in connection.execute(query)]


def count_queued(store: RoutingStore) -> int:
    """Return how many active assignments wait in a queue."""
    query = (
        sa.select(sa.func.count())
        .select_from(assignments)
        .where(assignments.c.status == ASSIGNMENT_ACTIVE, assignments.c.rep_id.is_(None))
    )
    return int(store.run(lambda connection: connection.execute(query).scalar_one(), write=False))


def _decision_from_row(row: Mapping[str, Any]) -> DecisionRecord:
    values = {name: row[name] for name in DecisionRecord.__dataclass_fields__ if name != "reasons"}
    values["shadow"] = bool(values["shadow"])
    reasons = tuple(Reason.from_dict(item) for item in row["reasons"] or ())
    return DecisionRecord(reasons=reasons, **values)


def get_decision(connection: Connection, decision_id: int) -> DecisionRecord | None:
    """Return the decision-log entry with ``decision_id`` or None."""
    row = connection.execute(sa.select(decision_log).where(decision_log.c.decision_id == decision_id)).first()
    return _decision_from_row(row_to_dict(row)) if row is not None else None


def latest_decision(connection: Connection, lead_id: str, *, events: Sequence[str]) -> DecisionRecord | None:
    """Return the lead's most recent decision-log entry among ``events`` or None."""
    row = connection.execute(
        sa.select(decision_log)
        .where(decision_log.c.lead_id == lead_id, decision_log.c.event.in_(events))
        .order_by(decision_log.c.decision_id.desc())
        .limit(1)
    ).first()
    return _decision_from_row(row_to_dict(row)) if row is not None else None


def list_decisions(
    store: RoutingStore, *, lead_id: str | None = None, event: str | None = None, limit: int = 1000
) -> list[DecisionRecord]:
    """Return decision-log entries in the order they were written, filtered by lead and event."""

    def read(connection: Connection) -> list[DecisionRecord]:
        query = sa.select(decision_log).order_by(decision_log.c.decision_id).limit(limit)
        if lead_id is not None:
            query = query.where(decision_log.c.lead_id == lead_id)
        if event is not None:
            query = query.where(decision_log.c.event == event)
        return [_decision_from_row(row_to_dict(row)) for row in connection.execute(query)]

    return store.run(read, write=False, operation="decision log read")


def list_assignments(store: RoutingStore, *, active_only: bool = True) -> list[AssignmentRecord]:
    """Return assignments in id order, only the active ones unless ``active_only`` is False."""

    def read(connection: Connection) -> list[AssignmentRecord]:
        query = sa.select(assignments).order_by(assignments.c.assignment_id)
        if active_only:
            query = query.where(assignments.c.status == ASSIGNMENT_ACTIVE)
        return [_assignment_from_row(row_to_dict(row)) for row in connection.execute(query)]

    return store.run(read, write=False, operation="assignment read")


# ---------------------------------------------------------------------------------------
# Activities, stage changes and first contacts (call inside RoutingStore.run)


def insert_activity(
    connection: Connection,
    *,
    activity_id: str,
    lead_id: str,
    rep_id: str | None,
    activity_type: str,
    direction: str,
    occurred_at: datetime,
    recorded_at: datetime,
) -> bool:
    """Store an activity; return False for a repeat of a stored one, raise ConflictError on a clash."""
    stored = connection.execute(sa.select(activities).where(activities.c.activity_id == activity_id)).first()
    if stored is not None:
        same = (
            stored.lead_id == lead_id
            and stored.rep_id == rep_id
            and stored.type == activity_type
            and stored.direction == direction
            and stored.occurred_at == occurred_at
        )
        if not same:
            raise ConflictError(
                f"activity {activity_id!r} is already stored with different content "
                f"(lead {stored.lead_id!r}); send each activity once with a unique activity_id"
            )
        return False
    connection.execute(
        sa.insert(activities).values(
            activity_id=activity_id,
            lead_id=lead_id,
            rep_id=rep_id,
            type=activity_type,
            direction=direction,
            occurred_at=occurred_at,
            recorded_at=recorded_at,
        )
    )
    return True


def insert_stage_change(
    connection: Connection, *, lead_id: str, stage: str, changed_at: datetime, recorded_at: datetime
) -> bool:
    """Store a stage change; return False when the same (lead, stage, time) is already stored."""
    stored = connection.execute(
        sa.select(stage_changes.c.stage_change_id).where(
            stage_changes.c.lead_id == lead_id,
            stage_changes.c.stage == stage,
            stage_changes.c.changed_at == changed_at,
        )
    ).first()
    if stored is not None:
        return False
    connection.execute(
        sa.insert(stage_changes).values(
            lead_id=lead_id, stage=stage, changed_at=changed_at, recorded_at=recorded_at
        )
    )
    return True


def first_contact_at(connection: Connection, lead_id: str) -> datetime | None:
    """Return when the lead was first contacted, or None."""
    return connection.execute(
        sa.select(lead_contacts.c.first_contact_at).where(lead_contacts.c.lead_id == lead_id)
    ).scalar()


def record_first_contact(
    connection: Connection,
    *,
    lead_id: str,
    contacted_at: datetime,
    source: str,
    source_id: str,
    now: datetime,
) -> bool:
    """Keep the earliest contact of a lead; return True when this contact is now the first one."""
    stored = first_contact_at(connection, lead_id)
    values = {"first_contact_at": contacted_at, "source": source, "source_id": source_id, "recorded_at": now}
    if stored is None:
        connection.execute(sa.insert(lead_contacts).values(lead_id=lead_id, **values))
        return True
    if contacted_at < stored:
        connection.execute(
            sa.update(lead_contacts).where(lead_contacts.c.lead_id == lead_id).values(**values)
        )
        return True
    return False


def overdue_rows(connection: Connection, *, now: datetime) -> list[OverdueRow]:
    """Return active rep assignments whose deadline passed before ``now`` with no contact by ``now``.

    Ordered by deadline, oldest first.
    """
    contacted = (
        sa.select(lead_contacts.c.lead_id)
        .where(lead_contacts.c.lead_id == assignments.c.lead_id, lead_contacts.c.first_contact_at <= now)
        .exists()
    )
    query = (
        sa.select(assignments, reps.c.manager_id)
        .join(reps, reps.c.rep_id == assignments.c.rep_id)
        .where(
            assignments.c.status == ASSIGNMENT_ACTIVE,
            assignments.c.sla_due_at.is_not(None),
            assignments.c.sla_due_at < now,
            ~contacted,
        )
        .order_by(assignments.c.sla_due_at, assignments.c.assignment_id)
    )
    rows = []
    for row in connection.execute(query):
        mapping = row_to_dict(row)
        rows.append(OverdueRow(_assignment_from_row(mapping), mapping["manager_id"]))
    return rows
