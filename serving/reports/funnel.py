"""Funnel report numbers: per creation month, conversion between adjacent stages and time in each stage.

Stage-pair conversion from stage k to k+1 is computed over the leads that reached k:

* advanced: the lead reached k+1 or a later stage;
* lost: the lead's furthest stage is k and it was then marked lost;
* stalled: the furthest stage is k, the lead is still open and it entered k more than
  ``stall_days`` before the data end;
* open: the furthest stage is k, the lead is still open and entered k within ``stall_days``;
* inferred: advanced, but with no recorded entry into k+1 (the CRM skipped that stage).

conversion = advanced / (reached - open). Open leads are left out of the rate because their
result at this stage is not known yet, while stalled leads count as not advanced. Recent
months therefore have fewer decided leads, and their rates move as those leads progress.

Dwell time in stage k is the time from the first entry into k to the lead's next stage change,
whether that change moved it forward or marked it lost. Leads still in k have no dwell time
yet and are counted as ``in_stage``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from data.schema import DEFAULT_TIMEZONE
from data.stages import FUNNEL, Stage
from serving.reports.stage_history import STATUS_LOST, STATUS_OPEN, StageHistory

logger = logging.getLogger(__name__)

ALL_MONTHS = "all"
DEFAULT_STALL_DAYS = 30.0
FUNNEL_PAIRS: tuple[tuple[Stage, Stage], ...] = tuple(pairwise(FUNNEL))
# Stages a lead can dwell in before moving on; won is where the funnel ends.
DWELL_STAGES: tuple[Stage, ...] = FUNNEL[:-1]
PAIR_COLUMNS = ("reached", "advanced", "lost", "stalled", "open", "inferred")
_SECONDS_PER_DAY = 86_400.0
_WON_ORDER = len(FUNNEL) - 1


@dataclass(frozen=True)
class FunnelOptions:
    """Settings of the funnel report."""

    timezone: str = DEFAULT_TIMEZONE
    stall_days: float = DEFAULT_STALL_DAYS


@dataclass(frozen=True)
class FunnelResult:
    """The funnel numbers; every frame has a ``month`` column where ``ALL_MONTHS`` is the total.

    ``reach``: month, stage, leads (that reached the stage or a later one).
    ``pairs``: month, from_stage, to_stage, reached, advanced, lost, stalled, open, inferred,
    conversion.
    ``dwell``: month, stage, left (leads that moved on), in_stage, median_days.
    """

    reach: pd.DataFrame
    pairs: pd.DataFrame
    dwell: pd.DataFrame
    as_of: pd.Timestamp
    options: FunnelOptions

    def months(self) -> list[str]:
        """Return the creation months in order, without the total."""
        return sorted(month for month in self.reach["month"].unique() if month != ALL_MONTHS)

    def overall(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return the total rows of one of the frames."""
        return frame.loc[frame["month"] == ALL_MONTHS].reset_index(drop=True)


@dataclass(frozen=True)
class StallPoints:
    """Stall points: the weakest stage pair, the stage with most stalled leads and the slowest stage."""

    weakest_pair: tuple[str, str, float] | None
    most_stalled: tuple[str, int] | None
    slowest_stage: tuple[str, float] | None


def _sum_by_month(frame: pd.DataFrame) -> pd.DataFrame:
    monthly = frame.groupby("month", sort=True).sum()
    monthly.loc[ALL_MONTHS] = frame.drop(columns="month").sum()
    return monthly.rename_axis("month").reset_index()


def _reach(leads: pd.DataFrame) -> pd.DataFrame:
    columns = {stage.code: leads["furthest_order"] >= stage.order for stage in FUNNEL}
    counts = _sum_by_month(pd.DataFrame({"month": leads["month"], **columns}))
    reach = counts.melt(id_vars="month", var_name="stage", value_name="leads")
    reach["leads"] = reach["leads"].astype("int64")
    return reach


def _pairs(history: StageHistory, as_of: pd.Timestamp, stall_days: float) -> pd.DataFrame:
    leads = history.leads
    recorded = (
        history.entries.assign(recorded=True)
        .pivot(index="lead_id", columns="stage", values="recorded")
        .reindex(index=leads.index, columns=[stage.code for stage in FUNNEL])
        .notna()
    )
    furthest = leads["furthest_order"].to_numpy()
    status = leads["status"].to_numpy()
    age_days = (as_of - leads["current_entered_at"]).dt.total_seconds().to_numpy() / _SECONDS_PER_DAY
    still_open = status == STATUS_OPEN
    stalled_lead = still_open & (age_days > stall_days)

    frames = []
    # FUNNEL is listed in stage order, so a pair's position is the order of its first stage.
    for order, (source, target) in enumerate(FUNNEL_PAIRS):
        at_stage = furthest == order
        flags = pd.DataFrame(
            {
                "month": leads["month"].to_numpy(),
                "reached": furthest >= order,
                "advanced": furthest > order,
                "lost": at_stage & (status == STATUS_LOST),
                "stalled": at_stage & stalled_lead,
                "open": at_stage & still_open & ~stalled_lead,
                "inferred": (furthest > order) & ~recorded[target.code].to_numpy(),
            }
        )
        counts = _sum_by_month(flags)
        counts.insert(1, "from_stage", source.code)
        counts.insert(2, "to_stage", target.code)
        frames.append(counts)

    pairs = pd.concat(frames, ignore_index=True)
    pairs[list(PAIR_COLUMNS)] = pairs[list(PAIR_COLUMNS)].astype("int64")
    decided = pairs["reached"] - pairs["open"]
    pairs["conversion"] = np.where(decided > 0, pairs["advanced"] / decided.where(decided > 0, 1), np.nan)
    return pairs


def _dwell(history: StageHistory) -> pd.DataFrame:
    entries = history.entries
    next_entry = entries.groupby("lead_id", sort=False)["entered_at"].shift(-1)
    days = (next_entry - entries["entered_at"]).dt.total_seconds() / _SECONDS_PER_DAY
    dwell = pd.DataFrame(
        {
            "month": entries["lead_id"].map(history.leads["month"]).to_numpy(),
            "stage": entries["stage"].to_numpy(),
            "order": entries["order"].to_numpy(),
            "days": days.to_numpy(),
        }
    )
    dwell = dwell.loc[dwell["order"] < _WON_ORDER]  # won and lost end the funnel: no dwell time
    dwell["left"] = dwell["days"].notna()
    dwell["in_stage"] = ~dwell["left"]

    def summarize(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
        grouped = frame.groupby(keys, sort=True)
        return pd.DataFrame(
            {
                "left": grouped["left"].sum(),
                "in_stage": grouped["in_stage"].sum(),
                "median_days": grouped["days"].median(),
            }
        ).reset_index()

    monthly = summarize(dwell, ["month", "stage"])
    overall = summarize(dwell, ["stage"])
    overall.insert(0, "month", ALL_MONTHS)
    result = pd.concat([monthly, overall], ignore_index=True)
    # Every month gets a row for every stage, so tables line up even where no lead was in a stage.
    months = [*sorted(set(result["month"]) - {ALL_MONTHS}), ALL_MONTHS]
    grid = pd.MultiIndex.from_product(
        [months, [stage.code for stage in DWELL_STAGES]], names=["month", "stage"]
    )
    result = result.set_index(["month", "stage"]).reindex(grid).reset_index()
    result[["left", "in_stage"]] = result[["left", "in_stage"]].fillna(0).astype("int64")
    return result


def compute_funnel(history: StageHistory, *, as_of: pd.Timestamp, options: FunnelOptions) -> FunnelResult:
    """Return stage reach, stage-pair conversion and dwell times per creation month and in total."""
    leads = history.leads
    result = FunnelResult(
        reach=_reach(leads),
        pairs=_pairs(history, as_of, options.stall_days),
        dwell=_dwell(history),
        as_of=as_of,
        options=options,
    )
    logger.info("funnel computed for %d leads in %d months", len(leads), len(result.months()))
    return result


def stall_points(result: FunnelResult) -> StallPoints:
    """Return the weakest stage pair, the stage with most stalled leads and the slowest stage overall."""
    pairs = result.overall(result.pairs).dropna(subset=["conversion"])
    weakest = None
    if not pairs.empty:
        row = pairs.iloc[int(pairs["conversion"].to_numpy().argmin())]
        weakest = (str(row["from_stage"]), str(row["to_stage"]), float(row["conversion"]))
    stalled = result.overall(result.pairs)
    most_stalled = None
    if not stalled.empty and stalled["stalled"].max() > 0:
        row = stalled.iloc[int(stalled["stalled"].to_numpy().argmax())]
        most_stalled = (str(row["from_stage"]), int(row["stalled"]))
    dwell = result.overall(result.dwell).dropna(subset=["median_days"])
    slowest = None
    if not dwell.empty:
        row = dwell.iloc[int(dwell["median_days"].to_numpy().argmax())]
        slowest = (str(row["stage"]), float(row["median_days"]))
    return StallPoints(weakest_pair=weakest, most_stalled=most_stalled, slowest_stage=slowest)
