"""Tables of the routing store (SQLAlchemy Core) and ``create_schema``.

The same tables serve SQLite and PostgreSQL:

* ``reps``: the roster. Names are stored here and nowhere else, and never logged.
* ``leads``: the score record each lead was routed with, kept so that ``sla check`` can
  reassign it and a queued lead can be routed again without the model.
* ``assignments``: who owns each lead. At most one row per lead has ``status = 'active'``
  (partial unique index). ``rep_id`` is NULL while the lead waits in ``queue``.
* ``decision_log``: append-only history of every decision, escalation and reassignment.
  Triggers reject UPDATE and DELETE on both databases.
* ``activities`` and ``stage_changes``: what the CRM reported about each lead.
* ``lead_contacts``: the first contact of each lead, which closes its SLA timer.

All timestamps are stored in UTC through ``UtcDateTime``, which rejects naive values.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine

logger = logging.getLogger(__name__)

ASSIGNMENT_ACTIVE = "active"
ASSIGNMENT_CLOSED = "closed"


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and read back tz-aware; naive values are rejected."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive timestamp {value.isoformat()} cannot be stored; attach a time zone")
        value = value.astimezone(dt.UTC)
        # SQLite has no time zone type: store naive UTC, so that text comparison orders correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# SQLite only makes INTEGER PRIMARY KEY columns auto-increment.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

# The largest value an INTEGER column holds on PostgreSQL (a signed 32-bit integer).
MAX_INTEGER = 2_147_483_647

reps = sa.Table(
    "reps",
    metadata,
    sa.Column("rep_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("regions", sa.JSON, nullable=False),
    sa.Column("skills", sa.JSON, nullable=False),
    sa.Column("hired_at", UtcDateTime, nullable=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("manager_id", sa.String(64), nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("capacity >= 0", name="ck_reps_capacity"),
    sa.CheckConstraint("tier IN ('senior', 'regular', 'newcomer')", name="ck_reps_tier"),
)

leads = sa.Table(
    "leads",
    metadata,
    sa.Column("lead_id", sa.String(128), primary_key=True),
    sa.Column("p_convert", sa.Float, nullable=False),
    sa.Column("ltv", sa.Float, nullable=False),
    sa.Column("expected_value", sa.Float, nullable=False),
    sa.Column("grade", sa.String(16), nullable=True),
    sa.Column("score_segment", sa.String(16), nullable=True),
    sa.Column("region", sa.String(200), nullable=True),
    sa.Column("industry", sa.String(200), nullable=True),
    sa.Column("model_version", sa.String(128), nullable=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
)

decision_log = sa.Table(
    "decision_log",
    metadata,
    sa.Column("decision_id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("lead_id", sa.String(128), nullable=False),
    sa.Column("assignment_id", sa.BigInteger, nullable=True),
    sa.Column("rep_id", sa.String(64), nullable=True),
    sa.Column("previous_rep_id", sa.String(64), nullable=True),
    sa.Column("queue", sa.String(64), nullable=True),
    sa.Column("tier", sa.String(16), nullable=True),
    sa.Column("segment", sa.String(16), nullable=True),
    sa.Column("team", sa.String(100), nullable=True),
    sa.Column("expected_value", sa.Float, nullable=True),
    sa.Column("sla_due_at", UtcDateTime, nullable=True),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("model_version", sa.String(128), nullable=True),
    sa.Column("policy_version", sa.String(64), nullable=True),
    sa.Column("shadow", sa.Boolean, nullable=False),
    sa.Index("ix_decision_log_lead", "lead_id", "decision_id"),
    sa.Index("ix_decision_log_rep_time", "rep_id", "created_at"),
)

assignments = sa.Table(
    "assignments",
    metadata,
    sa.Column("assignment_id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("lead_id", sa.String(128), sa.ForeignKey("leads.lead_id"), nullable=False),
    sa.Column("rep_id", sa.String(64), sa.ForeignKey("reps.rep_id"), nullable=True),
    sa.Column("queue", sa.String(64), nullable=True),
    sa.Column("tier", sa.String(16), nullable=True),
    sa.Column("segment", sa.String(16), nullable=False),
    sa.Column("team", sa.String(100), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("assigned_at", UtcDateTime, nullable=False),
    sa.Column("sla_due_at", UtcDateTime, nullable=True),
    sa.Column("escalated_at", UtcDateTime, nullable=True),
    sa.Column("closed_at", UtcDateTime, nullable=True),
    sa.Column("close_reason", sa.String(32), nullable=True),
    sa.Column("decision_id", sa.BigInteger, nullable=True),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=True),
    sa.CheckConstraint("status IN ('active', 'closed')", name="ck_assignments_status"),
    sa.CheckConstraint("(rep_id IS NULL) <> (queue IS NULL)", name="ck_assignments_owner"),
    sa.Index(
        "uq_assignments_active_lead",
        "lead_id",
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    ),
    sa.Index("ix_assignments_rep_status", "rep_id", "status"),
    sa.Index("ix_assignments_status_due", "status", "sla_due_at"),
)

activities = sa.Table(
    "activities",
    metadata,
    sa.Column("activity_id", sa.String(128), primary_key=True),
    sa.Column("lead_id", sa.String(128), nullable=False, index=True),
    sa.Column("rep_id", sa.String(64), nullable=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
)

stage_changes = sa.Table(
    "stage_changes",
    metadata,
    sa.Column("stage_change_id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("lead_id", sa.String(128), nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("changed_at", UtcDateTime, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("lead_id", "stage", "changed_at", name="uq_stage_changes_event"),
)

lead_contacts = sa.Table(
    "lead_contacts",
    metadata,
    sa.Column("lead_id", sa.String(128), primary_key=True),
    sa.Column("first_contact_at", UtcDateTime, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("source_id", sa.String(128), nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
)

# Arbitrary constant that names the advisory lock held while the schema is created.
_SCHEMA_LOCK_KEY = 7_310_442_901

_SQLITE_APPEND_ONLY = (
    """CREATE TRIGGER IF NOT EXISTS decision_log_no_update BEFORE UPDATE ON decision_log
    BEGIN SELECT RAISE(ABORT, 'decision_log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS decision_log_no_delete BEFORE DELETE ON decision_log
    BEGIN SELECT RAISE(ABORT, 'decision_log is append-only'); END""",
)

_POSTGRESQL_APPEND_ONLY = (
    """CREATE OR REPLACE FUNCTION decision_log_reject_change() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'decision_log is append-only'; END $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE TRIGGER decision_log_append_only BEFORE UPDATE OR DELETE ON decision_log
    FOR EACH ROW EXECUTE FUNCTION decision_log_reject_change()""",
)


def create_schema(engine: Engine) -> None:
    """Create every routing table, index and the append-only triggers; safe to run again.

    On PostgreSQL the objects go into the first schema of the connection's search_path.
    ``CREATE OR REPLACE TRIGGER`` needs PostgreSQL 14 or later.
    """
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Workers that start together would race between "table exists?" and CREATE.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})")
        metadata.create_all(connection, checkfirst=True)
        statements: tuple[str, ...] = ()
        if engine.dialect.name == "sqlite":
            statements = _SQLITE_APPEND_ONLY
        elif engine.dialect.name == "postgresql":
            statements = _POSTGRESQL_APPEND_ONLY
        else:
            logger.warning(
                "database dialect %s has no append-only trigger for decision_log; "
                "only the store's code keeps it append-only",
                engine.dialect.name,
            )
        for statement in statements:
            connection.exec_driver_sql(statement)


def row_to_dict(row: sa.Row[Any]) -> dict[str, Any]:
    """Return a result row as a plain dict keyed by column name."""
    return dict(row._mapping)
