"""The replay roster and the routing strategies that a routing backtest compares.

Every strategy gets its own ``ReplayRoster``: the reps with their open leads at the replay
clock. A lead occupies its rep from assignment for its open duration, and the roster
refuses any assignment to a rep without room, so no strategy can exceed a capacity.

Strategies receive only the data a router has when a lead arrives: the lead's id, arrival
time, region and industry, plus the inputs they were built with (score records or rule
points, computed from the canonical tables). None of them receives ground truth.

- ``RoundRobinAssigner``: the next rep in a fixed rotation that is employed and has room.
- ``PolicyAssigner``: ``serving.policy.decide`` on the lead's score record.
- ``RulesOnlyAssigner``: ``decide`` with the segment set by the hand-made points table of
  ``training.baselines.rules`` at intake (``rule_segment``), and no score.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from leadscore.errors import DataValidationError
from serving.policy import RepState, RosterState, ScoredLead, decide
from serving.policy_config import RoutingPolicy, Segment

logger = logging.getLogger(__name__)

# Rule-score points (summed factor points of training.baselines.rules.DEFAULT_RULES) at which
# the rules-only strategy calls a lead high value or standard. At intake only channel, company
# size and declared budget earn points (0-50 with the default table). On the synthetic history
# these cuts put about 10 % of leads in high value and 45 % in standard.
RULES_HIGH_VALUE_POINTS = 30.0
RULES_STANDARD_POINTS = 10.0


@dataclass(frozen=True)
class ReplayRep:
    """A roster row as the replay uses it: who the rep is and from when the rep takes leads.

    NOTE: a rep with ``active`` false takes no lead at any time of the replay, because the
    roster export has no leave date. Reps who left during the replay window are missing.
    """

    rep_id: str
    tier: str
    capacity: int
    regions: frozenset[str] = frozenset()
    skills: frozenset[str] = frozenset()
    hired_at: datetime | None = None
    active: bool = True


@dataclass(frozen=True)
class ArrivingLead:
    """The data a router has about an arriving lead, plus how long the lead stays open.

    ``open_duration`` is simulation input, not decision input: the lead occupies its rep for
    this long after assignment.
    """

    lead_id: str
    created_at: datetime
    open_duration: timedelta
    region: str | None = None
    industry: str | None = None

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise DataValidationError(f"lead {self.lead_id!r}: created_at must be tz-aware")
        if self.open_duration < timedelta(0):
            raise DataValidationError(
                f"lead {self.lead_id!r}: open_duration {self.open_duration} is negative"
            )


@dataclass(frozen=True)
class Choice:
    """A strategy's decision for one lead: a rep id (None for the queue) and the segment used."""

    rep_id: str | None
    segment: Segment | None = None
    expected_value: float = 0.0


class Assigner(Protocol):
    """A routing strategy: picks a rep with room for a lead, or None to queue it."""

    name: str

    def choose(self, lead: ArrivingLead, roster: ReplayRoster, now: datetime) -> Choice: ...


@dataclass
class _RepLoad:
    """Load bookkeeping of one rep inside the evaluation window."""

    open_leads: int = 0
    last_change: datetime | None = None
    open_lead_seconds: float = 0.0
    max_open_leads: int = 0
    window_ev: float = 0.0
    window_leads: int = 0


@dataclass(frozen=True)
class RepLoadSummary:
    """Load of one rep over the evaluation window.

    ``available_days`` counts the days of the window in which the rep was employed.
    ``mean_open_leads`` is the time-weighted mean over those days.
    """

    rep_id: str
    tier: str
    capacity: int
    available_days: float
    mean_open_leads: float
    max_open_leads: int

    @property
    def max_utilization(self) -> float:
        """Maximum open leads divided by capacity (0 for a rep with capacity 0)."""
        return self.max_open_leads / self.capacity if self.capacity > 0 else 0.0


class ReplayRoster:
    """Reps with their open leads at the replay clock; the clock only moves forward.

    ``advance(now)`` activates reps hired by ``now``, releases leads whose open duration has
    ended and ages the expected value in the balancing window. Loads are integrated over the
    evaluation window ``[window_start, window_end]`` for the report.
    """

    def __init__(
        self,
        reps: Sequence[ReplayRep],
        *,
        balancing_window: timedelta,
        window_start: datetime,
        window_end: datetime,
    ) -> None:
        if window_end < window_start:
            raise DataValidationError(
                f"evaluation window ends ({window_end.isoformat()}) before it starts "
                f"({window_start.isoformat()})"
            )
        self._reps = {rep.rep_id: rep for rep in reps}
        if len(self._reps) != len(reps):
            raise DataValidationError("the replay roster lists a rep id twice; rep ids must be unique")
        self._balancing_window = balancing_window
        self._window_start = window_start
        self._window_end = window_end
        self._loads = {rep.rep_id: _RepLoad() for rep in reps}
        self._releases: list[tuple[datetime, int, str]] = []
        self._sequence = 0
        # Expected value each rep received, oldest first, for the balancing window.
        self._received: deque[tuple[datetime, str, float]] = deque()
        self._pending_hires: deque[tuple[datetime, str]] = deque(
            sorted((rep.hired_at, rep.rep_id) for rep in reps if rep.active and rep.hired_at is not None)
        )
        self._now: datetime | None = None
        self._state_cache: RosterState | None = None
        self._rep_states: dict[str, RepState] = {}

    @property
    def rep_ids(self) -> tuple[str, ...]:
        return tuple(self._reps)

    def rep(self, rep_id: str) -> RepState:
        """Return the current routing view of ``rep_id``."""
        self._refresh()
        return self._rep_states[rep_id]

    def state(self) -> RosterState:
        """Return the roster at the replay clock in the form ``decide`` reads."""
        self._refresh()
        if self._state_cache is None:
            self._state_cache = RosterState(tuple(self._rep_states[rep_id] for rep_id in self._reps))
        return self._state_cache

    def has_room_anywhere(self) -> bool:
        """Return whether any employed rep is below capacity."""
        return any(rep.has_room for rep in self.state().reps)

    def next_event_time(self) -> datetime | None:
        """Return when the next lead is released or rep hired, or None when neither is pending."""
        times = [queue[0][0] for queue in (self._releases, self._pending_hires) if queue]
        return min(times) if times else None

    def advance(self, now: datetime) -> int:
        """Move the clock to ``now``; return how many leads were released and reps hired on the way."""
        if self._now is not None and now < self._now:
            raise DataValidationError(
                f"the replay clock cannot go back from {self._now.isoformat()} to {now.isoformat()}"
            )
        self._now = now
        changes = 0
        while self._releases and self._releases[0][0] <= now:
            at, _, rep_id = heapq.heappop(self._releases)
            self._change_load(rep_id, at, -1)
            changes += 1
        while self._pending_hires and self._pending_hires[0][0] <= now:
            _, rep_id = self._pending_hires.popleft()
            self._forget(rep_id)
            changes += 1
        horizon = now - self._balancing_window
        while self._received and self._received[0][0] <= horizon:
            _, rep_id, expected_value = self._received.popleft()
            load = self._loads[rep_id]
            load.window_ev -= expected_value
            load.window_leads -= 1
            if load.window_leads == 0:
                load.window_ev = 0.0  # drop rounding residue once the window is empty
            self._forget(rep_id)
        return changes

    def assign(self, rep_id: str, *, at: datetime, open_for: timedelta, expected_value: float) -> None:
        """Give ``rep_id`` one more open lead from ``at`` until ``at + open_for``.

        Raises DataValidationError when the rep is unknown, not employed or at capacity, so
        a strategy that ignores capacity fails loudly instead of overloading a rep.
        """
        if rep_id not in self._reps:
            raise DataValidationError(f"strategy chose unknown rep {rep_id!r}")
        state = self.rep(rep_id)
        if not state.has_room:
            raise DataValidationError(
                f"strategy chose rep {rep_id!r} at {at.isoformat()} with {state.open_leads} of "
                f"{state.capacity} open leads (active={state.active}); a rep takes leads only below capacity"
            )
        self._change_load(rep_id, at, +1)
        load = self._loads[rep_id]
        load.window_ev += expected_value
        load.window_leads += 1
        self._received.append((at, rep_id, expected_value))
        self._sequence += 1
        heapq.heappush(self._releases, (at + open_for, self._sequence, rep_id))

    def summaries(self) -> list[RepLoadSummary]:
        """Return each rep's load over the evaluation window, closing the window at its end."""
        result: list[RepLoadSummary] = []
        for rep_id, rep in self._reps.items():
            load = self._loads[rep_id]
            self._accumulate(load, self._window_end)
            available = self._available_seconds(rep)
            mean = load.open_lead_seconds / available if available > 0 else 0.0
            result.append(
                RepLoadSummary(
                    rep_id=rep_id,
                    tier=rep.tier,
                    capacity=rep.capacity,
                    available_days=available / 86400.0,
                    mean_open_leads=mean,
                    max_open_leads=load.max_open_leads,
                )
            )
        return result

    # --- internals --------------------------------------------------------------------------

    def _employed(self, rep: ReplayRep) -> bool:
        if not rep.active or self._now is None:
            return False
        return rep.hired_at is None or rep.hired_at <= self._now

    def _refresh(self) -> None:
        if self._now is None:
            raise DataValidationError("the replay roster has no clock yet; call advance(now) first")
        if len(self._rep_states) == len(self._reps):
            return
        for rep_id, rep in self._reps.items():
            if rep_id in self._rep_states:
                continue
            load = self._loads[rep_id]
            self._rep_states[rep_id] = RepState(
                rep_id=rep_id,
                tier=rep.tier,
                capacity=rep.capacity,
                open_leads=load.open_leads,
                active=self._employed(rep),
                regions=rep.regions,
                skills=rep.skills,
                expected_value_window=load.window_ev,
            )

    def _forget(self, rep_id: str) -> None:
        """Drop the cached routing view of ``rep_id`` after its load or employment changed."""
        self._rep_states.pop(rep_id, None)
        self._state_cache = None

    def _change_load(self, rep_id: str, at: datetime, delta: int) -> None:
        self._forget(rep_id)
        load = self._loads[rep_id]
        self._accumulate(load, at)
        load.open_leads += delta
        if self._window_start <= at <= self._window_end:
            load.max_open_leads = max(load.max_open_leads, load.open_leads)

    def _accumulate(self, load: _RepLoad, at: datetime) -> None:
        """Add the open-lead time since the last change that falls inside the window."""
        if load.last_change is not None:
            start = max(load.last_change, self._window_start)
            end = min(at, self._window_end)
            if end > start:
                load.open_lead_seconds += load.open_leads * (end - start).total_seconds()
                load.max_open_leads = max(load.max_open_leads, load.open_leads)
        load.last_change = at

    def _available_seconds(self, rep: ReplayRep) -> float:
        if not rep.active:
            return 0.0
        start = self._window_start if rep.hired_at is None else max(rep.hired_at, self._window_start)
        return max((self._window_end - start).total_seconds(), 0.0)


class RoundRobinAssigner:
    """The next rep in a fixed rotation that is employed and below capacity.

    The rotation is the rep ids in an order shuffled with ``seed``, as a CRM keeps an
    arbitrary but fixed order. Tier, region and value play no part.
    """

    name = "round_robin"

    def __init__(self, rep_ids: Sequence[str], *, seed: int) -> None:
        if not rep_ids:
            raise DataValidationError("round-robin needs at least one rep")
        order = np.random.default_rng(seed).permutation(len(rep_ids))
        self._rotation = [rep_ids[int(position)] for position in order]
        self._next = 0

    def choose(self, lead: ArrivingLead, roster: ReplayRoster, now: datetime) -> Choice:
        count = len(self._rotation)
        for step in range(count):
            position = (self._next + step) % count
            rep_id = self._rotation[position]
            if roster.rep(rep_id).has_room:
                self._next = (position + 1) % count
                return Choice(rep_id)
        return Choice(None)


class PolicyAssigner:
    """``serving.policy.decide`` on each lead's score record.

    Decisions of a shadow team are treated as live, because the backtest measures what the
    policy would do if it assigned leads.
    """

    def __init__(self, name: str, policy: RoutingPolicy, scores: Mapping[str, ScoredLead]) -> None:
        self.name = name
        self._policy = policy
        self._scores = scores
        self.shadow_decisions = 0

    def choose(self, lead: ArrivingLead, roster: ReplayRoster, now: datetime) -> Choice:
        scored = self._scores.get(lead.lead_id)
        if scored is None:
            raise DataValidationError(
                f"strategy {self.name!r} has no score record for lead {lead.lead_id!r}; "
                "score every replayed lead"
            )
        decision = decide(scored, roster.state(), self._policy, now=now)
        if decision.shadow:
            self.shadow_decisions += 1
        return Choice(decision.rep_id, decision.segment, decision.expected_value)


def rule_segment(points: float) -> Segment:
    """Return the rules-only segment of a lead from its rule-score points at intake."""
    if points >= RULES_HIGH_VALUE_POINTS:
        return "high_value"
    if points >= RULES_STANDARD_POINTS:
        return "standard"
    return "nurture"


class RulesOnlyAssigner:
    """The policy's tiers, matching and balancing with the segment from rule-score points, no model.

    The policy copy keeps each segment's score record segment (``recompute = false``), and
    every record has p_convert, ltv and expected value 0, so balancing within a tier goes by
    load alone.
    """

    name = "rules_only"

    def __init__(self, policy: RoutingPolicy, points: Mapping[str, float]) -> None:
        segments = policy.segments.model_copy(update={"recompute": False})
        self._policy = policy.model_copy(update={"segments": segments})
        self._points = points

    def choose(self, lead: ArrivingLead, roster: ReplayRoster, now: datetime) -> Choice:
        points = self._points.get(lead.lead_id)
        if points is None:
            raise DataValidationError(
                f"strategy 'rules_only' has no rule points for lead {lead.lead_id!r}; "
                "score every replayed lead"
            )
        record = ScoredLead(
            lead_id=lead.lead_id,
            p_convert=0.0,
            ltv=0.0,
            expected_value=0.0,
            segment=rule_segment(points),
            region=lead.region,
            industry=lead.industry,
        )
        decision = decide(record, roster.state(), self._policy, now=now)
        return Choice(decision.rep_id, decision.segment, 0.0)


def with_location(scored: ScoredLead, lead: ArrivingLead) -> ScoredLead:
    """Return ``scored`` with the lead's region and industry filled where the record has none."""
    return dataclasses.replace(
        scored,
        region=scored.region if scored.region is not None else lead.region,
        industry=scored.industry if scored.industry is not None else lead.industry,
    )
