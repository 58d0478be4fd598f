"""Reps report numbers: per rep and tier, leads and expected value received, first-contact SLA, conversion.

A receipt is one lead received by one rep. From the data folder, each lead is received once by
its ``owner_rep_id``. From the routing database (``serving.reports.reps_db``), each assignment
to a rep is a receipt, so a reassigned lead counts for every rep that received it.

First-contact SLA from the data folder: the clock starts at the lead's created_at and the
deadline is ``sla_hours`` later (wall-clock hours, as in the routing service). The first contact
is the earliest outbound activity of a contact type (the routing policy's default types) or the
first entry into contacted or a later stage, as in ``serving.sla``. A receipt is

* met: first contact at or before the deadline;
* breached: first contact after the deadline, or none and the deadline passed before the
  lead was closed (won or lost) and before the data end;
* pending: no contact yet and the deadline is after the data end;
* not applicable: closed before the deadline without a contact, or no activities recorded at all.

SLA compliance = met / (met + breached).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from data.schema import DEFAULT_TIMEZONE, TIERS
from data.stages import FUNNEL
from serving.policy_config import SlaRules
from serving.reports.scores import ScoreTable
from serving.reports.stage_history import STATUS_OPEN, STATUS_WON, StageHistory, require_columns

logger = logging.getLogger(__name__)

SLA_MET = "met"
SLA_BREACHED = "breached"
SLA_PENDING = "pending"
SLA_NOT_APPLICABLE = "not_applicable"
UNKNOWN_TIER = "unknown"
TIER_ORDER: tuple[str, ...] = (*TIERS, UNKNOWN_TIER)
RECEIPT_COLUMNS: tuple[str, ...] = (
    "lead_id",
    "rep_id",
    "tier",
    "expected_value",
    "sla_status",
    "won",
    "open",
)
_DEFAULT_SLA = SlaRules()

ReceiptSource = Literal["data_folder", "routing_db"]


@dataclass(frozen=True)
class RepsOptions:
    """Settings of the reps report; the SLA defaults are those of the routing policy."""

    timezone: str = DEFAULT_TIMEZONE
    sla_hours: float = _DEFAULT_SLA.default_hours
    contact_types: tuple[str, ...] = _DEFAULT_SLA.contact_types


@dataclass(frozen=True)
class Receipts:
    """One row per lead received by a rep (``RECEIPT_COLUMNS``) and the roster to report on.

    ``roster`` has rep_id, tier, capacity and active. ``notes`` counts rows left out or
    flagged, keyed by the report message that explains why.
    """

    frame: pd.DataFrame
    roster: pd.DataFrame
    source: ReceiptSource
    as_of: pd.Timestamp
    sla_measured: bool
    notes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RepsResult:
    """Per-rep and per-tier numbers.

    ``by_rep``: rep_id, tier, capacity, active, leads, leads_per_capacity, expected_value,
    mean_expected_value, sla_met, sla_breached, sla_pending, sla_compliance, won, open,
    conversion. Reps of the roster without receipts have zero leads.
    ``by_tier``: tier, reps, capacity, leads, lead_share, capacity_share, expected_value,
    expected_value_share, mean_expected_value, leads_per_capacity_spread, sla_met,
    sla_breached, sla_compliance, won, conversion.
    """

    by_rep: pd.DataFrame
    by_tier: pd.DataFrame
    receipts: Receipts


def clean_roster(reps: pd.DataFrame) -> pd.DataFrame:
    """Return rep_id, tier, capacity and active of a reps table, one row per rep_id."""
    if reps.empty:
        return pd.DataFrame(
            {
                "rep_id": pd.Series(dtype="str"),
                "tier": pd.Series(dtype="str"),
                "capacity": pd.Series(dtype="float64"),
                "active": pd.Series(dtype="boolean"),
            }
        )
    require_columns(reps, "reps", ("rep_id", "tier", "capacity", "active"))
    roster = reps[["rep_id", "tier", "capacity", "active"]].drop_duplicates("rep_id").copy()
    roster["rep_id"] = roster["rep_id"].astype("str")
    roster["tier"] = roster["tier"].astype("str")
    roster["capacity"] = roster["capacity"].astype("float64")
    roster["active"] = roster["active"].astype("boolean")
    return roster.reset_index(drop=True)


def first_contact_times(
    activities: pd.DataFrame, history: StageHistory, contact_types: tuple[str, ...]
) -> pd.Series:
    """Return each lead's first contact: an outbound contact-type activity or entering contacted or later."""
    # Entering contacted (order 1) or any later funnel stage is a contact; entering lost is not.
    by_stage = history.entries.loc[history.entries["order"].between(1, len(FUNNEL) - 1)]
    first = by_stage.groupby("lead_id")["entered_at"].min()
    if not activities.empty:
        require_columns(activities, "activities", ("lead_id", "occurred_at", "type", "direction"))
        contact = (activities["direction"] == "outbound") & activities["type"].isin(list(contact_types))
        contacts = activities.loc[contact.fillna(False).to_numpy(), ["lead_id", "occurred_at"]]
        by_activity = contacts.groupby(contacts["lead_id"].astype("str"))["occurred_at"].min()
        first = pd.concat([first, pd.to_datetime(by_activity, utc=True)]).groupby(level=0).min()
    return first.reindex(history.leads.index)


def sla_from_data_folder(
    activities: pd.DataFrame, history: StageHistory, options: RepsOptions, as_of: pd.Timestamp
) -> pd.Series:
    """Return the SLA status of each lead (index lead_id), measured from created_at."""
    leads = history.leads
    if activities.empty:
        return pd.Series(SLA_NOT_APPLICABLE, index=leads.index, dtype="str")
    contact = first_contact_times(activities, history, options.contact_types)
    deadline = leads["created_at"] + pd.Timedelta(hours=options.sla_hours)
    closed_at = leads[["won_at", "lost_at"]].min(axis=1)
    met = contact.notna() & (contact <= deadline)
    late = contact.notna() & (contact > deadline)
    deadline_passed = (deadline < as_of) & (closed_at.isna() | (closed_at > deadline))
    status = pd.Series(SLA_PENDING, index=leads.index, dtype="str")
    status[contact.isna() & deadline_passed.to_numpy()] = SLA_BREACHED
    status[contact.isna() & closed_at.notna() & (closed_at <= deadline)] = SLA_NOT_APPLICABLE
    status[late] = SLA_BREACHED
    status[met] = SLA_MET
    return status


def receipts_from_data_folder(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    reps: pd.DataFrame,
    history: StageHistory,
    *,
    scores: ScoreTable | None,
    options: RepsOptions,
    as_of: pd.Timestamp,
) -> Receipts:
    """Return one receipt per lead with an owner_rep_id, tiers from the reps table."""
    roster = clean_roster(reps)
    notes: dict[str, int] = {}
    outcome = history.leads
    if "owner_rep_id" in leads.columns:
        owners = leads.drop_duplicates("lead_id").set_index("lead_id")["owner_rep_id"].reindex(outcome.index)
    else:
        owners = pd.Series(pd.NA, index=outcome.index, dtype="str")
    notes["report.reps.note.lead_without_owner"] = int(owners.isna().sum())
    owned = owners.notna().to_numpy()

    frame = pd.DataFrame({"lead_id": outcome.index[owned], "rep_id": owners[owned].astype("str").to_numpy()})
    tiers = roster.set_index("rep_id")["tier"]
    frame["tier"] = frame["rep_id"].map(tiers).fillna(UNKNOWN_TIER).astype("str")
    notes["report.reps.note.owner_not_in_roster"] = int((frame["tier"] == UNKNOWN_TIER).sum())
    if scores is not None:
        frame["expected_value"] = scores.scores["expected_value"].reindex(frame["lead_id"]).to_numpy()
    else:
        frame["expected_value"] = np.nan
    sla = sla_from_data_folder(activities, history, options, as_of)
    frame["sla_status"] = sla.reindex(frame["lead_id"]).to_numpy()
    status = outcome["status"].reindex(frame["lead_id"]).to_numpy()
    frame["won"] = status == STATUS_WON
    frame["open"] = status == STATUS_OPEN
    return Receipts(
        frame=frame[list(RECEIPT_COLUMNS)],
        roster=roster,
        source="data_folder",
        as_of=as_of,
        sla_measured=not activities.empty,
        notes=notes,
    )


def _spread(values: pd.Series) -> float:
    """Return the coefficient of variation (standard deviation / mean) of ``values``, NaN when undefined."""
    finite = values.dropna()
    if len(finite) < 2 or finite.mean() == 0:
        return float("nan")
    return float(finite.std(ddof=0) / finite.mean())


def _count_receipts(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = frame.assign(
        sla_met=frame["sla_status"] == SLA_MET,
        sla_breached=frame["sla_status"] == SLA_BREACHED,
        sla_pending=frame["sla_status"] == SLA_PENDING,
    ).groupby(keys, sort=False)
    counts = grouped.agg(
        leads=("lead_id", "size"),
        expected_value=("expected_value", lambda values: values.sum(min_count=1)),
        scored=("expected_value", "count"),
        sla_met=("sla_met", "sum"),
        sla_breached=("sla_breached", "sum"),
        sla_pending=("sla_pending", "sum"),
        won=("won", "sum"),
        open=("open", "sum"),
    )
    return counts.reset_index()


def _rates(table: pd.DataFrame) -> None:
    judged = table["sla_met"] + table["sla_breached"]
    table["sla_compliance"] = np.where(judged > 0, table["sla_met"] / judged.where(judged > 0, 1), np.nan)
    table["conversion"] = np.where(
        table["leads"] > 0, table["won"] / table["leads"].where(table["leads"] > 0, 1), np.nan
    )
    table["mean_expected_value"] = np.where(
        table["scored"] > 0, table["expected_value"] / table["scored"].where(table["scored"] > 0, 1), np.nan
    )


def summarize_reps(receipts: Receipts) -> RepsResult:
    """Return per-rep and per-tier numbers of ``receipts``; roster reps without receipts get zeros."""
    per_rep = _count_receipts(receipts.frame, ["rep_id", "tier"])
    roster = receipts.roster
    by_rep = roster.merge(per_rep, on="rep_id", how="outer", suffixes=("", "_received"))
    by_rep["tier"] = by_rep["tier"].fillna(by_rep["tier_received"]).fillna(UNKNOWN_TIER)
    by_rep = by_rep.drop(columns="tier_received")
    counts = ["leads", "scored", "sla_met", "sla_breached", "sla_pending", "won", "open"]
    by_rep[counts] = by_rep[counts].fillna(0).astype("int64")
    by_rep["leads_per_capacity"] = by_rep["leads"] / by_rep["capacity"].where(by_rep["capacity"] > 0)
    _rates(by_rep)
    by_rep["tier"] = pd.Categorical(by_rep["tier"], categories=TIER_ORDER, ordered=True)
    by_rep = by_rep.sort_values(["tier", "leads", "rep_id"], ascending=[True, False, True]).reset_index(
        drop=True
    )
    by_rep["tier"] = by_rep["tier"].astype("str")

    by_tier = _count_receipts(receipts.frame, ["tier"])
    tier_roster = by_rep.groupby("tier", sort=False).agg(
        reps=("rep_id", "size"),
        capacity=("capacity", lambda values: values.sum(min_count=1)),
        leads_per_capacity_spread=("leads_per_capacity", _spread),
    )
    by_tier = tier_roster.reset_index().merge(by_tier, on="tier", how="left")
    tier_counts = ["leads", "scored", "sla_met", "sla_breached", "sla_pending", "won", "open"]
    by_tier[tier_counts] = by_tier[tier_counts].fillna(0).astype("int64")
    total_leads = by_tier["leads"].sum()
    total_capacity = by_tier["capacity"].sum()
    total_value = by_tier["expected_value"].sum()
    by_tier["lead_share"] = by_tier["leads"] / total_leads if total_leads else np.nan
    by_tier["capacity_share"] = by_tier["capacity"] / total_capacity if total_capacity else np.nan
    by_tier["expected_value_share"] = by_tier["expected_value"] / total_value if total_value else np.nan
    _rates(by_tier)
    by_tier["tier"] = pd.Categorical(by_tier["tier"], categories=TIER_ORDER, ordered=True)
    by_tier = by_tier.sort_values("tier").reset_index(drop=True)
    by_tier["tier"] = by_tier["tier"].astype("str")
    logger.info(
        "reps summary: %d reps, %d receipts from %s", len(by_rep), len(receipts.frame), receipts.source
    )
    return RepsResult(by_rep=by_rep, by_tier=by_tier, receipts=receipts)
