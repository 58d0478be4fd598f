"""The synthetic sales team: tiers, regions, skills, hire and leave dates, managers.

Rep ids follow hire order (R0001 joined first). Each region's manager is its earliest-hired
senior rep. The regional managers report to the head of sales, the earliest-hired senior
overall. Managers never leave and were hired before the history starts, so every lead has
someone to be routed to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.synthetic import catalog
from data.synthetic.config import GeneratorConfig
from data.synthetic.randomness import CounterRandom, Stream
from data.synthetic.timeline import MICROS_PER_DAY, HistoryWindow

NEVER = np.iinfo(np.int64).max  # left_at of reps who stay
MICROS_PER_MONTH = round(30.4375 * MICROS_PER_DAY)
_SECOND_REGION_RATE = 0.25
_MANAGER_HIRED_BEFORE_START = 30 * MICROS_PER_DAY


@dataclass
class Roster:
    """The team as arrays indexed by rep position (0 is R0001)."""

    rep_ids: np.ndarray
    names: np.ndarray
    tier: np.ndarray  # code into config.tiers
    primary_region: np.ndarray  # code into config.regions
    serves: np.ndarray  # bool matrix rep x region
    skills: np.ndarray  # bool matrix rep x industry
    hired_at: np.ndarray
    left_at: np.ndarray  # NEVER for reps still employed
    capacity: np.ndarray
    effect: np.ndarray  # the rep's own conversion logit effect
    manager: np.ndarray  # position of the manager, -1 for the head of sales
    is_manager: np.ndarray

    def __len__(self) -> int:
        return len(self.rep_ids)


def build_roster(config: GeneratorConfig, window: HistoryWindow, random: CounterRandom) -> Roster:
    """Draw the team of ``config.team_size`` reps."""
    size = config.team_size
    position = np.arange(size, dtype=np.int64)
    tier = _spread_codes(
        [spec.share for spec in config.tiers.values()], size, random.uniform(Stream.REP_TIER, position)
    )
    if not (tier == 0).any():
        tier[0] = 0  # a team needs at least one senior rep to head it
    region = _spread_codes(
        [spec.weight for spec in config.regions.values()], size, random.uniform(Stream.REP_REGION, position)
    )

    hired_at = _hire_dates(config, window, random, position, tier)
    order = np.lexsort((position, hired_at))  # ids follow hire order
    tier, region, hired_at = tier[order], region[order], hired_at[order]

    serves = _served_regions(config, random, position, region)
    skills = _skills(config, random, position, tier)
    manager, is_manager = _managers(region, tier, hired_at, len(config.regions))
    hired_at = np.where(
        is_manager, np.minimum(hired_at, window.start - _MANAGER_HIRED_BEFORE_START), hired_at
    )
    left_at = _leave_dates(config, window, random, position, hired_at, is_manager)

    capacity_spec = np.asarray([spec.capacity for spec in config.tiers.values()], dtype=np.float64)[tier]
    jitter = 0.8 + 0.4 * random.uniform(Stream.REP_CAPACITY, position)
    capacity = np.maximum(5, np.rint(capacity_spec * jitter / 5.0) * 5).astype(np.int64)
    effect = config.rep_effect_sd * random.normal(Stream.REP_EFFECT, position)

    width = max(4, len(str(size)))
    rep_ids = np.asarray([f"R{number:0{width}d}" for number in position + 1], dtype=object)
    return Roster(
        rep_ids=rep_ids,
        names=_names(random, position),
        tier=tier,
        primary_region=region,
        serves=serves,
        skills=skills,
        hired_at=hired_at,
        left_at=left_at,
        capacity=capacity,
        effect=effect,
        manager=manager,
        is_manager=is_manager,
    )


def _spread_codes(weights: list[float], size: int, uniforms: np.ndarray) -> np.ndarray:
    """Return ``size`` codes in proportion to ``weights`` (largest remainder), shuffled."""
    shares = np.asarray(weights, dtype=np.float64) / sum(weights)
    counts = np.floor(shares * size).astype(np.int64)
    remainder = shares * size - counts
    for code in np.argsort(-remainder, kind="stable")[: size - counts.sum()]:
        counts[code] += 1
    codes = np.repeat(np.arange(len(weights)), counts)
    return codes[np.argsort(uniforms, kind="stable")]


def _hire_dates(
    config: GeneratorConfig,
    window: HistoryWindow,
    random: CounterRandom,
    position: np.ndarray,
    tier: np.ndarray,
) -> np.ndarray:
    ranges = np.asarray([spec.hired_months_before_end for spec in config.tiers.values()], dtype=np.float64)
    low, high = ranges[tier, 0], ranges[tier, 1]
    months_before_end = low + (high - low) * random.uniform(Stream.REP_HIRED, position)
    hired = window.end - (months_before_end * MICROS_PER_MONTH).astype(np.int64)
    return _to_local_midnight(hired)


def _to_local_midnight(times: np.ndarray) -> np.ndarray:
    offset = 8 * 3_600_000_000
    result: np.ndarray = ((times + offset) // MICROS_PER_DAY) * MICROS_PER_DAY - offset
    return result


def _served_regions(
    config: GeneratorConfig, random: CounterRandom, position: np.ndarray, region: np.ndarray
) -> np.ndarray:
    names = list(config.regions)
    serves = np.zeros((len(position), len(names)), dtype=bool)
    serves[position, region] = True
    adds_second = random.bernoulli(Stream.REP_SECOND_REGION, position, _SECOND_REGION_RATE)
    picks = random.uniform(Stream.REP_SECOND_REGION, position, 1)
    for rep in np.flatnonzero(adds_second):
        neighbours = config.regions[names[region[rep]]].neighbours
        if neighbours:
            choice = neighbours[min(int(picks[rep] * len(neighbours)), len(neighbours) - 1)]
            serves[rep, names.index(choice)] = True
    return serves


def _skills(
    config: GeneratorConfig, random: CounterRandom, position: np.ndarray, tier: np.ndarray
) -> np.ndarray:
    n_industries = len(config.industries)
    count = 1 + random.bernoulli(Stream.REP_SKILLS, position, 0.5).astype(np.int64)
    count += (tier == 0) & random.bernoulli(Stream.REP_SKILLS, position, 0.6, draw=1)
    keys = np.stack(
        [random.uniform(Stream.REP_SKILLS, position, draw=2 + industry) for industry in range(n_industries)],
        axis=1,
    )
    ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
    result: np.ndarray = ranks < count[:, None]
    return result


def _managers(
    region: np.ndarray, tier: np.ndarray, hired_at: np.ndarray, n_regions: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return each rep's manager position and whether the rep is a manager."""
    size = len(region)
    seniors = np.flatnonzero(tier == 0)
    head = int(seniors[np.argmin(hired_at[seniors])]) if len(seniors) else int(np.argmin(hired_at))
    manager = np.full(size, head, dtype=np.int64)
    is_manager = np.zeros(size, dtype=bool)
    is_manager[head] = True
    for code in range(n_regions):
        members = np.flatnonzero(region == code)
        if len(members) == 0:
            continue
        senior_members = members[tier[members] == 0]
        pool = senior_members if len(senior_members) else members
        regional = int(pool[np.argmin(hired_at[pool])])
        is_manager[regional] = True
        manager[members] = regional
        manager[regional] = head
    manager[head] = -1
    return manager, is_manager


def _leave_dates(
    config: GeneratorConfig,
    window: HistoryWindow,
    random: CounterRandom,
    position: np.ndarray,
    hired_at: np.ndarray,
    is_manager: np.ndarray,
) -> np.ndarray:
    leaves = random.bernoulli(Stream.REP_LEFT, position, config.turnover_rate) & ~is_manager
    share = 0.1 + 0.8 * random.uniform(Stream.REP_LEFT_AT, position)
    left_at = window.start + (share * (window.end - window.start)).astype(np.int64)
    leaves &= left_at > hired_at + 60 * MICROS_PER_DAY
    return np.where(leaves, _to_local_midnight(left_at), NEVER)


def _names(random: CounterRandom, position: np.ndarray) -> np.ndarray:
    surnames = np.asarray(catalog.SURNAMES, dtype=object)
    given = np.asarray(catalog.GIVEN_NAMES, dtype=object)
    surname_code = (random.uniform(Stream.REP_NAME, position) * len(surnames)).astype(np.int64)
    given_code = (random.uniform(Stream.REP_NAME, position, 1) * len(given)).astype(np.int64)
    result: np.ndarray = surnames[surname_code] + given[given_code]
    return result


def roster_frame(config: GeneratorConfig, roster: Roster) -> pd.DataFrame:
    """Return the canonical reps table of ``roster`` (tier as of the end of the history)."""
    region_names = np.asarray(list(config.regions), dtype=object)
    industry_names = np.asarray(list(config.industries), dtype=object)
    tier_names = np.asarray(list(config.tiers), dtype=object)
    manager_ids = np.where(roster.manager >= 0, roster.rep_ids[np.maximum(roster.manager, 0)], None)
    return pd.DataFrame(
        {
            "rep_id": pd.Series(roster.rep_ids, dtype="str"),
            "name": pd.Series(roster.names, dtype="str"),
            "tier": pd.Series(tier_names[roster.tier], dtype="str"),
            "capacity": pd.Series(roster.capacity, dtype="int64"),
            "regions": pd.Series([list(region_names[row]) for row in roster.serves], dtype="object"),
            "skills": pd.Series([list(industry_names[row]) for row in roster.skills], dtype="object"),
            "hired_at": pd.Series(pd.to_datetime(roster.hired_at, unit="us", utc=True)).astype(
                "datetime64[us, UTC]"
            ),
            "active": pd.Series(roster.left_at == NEVER, dtype="bool"),
            "manager_id": pd.Series(manager_ids, dtype="str"),
        }
    )


def roster_truth_frame(config: GeneratorConfig, roster: Roster) -> pd.DataFrame:
    """Return the ground truth of each rep: own effect, leave date and manager flag."""
    tier_names = np.asarray(list(config.tiers), dtype=object)
    left = pd.Series(
        pd.to_datetime(np.where(roster.left_at == NEVER, 0, roster.left_at), unit="us", utc=True)
    )
    return pd.DataFrame(
        {
            "rep_id": pd.Series(roster.rep_ids, dtype="str"),
            "tier": pd.Series(tier_names[roster.tier], dtype="str"),
            "rep_effect": roster.effect,
            "left_at": left.where(roster.left_at != NEVER).astype("datetime64[us, UTC]"),
            "is_manager": roster.is_manager,
        }
    )
