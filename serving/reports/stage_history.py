"""Each lead's path through the funnel, shared by the reports: stage entries, furthest stage, outcome.

A lead enters ``lead`` when it is created, even when the CRM recorded no stage change for it.
A lead that skipped stages (lead → won in a one-call sale) counts as having passed through
the skipped stages, so the furthest stage reached decides every "reached stage k" count.
Only the first entry into each stage is kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from data.stages import FUNNEL, LOST, STAGE_CODES, WON
from leadscore.errors import SchemaError

logger = logging.getLogger(__name__)

STATUS_WON = "won"
STATUS_LOST = "lost"
STATUS_OPEN = "open"
# ``lost`` has no funnel position; entries use this order so sorting puts it after every stage.
LOST_ORDER = len(FUNNEL)
STAGE_ORDER: dict[str, int] = {stage.code: stage.order for stage in FUNNEL if stage.order is not None}
STAGE_ORDER[LOST.code] = LOST_ORDER
FIRST_STAGE = FUNNEL[0].code


@dataclass(frozen=True)
class StageHistory:
    """Stage entries and per-lead outcomes of one data folder.

    ``leads`` is indexed by lead_id with columns created_at, month (``YYYY-MM`` of creation in
    the report time zone), furthest_order, current_entered_at (entry into the furthest
    stage), won_at, lost_at and status (won, lost or open). ``entries`` has one row per lead
    and stage entered: lead_id, stage, order, entered_at. ``notes`` counts input rows left
    out or flagged, keyed by the report message that explains why.
    """

    leads: pd.DataFrame
    entries: pd.DataFrame
    notes: dict[str, int] = field(default_factory=dict)


def require_columns(frame: pd.DataFrame, table: str, columns: tuple[str, ...]) -> None:
    """Raise SchemaError naming the columns of ``table`` that ``frame`` lacks."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise SchemaError(
            f"{table}.parquet lacks column(s) {', '.join(missing)}; "
            "rebuild the data folder with 'leadscore data import' or 'leadscore data generate'"
        )


def _clean_leads(leads: pd.DataFrame, timezone: str, dropped: dict[str, int]) -> pd.DataFrame:
    require_columns(leads, "leads", ("lead_id", "created_at"))
    frame = leads[["lead_id", "created_at"]].copy()
    frame["lead_id"] = frame["lead_id"].astype("str")
    missing_time = frame["created_at"].isna()
    dropped["report.dropped.lead_without_created_at"] = int(missing_time.sum())
    frame = frame.loc[~missing_time]
    duplicated = frame["lead_id"].duplicated(keep="first")
    dropped["report.dropped.duplicate_lead_id"] = int(duplicated.sum())
    frame = frame.loc[~duplicated]
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["month"] = month_labels(frame["created_at"], timezone)
    return frame.set_index("lead_id")


def month_labels(times: pd.Series, timezone: str) -> pd.Series:
    """Return ``YYYY-MM`` of each timestamp in ``timezone`` (formatting only the distinct months)."""
    local = times.dt.tz_convert(timezone)
    numbers = local.dt.year * 100 + local.dt.month
    labels = {number: f"{number // 100:04d}-{number % 100:02d}" for number in numbers.unique()}
    return numbers.map(labels).astype("str")


def _clean_stage_changes(
    stage_changes: pd.DataFrame, leads: pd.DataFrame, dropped: dict[str, int]
) -> pd.DataFrame:
    require_columns(stage_changes, "stage_changes", ("lead_id", "stage", "changed_at"))
    frame = stage_changes[["lead_id", "stage", "changed_at"]].copy()
    frame["lead_id"] = frame["lead_id"].astype("str")
    frame["stage"] = frame["stage"].astype("str")

    missing_time = frame["changed_at"].isna()
    dropped["report.dropped.stage_change_without_time"] = int(missing_time.sum())
    frame = frame.loc[~missing_time]
    # Index lookups are hash-based, while Series.isin on Arrow-backed strings loops in Python.
    unknown_stage = pd.Index(STAGE_CODES).get_indexer(pd.Index(frame["stage"])) < 0
    dropped["report.dropped.unknown_stage"] = int(unknown_stage.sum())
    frame = frame.loc[~unknown_stage]
    unknown_lead = leads.index.get_indexer(pd.Index(frame["lead_id"])) < 0
    dropped["report.dropped.stage_change_unknown_lead"] = int(unknown_lead.sum())
    frame = frame.loc[~unknown_lead]
    frame["changed_at"] = pd.to_datetime(frame["changed_at"], utc=True)
    return frame


def build_stage_history(stage_changes: pd.DataFrame, leads: pd.DataFrame, *, timezone: str) -> StageHistory:
    """Return the first entry into each stage and the outcome of every lead."""
    dropped: dict[str, int] = {}
    lead_frame = _clean_leads(leads, timezone, dropped)
    changes = _clean_stage_changes(stage_changes, lead_frame, dropped)
    created = lead_frame["created_at"].to_numpy(dtype="datetime64[us]")
    lead_positions = lead_frame.index.get_indexer(pd.Index(changes["lead_id"]))
    before_creation = changes["changed_at"].to_numpy(dtype="datetime64[us]") < created[lead_positions]
    # Kept, but counted: a stage entered before the lead existed points at a clock or import problem.
    dropped["report.note.stage_change_before_creation"] = int(before_creation.sum())

    captured = pd.DataFrame(
        {
            "lead_id": lead_frame.index.to_numpy(),
            "stage": FIRST_STAGE,
            "changed_at": lead_frame["created_at"].reset_index(drop=True),
        }
    )
    events = pd.concat([captured, changes], ignore_index=True)
    entries = (
        events.groupby(["lead_id", "stage"], sort=False, observed=True)["changed_at"]
        .min()
        .rename("entered_at")
        .reset_index()
    )
    entries["order"] = entries["stage"].map(STAGE_ORDER).astype("int64")
    entries = entries.sort_values(["lead_id", "entered_at", "order"], kind="stable").reset_index(drop=True)

    funnel_entries = entries.loc[entries["order"] < LOST_ORDER]
    furthest_rows = funnel_entries.loc[funnel_entries.groupby("lead_id", sort=False)["order"].idxmax()]
    furthest = furthest_rows.set_index("lead_id")
    by_stage = entries.pivot(index="lead_id", columns="stage", values="entered_at")

    outcome = lead_frame.copy()
    outcome["furthest_order"] = furthest["order"].reindex(outcome.index).astype("int64")
    outcome["current_entered_at"] = furthest["entered_at"].reindex(outcome.index)
    outcome["won_at"] = _stage_column(by_stage, WON, outcome.index)
    outcome["lost_at"] = _stage_column(by_stage, LOST.code, outcome.index)
    lost = outcome["lost_at"].notna() & (outcome["lost_at"] >= outcome["current_entered_at"])
    outcome["status"] = STATUS_OPEN
    outcome.loc[lost, "status"] = STATUS_LOST
    outcome.loc[outcome["won_at"].notna(), "status"] = STATUS_WON

    logger.info(
        "stage history: %d leads, %d stage entries, rows left out or flagged %s",
        len(outcome),
        len(entries),
        {key: count for key, count in dropped.items() if count},
    )
    return StageHistory(leads=outcome, entries=entries, notes=dropped)


def _stage_column(by_stage: pd.DataFrame, stage: str, index: pd.Index) -> pd.Series:
    if stage in by_stage.columns:
        return by_stage[stage].reindex(index)
    return pd.Series(pd.NaT, index=index, dtype="datetime64[us, UTC]")
