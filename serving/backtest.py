"""Routing backtest: replay a synthetic history's leads through several routing strategies.

Leads are replayed in arrival order. Each strategy keeps its own ``ReplayRoster``: an
arriving lead goes to the rep the strategy chooses, or to the queue when no rep with room is
eligible. A lead occupies its rep for its open duration, which is the time from arrival to
its first won or lost stage change in the tables, capped at ``max_open_days`` (leads that
never close in the export are held that long). The queue is worked oldest first whenever a
rep frees capacity or a new rep starts, as ``serving.routing.assign_queued`` does.

Replay starts ``warmup_days`` before the evaluation window, so that reps carry a realistic
load when it opens. Only leads arriving inside the window are evaluated. Outcomes come from
``GroundTruth``: expected won revenue = P(convert | lead, assigned rep, queue wait) x the
lead's won value. A lead still queued at the end of the window earns nothing.

Decisions use only ``ArrivingLead`` values and score records built from the canonical
tables. Ground truth enters after the replay, in ``evaluate_assignments``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.folder import CanonicalTables, read_data_dir
from data.schema import TIERS
from features.config import FeatureConfig
from features.inputs import lead_index
from features.spine import NEVER, latest_event_time, lead_close_micros
from features.windows import timestamp_micros
from leadscore.errors import ConfigError, DataValidationError, InsufficientDataError
from serving.backtest_policies import (
    ArrivingLead,
    Assigner,
    PolicyAssigner,
    ReplayRep,
    ReplayRoster,
    RepLoadSummary,
    RoundRobinAssigner,
    RulesOnlyAssigner,
)
from serving.backtest_scores import (
    fit_rule_fallback,
    intake_features,
    intake_rule_points,
    score_with_bundle,
)
from serving.backtest_truth import GroundTruth, read_ground_truth
from serving.policy_config import RoutingPolicy, normalize_label
from serving.roster import parse_reps
from training.bundle import ScorerBundle

logger = logging.getLogger(__name__)

DEFAULT_HOLDOUT_MONTHS = 6
DEFAULT_WARMUP_DAYS = 60
DEFAULT_MAX_OPEN_DAYS = 90
# Queued leads tried per pass over the queue, as the service's assign_queued(limit=100).
DEFAULT_QUEUE_ATTEMPTS = 100
# Leads in the top share of true expected value count as high value, those in the bottom
# share as low value (nurture), for the fairness rows of the report.
HIGH_VALUE_SHARE = 0.10
LOW_VALUE_SHARE = 0.50
# Reps employed for fewer days of the evaluation window are left out of the Gini coefficients,
# because a few days of leads are too few to measure how evenly a strategy spreads them.
MIN_FAIRNESS_DAYS = 30.0
BASELINE_STRATEGY = "round_robin"
_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class ReportNote:
    """A fact about the backtest setup: a text code of ``serving.backtest_report`` and its parameters."""

    code: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BacktestWindow:
    """Replay start (warm-up), evaluation start and end, all tz-aware UTC."""

    replay_start: datetime
    evaluation_start: datetime
    evaluation_end: datetime

    def __post_init__(self) -> None:
        if not self.replay_start <= self.evaluation_start < self.evaluation_end:
            raise ConfigError(
                f"backtest window is out of order: replay from {self.replay_start.isoformat()}, evaluate "
                f"from {self.evaluation_start.isoformat()} to {self.evaluation_end.isoformat()}; the "
                "evaluation start must lie before the end of the history"
            )


@dataclass(frozen=True)
class ReplayOutcome:
    """The assignments and rep loads of one strategy's replay.

    ``assignments`` has lead_id, arrived_at, assigned_at (NaT while still queued), rep_id
    and tier (missing while still queued), segment (the strategy's segment at arrival, if
    it uses one), queued (whether the lead waited in the queue) and wait_hours.
    """

    strategy: str
    assignments: pd.DataFrame
    loads: tuple[RepLoadSummary, ...]


def replay(
    assigner: Assigner,
    reps: Sequence[ReplayRep],
    arrivals: Sequence[ArrivingLead],
    window: BacktestWindow,
    *,
    balancing_window: timedelta,
    queue_attempts: int = DEFAULT_QUEUE_ATTEMPTS,
) -> ReplayOutcome:
    """Replay ``arrivals`` (in created_at order) through ``assigner`` and return what it did.

    Arrivals outside ``[window.replay_start, window.evaluation_end]`` are rejected so that a
    caller cannot silently replay leads the window does not cover.
    """
    if queue_attempts < 1:
        raise ConfigError(f"queue_attempts must be at least 1; got {queue_attempts}")
    ordered = sorted(arrivals, key=lambda lead: (lead.created_at, lead.lead_id))
    outside = [
        lead.lead_id
        for lead in ordered
        if not window.replay_start <= lead.created_at <= window.evaluation_end
    ]
    if outside:
        raise DataValidationError(
            f"{len(outside)} lead(s) arrive outside the replay window, e.g. {outside[:5]}; "
            "replay only leads created between the replay start and the evaluation end"
        )
    roster = ReplayRoster(
        reps,
        balancing_window=balancing_window,
        window_start=window.evaluation_start,
        window_end=window.evaluation_end,
    )
    run = _Run(assigner, roster, queue_attempts)
    position = 0
    while position < len(ordered) or run.queue:
        next_arrival = ordered[position].created_at if position < len(ordered) else None
        next_change = roster.next_event_time()
        change_first = next_change is not None and (next_arrival is None or next_change < next_arrival)
        if run.queue and change_first and next_change is not None and next_change <= window.evaluation_end:
            roster.advance(next_change)
            run.work_queue(next_change)
            continue
        if next_arrival is None:
            break
        if roster.advance(next_arrival) and run.queue:
            run.work_queue(next_arrival)
        run.route(ordered[position], next_arrival)
        position += 1
    roster.advance(window.evaluation_end)
    logger.info(
        "replayed %d leads with %s: %d queued on arrival, %d still queued at %s",
        len(ordered),
        assigner.name,
        run.queued_on_arrival,
        len(run.queue),
        window.evaluation_end.isoformat(),
    )
    return ReplayOutcome(assigner.name, run.assignment_frame(), tuple(roster.summaries()))


@dataclass
class _Run:
    """State of one strategy's replay: the queue and the assignment rows so far."""

    assigner: Assigner
    roster: ReplayRoster
    queue_attempts: int
    queue: deque[ArrivingLead] = field(default_factory=deque)
    rows: dict[str, dict[str, object]] = field(default_factory=dict)
    queued_on_arrival: int = 0

    def route(self, lead: ArrivingLead, now: datetime) -> None:
        if lead.lead_id in self.rows:
            raise DataValidationError(f"lead {lead.lead_id!r} is replayed twice; lead ids must be unique")
        choice = self.assigner.choose(lead, self.roster, now)
        self.rows[lead.lead_id] = {
            "lead_id": lead.lead_id,
            "arrived_at": lead.created_at,
            "assigned_at": None,
            "rep_id": None,
            "segment": choice.segment,
            "queued": choice.rep_id is None,
        }
        if choice.rep_id is None:
            self.queue.append(lead)
            self.queued_on_arrival += 1
            return
        self._assign(lead, choice.rep_id, now, choice.expected_value)

    def work_queue(self, now: datetime) -> None:
        """Try the oldest ``queue_attempts`` queued leads; those with no eligible rep stay queued."""
        still_waiting: deque[ArrivingLead] = deque()
        attempts = 0
        while self.queue and attempts < self.queue_attempts:
            if not self.roster.has_room_anywhere():
                break
            lead = self.queue.popleft()
            attempts += 1
            choice = self.assigner.choose(lead, self.roster, now)
            if choice.rep_id is None:
                still_waiting.append(lead)
            else:
                self._assign(lead, choice.rep_id, now, choice.expected_value)
        still_waiting.extend(self.queue)
        self.queue = still_waiting

    def _assign(self, lead: ArrivingLead, rep_id: str, now: datetime, expected_value: float) -> None:
        self.roster.assign(rep_id, at=now, open_for=lead.open_duration, expected_value=expected_value)
        row = self.rows[lead.lead_id]
        row["assigned_at"] = now
        row["rep_id"] = rep_id
        row["tier"] = self.roster.rep(rep_id).tier

    def assignment_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(
            list(self.rows.values()),
            columns=["lead_id", "arrived_at", "assigned_at", "rep_id", "tier", "segment", "queued"],
        )
        frame["arrived_at"] = pd.to_datetime(frame["arrived_at"], utc=True)
        frame["assigned_at"] = pd.to_datetime(frame["assigned_at"], utc=True)
        frame["wait_hours"] = (
            frame["assigned_at"] - frame["arrived_at"]
        ).dt.total_seconds() / _SECONDS_PER_HOUR
        return frame


# --- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StrategyResult:
    """Outcome, load and fairness of one strategy over the evaluation window.

    Revenue is in the currency of the orders (CNY for the synthetic history). Shares are
    fractions in [0, 1]; NaN where the denominator is empty.
    """

    strategy: str
    evaluated_leads: int
    expected_conversions: float
    expected_revenue: float
    queued_on_arrival: int
    still_queued: int
    mean_wait_hours: float
    max_wait_hours: float
    high_value_to_senior: float
    low_value_to_newcomer: float
    newcomer_low_value_share: float
    region_served: float
    skill_matched: float
    tier_shares: Mapping[str, float]
    segment_shares: Mapping[str, float]
    reps: pd.DataFrame
    fairness: pd.DataFrame

    @property
    def max_utilization(self) -> float:
        """The highest open leads / capacity any rep reached in the evaluation window."""
        return float(self.reps["max_utilization"].max()) if len(self.reps) else 0.0


def evaluate_assignments(
    outcome: ReplayOutcome,
    arrivals: Sequence[ArrivingLead],
    reps: Sequence[ReplayRep],
    truth: GroundTruth,
    window: BacktestWindow,
) -> StrategyResult:
    """Score one strategy's assignments against ground truth (see the module doc)."""
    lead_info = pd.DataFrame(
        [(lead.lead_id, lead.region, lead.industry) for lead in arrivals],
        columns=["lead_id", "region", "industry"],
    )
    frame = outcome.assignments.merge(lead_info, on="lead_id", how="left", validate="one_to_one")
    frame = frame[(frame["arrived_at"] >= window.evaluation_start).to_numpy()].reset_index(drop=True)
    if frame.empty:
        raise InsufficientDataError(
            f"no lead arrives between {window.evaluation_start.isoformat()} and "
            f"{window.evaluation_end.isoformat()}; move the evaluation start (--from) earlier"
        )
    rep_by_id = {rep.rep_id: rep for rep in reps}
    assigned = frame["rep_id"].notna().to_numpy()

    frame["skill_match"] = [
        _listed(industry, rep_by_id[rep_id].skills) if isinstance(rep_id, str) else False
        for rep_id, industry in zip(frame["rep_id"], frame["industry"], strict=True)
    ]
    frame["region_served"] = [
        _served(region, rep_by_id[rep_id].regions) if isinstance(rep_id, str) else False
        for rep_id, region in zip(frame["rep_id"], frame["region"], strict=True)
    ]

    probability = np.zeros(len(frame), dtype=np.float64)
    if assigned.any():
        chosen = frame[assigned]
        probability[assigned] = truth.conversion_probability(
            chosen["lead_id"], chosen["tier"], chosen["rep_id"], chosen["skill_match"], chosen["wait_hours"]
        )

    value = truth.leads["won_value"].reindex(frame["lead_id"].to_numpy()).to_numpy(dtype=np.float64)
    if np.isnan(value).any():
        raise DataValidationError(
            "ground truth has no won value for some replayed leads; regenerate the truth"
        )
    frame["p_convert_true"] = probability
    frame["expected_revenue"] = probability * value
    return _summarize(outcome, frame, truth, reps)


def _listed(value: object, labels: frozenset[str]) -> bool:
    return isinstance(value, str) and bool(value.strip()) and normalize_label(value) in labels


def _served(region: object, regions: frozenset[str]) -> bool:
    return not regions or _listed(region, regions)


def _summarize(
    outcome: ReplayOutcome, frame: pd.DataFrame, truth: GroundTruth, reps: Sequence[ReplayRep]
) -> StrategyResult:
    assigned = frame["rep_id"].notna()
    true_value = truth.leads["p_convert_regular"].reindex(frame["lead_id"].to_numpy()).to_numpy(
        dtype=np.float64
    ) * truth.leads["won_value"].reindex(frame["lead_id"].to_numpy()).to_numpy(dtype=np.float64)
    high_value = true_value >= np.quantile(true_value, 1.0 - HIGH_VALUE_SHARE)
    low_value = true_value <= np.quantile(true_value, LOW_VALUE_SHARE)
    tiers = frame["tier"].to_numpy(dtype=object)
    newcomer_leads = tiers == "newcomer"
    waits = frame.loc[frame["queued"].to_numpy(dtype=bool) & assigned.to_numpy(), "wait_hours"]

    per_rep = _rep_table(outcome, frame, reps)
    return StrategyResult(
        strategy=outcome.strategy,
        evaluated_leads=len(frame),
        expected_conversions=float(frame["p_convert_true"].sum()),
        expected_revenue=float(frame["expected_revenue"].sum()),
        queued_on_arrival=int(frame["queued"].sum()),
        still_queued=int((~assigned).sum()),
        mean_wait_hours=float(waits.mean()) if len(waits) else 0.0,
        max_wait_hours=float(waits.max()) if len(waits) else 0.0,
        high_value_to_senior=_share(tiers[high_value] == "senior"),
        low_value_to_newcomer=_share(tiers[low_value] == "newcomer"),
        newcomer_low_value_share=_share(low_value[newcomer_leads]),
        region_served=_share(frame.loc[assigned, "region_served"].to_numpy(dtype=bool)),
        skill_matched=_share(frame.loc[assigned, "skill_match"].to_numpy(dtype=bool)),
        tier_shares={tier: _share(tiers[assigned.to_numpy()] == tier) for tier in TIERS},
        segment_shares={
            str(segment): float(count) / len(frame)
            for segment, count in frame["segment"].dropna().value_counts().sort_index().items()
        },
        reps=per_rep,
        fairness=_fairness(per_rep),
    )


def _share(flags: np.ndarray) -> float:
    return float(np.mean(flags)) if len(flags) else float("nan")


def _rep_table(outcome: ReplayOutcome, frame: pd.DataFrame, reps: Sequence[ReplayRep]) -> pd.DataFrame:
    received = (
        frame[frame["rep_id"].notna().to_numpy()]
        .groupby("rep_id")
        .agg(leads=("lead_id", "size"), expected_revenue=("expected_revenue", "sum"))
    )
    rows = []
    for load in outcome.loads:
        rows.append(
            {
                "rep_id": load.rep_id,
                "tier": load.tier,
                "capacity": load.capacity,
                "available_days": load.available_days,
                "leads": int(received["leads"].get(load.rep_id, 0)),
                "expected_revenue": float(received["expected_revenue"].get(load.rep_id, 0.0)),
                "mean_open_leads": load.mean_open_leads,
                "max_open_leads": load.max_open_leads,
                "max_utilization": load.max_utilization,
            }
        )
    known = {rep.rep_id for rep in reps}
    unknown = sorted(set(received.index) - known)
    if unknown:
        raise DataValidationError(f"assignments name rep(s) {unknown[:5]} that are not on the roster")
    return pd.DataFrame(rows)


def _fairness(per_rep: pd.DataFrame) -> pd.DataFrame:
    """Return per tier the Gini coefficient of leads and of expected revenue per available day."""
    rows = []
    for tier in TIERS:
        members = per_rep[(per_rep["tier"] == tier) & (per_rep["available_days"] >= MIN_FAIRNESS_DAYS)]
        days = members["available_days"].to_numpy(dtype=np.float64)
        rows.append(
            {
                "tier": tier,
                "reps": len(members),
                "gini_leads": gini(members["leads"].to_numpy(dtype=np.float64) / days),
                "gini_revenue": gini(members["expected_revenue"].to_numpy(dtype=np.float64) / days),
            }
        )
    return pd.DataFrame(rows)


def gini(values: np.ndarray) -> float:
    """Return the Gini coefficient of non-negative ``values``: 0 equal, near 1 one rep gets all.

    NaN for fewer than two values; 0 when every value is 0.
    """
    data = np.sort(np.asarray(values, dtype=np.float64))
    if len(data) < 2:
        return float("nan")
    if np.any(data < 0) or not np.all(np.isfinite(data)):
        raise DataValidationError("the Gini coefficient needs finite values of 0 or more")
    total = data.sum()
    if total == 0:
        return 0.0
    ranks = np.arange(1, len(data) + 1, dtype=np.float64)
    return float((2.0 * np.sum(ranks * data)) / (len(data) * total) - (len(data) + 1) / len(data))


# --- folder backtest ------------------------------------------------------------------------


@dataclass(frozen=True)
class BacktestSettings:
    """Options of ``run_backtest``; see the module doc for what each changes."""

    evaluation_start: pd.Timestamp | None = None
    holdout_months: int = DEFAULT_HOLDOUT_MONTHS
    warmup_days: int = DEFAULT_WARMUP_DAYS
    max_open_days: int = DEFAULT_MAX_OPEN_DAYS
    queue_attempts: int = DEFAULT_QUEUE_ATTEMPTS
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("holdout_months", "max_open_days", "queue_attempts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1; got {getattr(self, name)}")
        if self.warmup_days < 0:
            raise ConfigError(f"warmup_days must be 0 or more; got {self.warmup_days}")
        if self.seed < 0:
            raise ConfigError(f"seed must be 0 or more; got {self.seed}")
        if self.evaluation_start is not None and self.evaluation_start.tzinfo is None:
            raise ConfigError("evaluation_start must be tz-aware")


@dataclass(frozen=True)
class BacktestResult:
    """Everything the report shows: the setup, the scorer, and one result per strategy."""

    data_dir: str
    window: BacktestWindow
    settings: BacktestSettings
    policy_name: str
    policy_version: str
    scorer: ReportNote
    notes: tuple[ReportNote, ...]
    replayed_leads: int
    reps: int
    value_source: str
    strategies: tuple[StrategyResult, ...]
    generate_command: str | None = None

    def result(self, strategy: str) -> StrategyResult:
        """Return the result of ``strategy`` or raise naming the strategies run."""
        for item in self.strategies:
            if item.strategy == strategy:
                return item
        names = ", ".join(item.strategy for item in self.strategies)
        raise KeyError(f"no strategy {strategy!r} in this backtest; ran {names}")

    def revenue_ratio(self, strategy: str) -> float:
        """Return expected revenue of ``strategy`` divided by round-robin's."""
        baseline = self.result(BASELINE_STRATEGY).expected_revenue
        return self.result(strategy).expected_revenue / baseline if baseline > 0 else float("nan")


def resolve_window(
    tables_end: pd.Timestamp, first_lead: pd.Timestamp, settings: BacktestSettings
) -> BacktestWindow:
    """Return the replay window: evaluation from ``settings.evaluation_start`` (default: the
    last ``holdout_months`` of the history) to the history end, warm-up before it."""
    end = tables_end.tz_convert("UTC")
    start = (
        settings.evaluation_start.tz_convert("UTC")
        if settings.evaluation_start is not None
        else end - pd.DateOffset(months=settings.holdout_months)
    )
    if start <= first_lead:
        raise ConfigError(
            f"evaluation start {start.isoformat()} is not after the first lead ({first_lead.isoformat()}); "
            "the fallback scorer and the warm-up need earlier history, so choose a later --from"
        )
    replay_start = max(start - pd.Timedelta(days=settings.warmup_days), first_lead)
    return BacktestWindow(replay_start.to_pydatetime(), start.to_pydatetime(), end.to_pydatetime())


def build_reps(reps: pd.DataFrame) -> list[ReplayRep]:
    """Validate the roster table with ``serving.roster.parse_reps`` and return ``ReplayRep`` values."""
    return [
        ReplayRep(
            rep_id=rep.rep_id,
            tier=rep.tier,
            capacity=rep.capacity,
            regions=frozenset(normalize_label(item) for item in rep.regions),
            skills=frozenset(normalize_label(item) for item in rep.skills),
            hired_at=rep.hired_at,
            active=rep.active,
        )
        for rep in parse_reps(table_records(reps))
    ]


def table_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return the rows of ``frame`` as dicts keyed by column name."""
    return [{str(key): value for key, value in row.items()} for row in frame.to_dict(orient="records")]


def build_arrivals(
    leads: pd.DataFrame, close_micros: np.ndarray, window: BacktestWindow, max_open_days: int
) -> list[ArrivingLead]:
    """Return the leads created inside the replay window as ``ArrivingLead``, in created_at order.

    A lead's open duration is the time to its first won or lost stage change, at most
    ``max_open_days``. A lead without such a change is held for ``max_open_days``.
    """
    # NOTE: the open duration is the one observed with the historical owner. A lead routed to
    # another tier might close sooner or later, and the replay does not model that.
    created = timestamp_micros(leads["created_at"], column="created_at")
    cap = max_open_days * 86_400_000_000
    closes = np.where(close_micros == NEVER, created + cap, close_micros)
    durations = np.clip(closes - created, 0, cap)
    start = int(pd.Timestamp(window.replay_start).value // 1000)
    end = int(pd.Timestamp(window.evaluation_end).value // 1000)
    inside = np.flatnonzero((created >= start) & (created <= end))
    inside = inside[np.argsort(created[inside], kind="stable")]
    lead_ids = leads["lead_id"].to_numpy(dtype=object)[inside]
    created_at = leads["created_at"].iloc[inside]
    regions = _column_values(leads, "region", inside)
    industries = _column_values(leads, "industry", inside)
    return [
        ArrivingLead(
            lead_id=str(lead_ids[number]),
            created_at=created_at.iloc[number].to_pydatetime(),
            open_duration=timedelta(microseconds=int(durations[position])),
            region=_optional_text(regions[number]),
            industry=_optional_text(industries[number]),
        )
        for number, position in enumerate(inside)
    ]


def _column_values(leads: pd.DataFrame, column: str, positions: np.ndarray) -> np.ndarray:
    if column not in leads.columns:
        return np.full(len(positions), None, dtype=object)
    values: np.ndarray = leads[column].astype(object).to_numpy()[positions]
    return values


def _optional_text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class BacktestPlan:
    """Everything the replay needs, built from the canonical tables alone (no ground truth)."""

    window: BacktestWindow
    arrivals: tuple[ArrivingLead, ...]
    reps: tuple[ReplayRep, ...]
    strategies: tuple[Assigner, ...]
    balancing_window: timedelta
    scorer: ReportNote
    notes: tuple[ReportNote, ...]


def plan_backtest(
    tables: CanonicalTables,
    policy: RoutingPolicy,
    settings: BacktestSettings,
    *,
    bundle: ScorerBundle | None = None,
    bundle_label: str | None = None,
) -> BacktestPlan:
    """Build the window, the arriving leads, the roster and the strategies from ``tables``.

    Strategies are round-robin, rules-only and the policy. With ``bundle`` the policy routes
    on the model's score records, and a fourth strategy, ``leadscore_rule_score``, routes on
    the rule-score fallback. Without a bundle the policy routes on the fallback.
    """
    leads = tables.leads
    window = resolve_window(latest_event_time(tables), pd.Timestamp(leads["created_at"].min()), settings)
    close = lead_close_micros(tables, lead_index(leads))
    arrivals = build_arrivals(leads, close, window, settings.max_open_days)
    if not arrivals:
        raise InsufficientDataError("no lead arrives inside the replay window; check --from")
    arriving_ids = {lead.lead_id for lead in arrivals}
    replayed = leads[leads["lead_id"].astype(str).isin(arriving_ids).to_numpy()].reset_index(drop=True)
    reps = build_reps(tables.reps)

    feature_config = FeatureConfig()
    features = intake_features(tables, replayed, feature_config)
    points = intake_rule_points(features)
    replay_start = pd.Timestamp(window.replay_start)
    fallback = fit_rule_fallback(tables, replay_start, feature_config)
    fallback_scores = fallback.score(features)
    notes = [
        ReportNote(
            "fallback_fit",
            {
                "leads": fallback.training_leads,
                "converted": fallback.converted_training_leads,
                "horizon_days": feature_config.horizon_days,
                "before": f"{replay_start:%Y-%m-%d %H:%M}",
                "ltv_leads": fallback.ltv_leads,
                "ltv_days": fallback.ltv_window_days,
            },
        )
    ]
    strategies: list[Assigner] = [
        RoundRobinAssigner([rep.rep_id for rep in reps], seed=settings.seed),
        RulesOnlyAssigner(policy, points),
    ]
    if bundle is not None:
        model_scores = score_with_bundle(bundle, tables, replayed)
        strategies.append(PolicyAssigner("leadscore", policy, model_scores))
        strategies.append(PolicyAssigner("leadscore_rule_score", policy, fallback_scores))
        scorer = ReportNote("scorer_model", {"model": bundle_label or "-", "bundle": bundle.bundle_version})
        notes.append(_training_window_note(bundle, window))
        if bundle.ltv_model is None:
            notes.append(ReportNote("model_without_ltv", {"ltv": bundle.ltv_fallback}))
    else:
        strategies.append(PolicyAssigner("leadscore", policy, fallback_scores))
        scorer = ReportNote("scorer_fallback")
    logger.info(
        "backtest plan: replay %d leads from %s, evaluate from %s to %s, %d reps, strategies %s",
        len(arrivals),
        window.replay_start.isoformat(),
        window.evaluation_start.isoformat(),
        window.evaluation_end.isoformat(),
        len(reps),
        ", ".join(strategy.name for strategy in strategies),
    )
    return BacktestPlan(
        window=window,
        arrivals=tuple(arrivals),
        reps=tuple(reps),
        strategies=tuple(strategies),
        balancing_window=timedelta(days=policy.balancing.expected_value_window_days),
        scorer=scorer,
        notes=tuple(notes),
    )


def replay_plan(plan: BacktestPlan, settings: BacktestSettings) -> list[ReplayOutcome]:
    """Replay the plan's leads through each of its strategies, each with its own roster."""
    return [
        replay(
            assigner,
            plan.reps,
            plan.arrivals,
            plan.window,
            balancing_window=plan.balancing_window,
            queue_attempts=settings.queue_attempts,
        )
        for assigner in plan.strategies
    ]


def run_backtest(
    data_dir: Path,
    policy: RoutingPolicy,
    settings: BacktestSettings,
    *,
    bundle: ScorerBundle | None = None,
    bundle_label: str | None = None,
) -> BacktestResult:
    """Plan, replay and evaluate the history in ``data_dir``; ground truth is read only to evaluate."""
    tables = read_data_dir(Path(data_dir))
    truth = read_ground_truth(Path(data_dir), tables.leads)
    plan = plan_backtest(tables, policy, settings, bundle=bundle, bundle_label=bundle_label)
    outcomes = replay_plan(plan, settings)
    results = [
        evaluate_assignments(outcome, plan.arrivals, plan.reps, truth, plan.window) for outcome in outcomes
    ]
    notes = list(plan.notes)
    for assigner in plan.strategies:
        if isinstance(assigner, PolicyAssigner) and assigner.shadow_decisions:
            notes.append(
                ReportNote("shadow_replayed", {"strategy": assigner.name, "count": assigner.shadow_decisions})
            )
    return BacktestResult(
        data_dir=str(data_dir),
        window=plan.window,
        settings=settings,
        policy_name=policy.name,
        policy_version=policy.version,
        scorer=plan.scorer,
        notes=tuple(notes),
        replayed_leads=len(plan.arrivals),
        reps=len(plan.reps),
        value_source=truth.value_source,
        strategies=tuple(results),
        generate_command=truth.generate_command,
    )


def _training_window_note(bundle: ScorerBundle, window: BacktestWindow) -> ReportNote:
    """Return whether the model saw history up to a time before or after the replay start."""
    observed = bundle.model_card.get("data_window", {}).get("observed_until")
    if not observed:
        return ReportNote("model_window_unknown")
    until = pd.Timestamp(observed)
    until = until.tz_localize("UTC") if until.tzinfo is None else until.tz_convert("UTC")
    if until > pd.Timestamp(window.replay_start):
        logger.warning(
            "the model saw history until %s, after the replay start %s; its scores are optimistic",
            until.isoformat(),
            pd.Timestamp(window.replay_start).isoformat(),
        )
        return ReportNote("model_window_after", {"until": f"{until:%Y-%m-%d %H:%M}"})
    return ReportNote("model_window_before", {"until": f"{until:%Y-%m-%d %H:%M}"})
