"""First contact, conversion and the path of each lead through the funnel.

The conversion logit of a lead is

    intercept + latent quality + tier effect(value) + rep effect + skill match
    - speed_penalty * log(1 + first-contact delay in hours)
    + engagement_effect * engagement + drift weight * drift conversion shift

A lead reaches a stage when the logit plus one standard logistic draw passes the stage's
threshold (won at 0), so every won lead passed every stage and P(won) = sigmoid(logit).
Leads that no rep ever contacts never pass the first stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.stages import FUNNEL
from data.synthetic.assignment import skill_match, tier_effects
from data.synthetic.config import GeneratorConfig
from data.synthetic.population import LeadBatch, LeadVocabulary
from data.synthetic.randomness import CounterRandom, Stream
from data.synthetic.reps import Roster
from data.synthetic.timeline import MICROS_PER_DAY, MICROS_PER_HOUR, WORKING_DAY_HOURS, to_working_hours

NO_TIME = np.iinfo(np.int64).min
STAGE_CODES: tuple[str, ...] = tuple(stage.code for stage in FUNNEL)
CONTACTED = STAGE_CODES.index("contacted")
WON = STAGE_CODES.index("won")
RATINGS: tuple[str, ...] = ("A", "B", "C", "D")
# A rep's rating is A when the noisy logit is at least 1.2 above the intercept, B from 0.2, C from -0.8.
_RATING_CUTS = np.asarray([1.2, 0.2, -0.8])


@dataclass
class FunnelOutcome:
    """The uncensored fate of each lead of a batch; its events may fall after the history end."""

    owner: np.ndarray
    contacted: np.ndarray
    first_contact: np.ndarray  # NO_TIME when never contacted
    delay_hours: np.ndarray  # NaN when never contacted
    skill_match: np.ndarray
    logit: np.ndarray
    p_convert: np.ndarray
    p_by_tier: np.ndarray  # leads x tiers
    depth: np.ndarray  # furthest stage reached, an index into STAGE_CODES
    stage_at: np.ndarray  # leads x stages, NO_TIME where not reached
    lost_at: np.ndarray  # NO_TIME when never marked lost
    rating: np.ndarray  # index into RATINGS, -1 when never contacted

    @property
    def won(self) -> np.ndarray:
        result: np.ndarray = self.depth == WON
        return result

    @property
    def closed_at(self) -> np.ndarray:
        """Time of the terminal stage (won or lost), NO_TIME for leads left open."""
        result: np.ndarray = np.where(self.won, self.stage_at[:, WON], self.lost_at)
        return result


def run_funnel(
    config: GeneratorConfig,
    vocabulary: LeadVocabulary,
    roster: Roster,
    random: CounterRandom,
    leads: LeadBatch,
    owner: np.ndarray,
) -> FunnelOutcome:
    """Draw first contact, conversion and stage times for each lead owned by ``owner``."""
    contacted, first_contact, delay_hours = _first_contact(config, vocabulary, roster, random, leads, owner)
    skills = skill_match(roster, owner, leads.industry)
    effects = tier_effects(config, leads.value)
    shared = (
        config.conversion_intercept
        + leads.quality
        - config.response.speed_penalty * np.log1p(np.nan_to_num(delay_hours, nan=0.0))
        + config.engagement_effect * leads.engagement
        + config.drift.conversion_shift * leads.drift
    )
    logit = shared + effects[np.arange(len(leads)), roster.tier[owner]] + roster.effect[owner]
    logit += config.skill_match_effect * skills
    p_convert = np.where(contacted, _sigmoid(logit), 0.0)
    p_by_tier = np.where(contacted[:, None], _sigmoid(shared[:, None] + effects), 0.0)

    score = logit + _logistic(random.uniform(Stream.OUTCOME, leads.index))
    thresholds = np.asarray(list(config.funnel.thresholds.values()))
    depth = np.where(contacted, CONTACTED + (score[:, None] > thresholds[None, :]).sum(axis=1), 0)
    stage_at = _stage_times(config, vocabulary, random, leads, first_contact, depth)
    lost_at = _lost_times(config, random, leads, stage_at, depth, contacted)
    rating_noise = config.funnel.rating_noise * random.normal(Stream.RATING, leads.index)
    rating_score = logit + rating_noise - config.conversion_intercept
    rating = np.where(contacted, (rating_score[:, None] < _RATING_CUTS[None, :]).sum(axis=1), -1)
    return FunnelOutcome(
        owner=owner,
        contacted=contacted,
        first_contact=first_contact,
        delay_hours=delay_hours,
        skill_match=skills,
        logit=logit,
        p_convert=p_convert,
        p_by_tier=p_by_tier,
        depth=depth,
        stage_at=stage_at,
        lost_at=lost_at,
        rating=rating,
    )


def _sigmoid(values: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-values))
    return result


def _logistic(uniforms: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.log(uniforms) - np.log1p(-uniforms)
    return result


def _first_contact(
    config: GeneratorConfig,
    vocabulary: LeadVocabulary,
    roster: Roster,
    random: CounterRandom,
    leads: LeadBatch,
    owner: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return whether each lead is contacted, when, and the delay in hours.

    From the next working moment, the owner needs a lognormal number of hours around the
    tier's median. With the tier's slow-response rate, the contact waits a further 48 hours
    plus an exponential time: the fat tail that costs conversions.
    """
    index = leads.index
    never = random.bernoulli(Stream.NEVER_CONTACTED, index, vocabulary.channel_never_contacted[leads.channel])
    tier = roster.tier[owner]
    median = np.asarray([spec.response_median_hours for spec in config.tiers.values()])[tier]
    slow_rate = np.asarray([spec.slow_response_rate for spec in config.tiers.values()])[tier]

    opens = to_working_hours(leads.created_at, random.uniform(Stream.BUSINESS_HOURS, index))
    hours = random.lognormal(Stream.RESPONSE_DELAY, index, median, config.response.sigma)
    slow_minimum, slow_mean = config.response.slow_extra_hours
    slow = random.bernoulli(Stream.SLOW_RESPONSE, index, slow_rate)
    hours += np.where(
        slow, slow_minimum + random.exponential(Stream.SLOW_RESPONSE_EXTRA, index, slow_mean), 0.0
    )
    contact_at = opens + (hours * MICROS_PER_HOUR).astype(np.int64)
    contact_at = to_working_hours(contact_at, random.uniform(Stream.BUSINESS_HOURS, index, 1))

    first_contact = np.where(never, NO_TIME, contact_at)
    delay_hours = np.where(never, np.nan, (contact_at - leads.created_at) / MICROS_PER_HOUR)
    return ~never, first_contact, delay_hours


def _stage_times(
    config: GeneratorConfig,
    vocabulary: LeadVocabulary,
    random: CounterRandom,
    leads: LeadBatch,
    first_contact: np.ndarray,
    depth: np.ndarray,
) -> np.ndarray:
    """Return the time each lead entered each stage it reached (NO_TIME elsewhere)."""
    stage_at = np.full((len(leads), len(STAGE_CODES)), NO_TIME, dtype=np.int64)
    stage_at[:, 0] = leads.created_at
    stage_at[:, CONTACTED] = np.where(depth >= CONTACTED, first_contact, NO_TIME)
    size_factor = np.where(leads.size >= 0, vocabulary.size_dwell_factor[np.maximum(leads.size, 0)], 1.0)
    previous = first_contact
    for offset, median_days in enumerate(config.funnel.dwell_median_days.values()):
        stage = CONTACTED + 1 + offset
        days = random.lognormal(
            Stream.DWELL, leads.index, median_days * size_factor, config.funnel.dwell_sigma, offset
        )
        entered = to_working_hours(
            previous + (days * MICROS_PER_DAY).astype(np.int64),
            random.uniform(Stream.BUSINESS_HOURS, leads.index, 2 + offset),
            WORKING_DAY_HOURS,
        )
        stage_at[:, stage] = np.where(depth >= stage, entered, NO_TIME)
        previous = entered
    return stage_at


def _lost_times(
    config: GeneratorConfig,
    random: CounterRandom,
    leads: LeadBatch,
    stage_at: np.ndarray,
    depth: np.ndarray,
    contacted: np.ndarray,
) -> np.ndarray:
    """Return when each unwon lead was marked lost, or NO_TIME when it stays open.

    A contacted lead goes quiet and its owner marks it lost a lognormal number of days after
    its last stage, unless the owner never cleans it up. A never-contacted lead is recycled
    by the CRM a fixed range of days after intake.
    """
    index = leads.index
    last_stage = stage_at[np.arange(len(leads)), depth]
    days = random.lognormal(
        Stream.LOST_DELAY, index, config.funnel.lost_median_days, config.funnel.lost_sigma
    )
    marked = to_working_hours(
        last_stage + (days * MICROS_PER_DAY).astype(np.int64),
        random.uniform(Stream.BUSINESS_HOURS, index, 9),
        WORKING_DAY_HOURS,
    )
    left_open = random.bernoulli(Stream.LEFT_OPEN, index, config.funnel.left_open_rate)

    low, high = config.funnel.recycle_days
    recycle_days = low + (high - low) * random.uniform(Stream.RECYCLED, index)
    recycled = random.bernoulli(Stream.RECYCLED, index, config.funnel.recycle_rate, draw=1)
    recycled_at = leads.created_at + (recycle_days * MICROS_PER_DAY).astype(np.int64)

    lost_at = np.where(contacted & ~left_open, marked, NO_TIME)
    lost_at = np.where(~contacted & recycled, recycled_at, lost_at)
    result: np.ndarray = np.where(depth == WON, NO_TIME, lost_at)
    return result
