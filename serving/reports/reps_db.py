"""Rep receipts from the routing database: every assignment of a lead to a rep, with its SLA outcome.

The expected value received is the one stored when the lead was routed (``leads.expected_value``
of the routing store). SLA per assignment, against its own ``sla_due_at``:

* met: the lead's first contact (``lead_contacts``) is at or before the deadline;
* breached: not met, and the deadline passed while the assignment was still active
  (before ``closed_at``, or before ``now`` when it is still active);
* pending: not met, still active and the deadline is after ``now``;
* not applicable: no deadline (queued), or the assignment was closed before its deadline.

Won leads are those with a ``won`` stage change in the routing store or in the data folder.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.stages import WON
from serving.reports.reps import (
    RECEIPT_COLUMNS,
    SLA_BREACHED,
    SLA_MET,
    SLA_NOT_APPLICABLE,
    SLA_PENDING,
    UNKNOWN_TIER,
    Receipts,
    clean_roster,
)
from serving.reports.stage_history import STATUS_OPEN, STATUS_WON, StageHistory
from serving.store import RoutingStore
from serving.store_models import assignments, lead_contacts, leads, reps, stage_changes

logger = logging.getLogger(__name__)

_TIME_COLUMNS = ("assigned_at", "sla_due_at", "closed_at", "first_contact_at")


def _frame(connection: Connection, query: sa.Select[Any], columns: list[str]) -> pd.DataFrame:
    rows = [dict(row._mapping) for row in connection.execute(query)]
    return pd.DataFrame(rows, columns=columns)


def _read_tables(connection: Connection) -> dict[str, pd.DataFrame]:
    received = (
        sa.select(
            assignments.c.assignment_id,
            assignments.c.lead_id,
            assignments.c.rep_id,
            assignments.c.tier,
            assignments.c.assigned_at,
            assignments.c.sla_due_at,
            assignments.c.closed_at,
            leads.c.expected_value,
            lead_contacts.c.first_contact_at,
        )
        .join(leads, leads.c.lead_id == assignments.c.lead_id)
        .outerjoin(lead_contacts, lead_contacts.c.lead_id == assignments.c.lead_id)
        .where(assignments.c.rep_id.is_not(None))
        .order_by(assignments.c.assignment_id)
    )
    roster = sa.select(reps.c.rep_id, reps.c.tier, reps.c.capacity, reps.c.active).order_by(reps.c.rep_id)
    won = sa.select(stage_changes.c.lead_id).where(stage_changes.c.stage == WON).distinct()
    return {
        "assignments": _frame(
            connection,
            received,
            [
                "assignment_id",
                "lead_id",
                "rep_id",
                "tier",
                "assigned_at",
                "sla_due_at",
                "closed_at",
                "expected_value",
                "first_contact_at",
            ],
        ),
        "reps": _frame(connection, roster, ["rep_id", "tier", "capacity", "active"]),
        "won": _frame(connection, won, ["lead_id"]),
    }


def assignment_sla(frame: pd.DataFrame, now: pd.Timestamp) -> pd.Series:
    """Return the SLA status of each assignment row (see the module doc)."""
    due = frame["sla_due_at"]
    contact = frame["first_contact_at"]
    end = frame["closed_at"].fillna(now)
    met = due.notna() & contact.notna() & (contact <= due)
    breached = due.notna() & ~met & (due < end)
    pending = due.notna() & ~met & ~breached & frame["closed_at"].isna()
    status = np.select([met, breached, pending], [SLA_MET, SLA_BREACHED, SLA_PENDING], SLA_NOT_APPLICABLE)
    return pd.Series(status, index=frame.index, dtype="str")


def receipts_from_routing_db(store: RoutingStore, history: StageHistory, *, now: pd.Timestamp) -> Receipts:
    """Read every rep assignment of the routing store and return it as receipts."""
    tables = store.run(_read_tables, write=False, operation="reps report read")
    frame = tables["assignments"]
    for column in _TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["expected_value"] = frame["expected_value"].astype("float64")
    roster = clean_roster(tables["reps"])

    tiers = roster.set_index("rep_id")["tier"]
    frame["tier"] = frame["tier"].fillna(frame["rep_id"].map(tiers)).fillna(UNKNOWN_TIER).astype("str")
    frame["sla_status"] = assignment_sla(frame, now)
    won_in_db = set(tables["won"]["lead_id"].astype("str"))
    status = history.leads["status"].reindex(frame["lead_id"]).to_numpy()
    frame["won"] = frame["lead_id"].isin(won_in_db).to_numpy() | (status == STATUS_WON)
    frame["open"] = (status == STATUS_OPEN) & ~frame["won"].to_numpy()
    notes = {"report.reps.note.assignment_lead_not_in_data": int(pd.isna(status).sum())}
    logger.info("read %d rep assignments and %d reps from the routing store", len(frame), len(roster))
    return Receipts(
        frame=frame[list(RECEIPT_COLUMNS)].reset_index(drop=True),
        roster=roster,
        source="routing_db",
        as_of=now,
        sla_measured=True,
        notes=notes,
    )
