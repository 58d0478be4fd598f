"""How the historical team routed leads, and what each owner adds to conversion.

The historical policy leans high-value leads toward senior reps: each tier's routing weight
moves from ``routing_weight_low`` to ``routing_weight_high`` with the lead value index. It
then picks a rep of that tier who serves the lead's region, in proportion to capacity, among
reps employed when the lead arrived. The result is confounded, as real history is: seniors own
better leads, so a model must separate lead quality from rep effect.
"""

from __future__ import annotations

import numpy as np

from data.synthetic.config import GeneratorConfig
from data.synthetic.population import LeadBatch
from data.synthetic.randomness import CounterRandom, Stream
from data.synthetic.reps import Roster

_ATTEMPTS = 6  # capacity-weighted draws per pool before falling back to a wider pool


def assign_owners(
    config: GeneratorConfig, roster: Roster, random: CounterRandom, leads: LeadBatch
) -> np.ndarray:
    """Return the roster position of each lead's owner rep."""
    low = np.asarray([spec.routing_weight_low for spec in config.tiers.values()])
    high = np.asarray([spec.routing_weight_high for spec in config.tiers.values()])
    tier_weights = (1.0 - leads.value)[:, None] * low[None, :] + leads.value[:, None] * high[None, :]
    wanted_tier = random.categorical(Stream.ROUTING_TIER, leads.index, tier_weights)

    owner = np.full(len(leads), -1, dtype=np.int64)
    attempt_offset = 0
    pools = (
        lambda tier, region: (roster.tier == tier) & roster.serves[:, region],
        lambda tier, region: roster.serves[:, region],
        lambda tier, region: np.ones(len(roster), dtype=bool),
    )
    for pool_of in pools:
        for tier in range(len(config.tiers)):
            for region in range(len(config.regions)):
                rows = np.flatnonzero((owner < 0) & (wanted_tier == tier) & (leads.region == region))
                members = np.flatnonzero(pool_of(tier, region))
                if len(rows) and len(members):
                    owner[rows] = _pick_employed(roster, random, leads, rows, members, attempt_offset)
        attempt_offset += _ATTEMPTS

    unassigned = np.flatnonzero(owner < 0)
    if len(unassigned):
        # Managers were hired before the history starts and never leave, so the region's
        # manager (or the head of sales) can always take the lead.
        owner[unassigned] = _region_manager(roster, leads.region[unassigned])
    return owner


def _pick_employed(
    roster: Roster,
    random: CounterRandom,
    leads: LeadBatch,
    rows: np.ndarray,
    members: np.ndarray,
    attempt_offset: int,
) -> np.ndarray:
    """Return a capacity-weighted pick among ``members`` for each row, or -1 if all picks failed."""
    cumulative = np.cumsum(roster.capacity[members].astype(np.float64))
    cumulative /= cumulative[-1]
    picked = np.full(len(rows), -1, dtype=np.int64)
    created = leads.created_at[rows]
    for attempt in range(_ATTEMPTS):
        open_rows = np.flatnonzero(picked < 0)
        if len(open_rows) == 0:
            break
        uniforms = random.uniform(Stream.ROUTING_REP, leads.index[rows[open_rows]], attempt_offset + attempt)
        choice = members[np.minimum(np.searchsorted(cumulative, uniforms, side="right"), len(members) - 1)]
        employed = (roster.hired_at[choice] <= created[open_rows]) & (
            created[open_rows] < roster.left_at[choice]
        )
        picked[open_rows[employed]] = choice[employed]
    return picked


def _region_manager(roster: Roster, regions: np.ndarray) -> np.ndarray:
    head = int(np.flatnonzero(roster.manager < 0)[0])
    managers = np.full(roster.serves.shape[1], head, dtype=np.int64)
    for position in np.flatnonzero(roster.is_manager & (roster.manager >= 0)):
        managers[roster.primary_region[position]] = position
    result: np.ndarray = managers[regions]
    return result


def tier_effects(config: GeneratorConfig, value: np.ndarray) -> np.ndarray:
    """Return the conversion logit effect of each tier on each lead (leads x tiers).

    The effect moves linearly from the tier's low-value effect to its high-value effect with
    the lead's value index.
    """
    low = np.asarray([spec.low_value_effect for spec in config.tiers.values()])
    high = np.asarray([spec.high_value_effect for spec in config.tiers.values()])
    result: np.ndarray = (1.0 - value)[:, None] * low[None, :] + value[:, None] * high[None, :]
    return result


def skill_match(roster: Roster, owner: np.ndarray, industry: np.ndarray) -> np.ndarray:
    """Return whether each lead's owner lists the lead's industry among the rep's skills."""
    known = industry >= 0
    result: np.ndarray = known & roster.skills[owner, np.maximum(industry, 0)]
    return result
