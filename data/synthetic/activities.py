"""Activities of each lead: intake, first contact, stage milestones, follow-ups and replies.

Every lead has an intake activity when it arrives (a web form, a WeCom message, a booth
visit ...). A contacted lead gets the owner's first contact, one activity at each stage it
enters, and a negative-binomial number of follow-ups spread over its open period that grows
with the stage reached and the lead's engagement. Some follow-ups come from the lead
(inbound), and the owner replies to most of those after a response delay. Rep activities are
moved into working hours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.schema import ACTIVITY_TYPES, DIRECTIONS
from data.synthetic.config import GeneratorConfig
from data.synthetic.funnel import CONTACTED, NO_TIME, STAGE_CODES, FunnelOutcome
from data.synthetic.population import LeadBatch, LeadVocabulary
from data.synthetic.randomness import CounterRandom, Stream, categorical_from_uniform
from data.synthetic.timeline import MICROS_PER_DAY, MICROS_PER_HOUR, WORKING_DAY_HOURS, to_working_hours

OUTCOMES: tuple[str, ...] = (
    "submitted",
    "message",
    "connected",
    "no_answer",
    "replied",
    "no_reply",
    "opened",
    "completed",
    "rescheduled",
    "sent",
    "received",
    "contract_signed",
)
MAX_FOLLOW_UPS = 300  # per lead; keeps activity ids within three sequence digits
NEVER_CONTACTED_SPAN_DAYS = 30.0  # a never-contacted lead stops writing in after about a month
INBOUND = DIRECTIONS.index("inbound")
OUTBOUND = DIRECTIONS.index("outbound")

_TYPE = {name: code for code, name in enumerate(ACTIVITY_TYPES)}
_OUTCOME = {name: code for code, name in enumerate(OUTCOMES)}
_FIRST_CONTACT_TYPES = np.asarray([_TYPE["call"], _TYPE["wechat"], _TYPE["email"]])
_FIRST_CONTACT_WEIGHTS = np.asarray([0.55, 0.35, 0.1])
_OUTBOUND_TYPES = np.asarray([_TYPE[name] for name in ("call", "wechat", "email", "visit", "other")])
_OUTBOUND_WEIGHTS = np.asarray([0.4, 0.4, 0.1, 0.05, 0.05])
_INBOUND_TYPES = np.asarray([_TYPE[name] for name in ("wechat", "call", "email", "form")])
_INBOUND_WEIGHTS = np.asarray([0.5, 0.25, 0.15, 0.1])
# Activity logged when a lead enters each stage after contacted: (first type, second type, share of first).
_MILESTONES: tuple[tuple[str, str, float], ...] = (
    ("call", "visit", 0.6),
    ("demo", "visit", 0.6),
    ("quote", "quote", 1.0),
    ("other", "other", 1.0),
)
# Outcomes of outbound activities that reach the lead (_SUCCESS) and that do not (_FAILURE).
_SUCCESS = {
    "call": "connected",
    "wechat": "replied",
    "email": "opened",
    "visit": "completed",
    "demo": "completed",
    "quote": "sent",
    "form": "submitted",
    "other": "completed",
}
_FAILURE = {
    **_SUCCESS,
    "call": "no_answer",
    "wechat": "no_reply",
    "email": "no_reply",
    "visit": "rescheduled",
}
_FAILURE["demo"] = "rescheduled"
_INTAKE_OUTCOME = {**_SUCCESS, "wechat": "message", "other": "received", "email": "received"}


@dataclass
class ActivityRows:
    """Activity rows of one batch, sorted by lead and time. ``lead`` indexes the batch."""

    lead: np.ndarray
    occurred_at: np.ndarray
    type: np.ndarray
    direction: np.ndarray
    has_rep: np.ndarray
    outcome: np.ndarray
    sequence: np.ndarray  # 1-based position within the lead

    def __len__(self) -> int:
        return len(self.lead)


@dataclass
class _Part:
    lead: np.ndarray
    occurred_at: np.ndarray
    type: np.ndarray
    direction: np.ndarray
    has_rep: np.ndarray
    outcome: np.ndarray


def draw_activities(
    config: GeneratorConfig,
    vocabulary: LeadVocabulary,
    random: CounterRandom,
    leads: LeadBatch,
    funnel: FunnelOutcome,
    history_end: int,
) -> ActivityRows:
    """Return the activities of a batch that happen before ``history_end``."""
    success = _success_probability(leads.engagement)
    follow_ups = _follow_ups(config, random, leads, funnel, success)
    parts = [
        _intake(vocabulary, leads),
        _first_contacts(random, leads, funnel, success),
        *_milestones(random, leads, funnel),
        follow_ups,
        _replies(config, random, leads, funnel, follow_ups, success),
    ]
    rows = _Part(
        *(np.concatenate([getattr(part, name) for part in parts]) for name in _Part.__dataclass_fields__)
    )
    kept = rows.occurred_at < history_end
    order = np.lexsort((rows.occurred_at[kept], rows.lead[kept]))
    lead = rows.lead[kept][order]
    starts = np.searchsorted(lead, lead, side="left")
    return ActivityRows(
        lead=lead,
        occurred_at=rows.occurred_at[kept][order],
        type=rows.type[kept][order],
        direction=rows.direction[kept][order],
        has_rep=rows.has_rep[kept][order],
        outcome=rows.outcome[kept][order],
        sequence=np.arange(len(lead)) - starts + 1,
    )


def _success_probability(engagement: np.ndarray) -> np.ndarray:
    """Return the chance that an outbound activity reaches an engaged lead."""
    result: np.ndarray = 1.0 / (1.0 + np.exp(-(0.3 + 0.9 * engagement)))
    return result


def _outcomes(types: np.ndarray, reached: np.ndarray) -> np.ndarray:
    success = np.asarray([_OUTCOME[_SUCCESS[name]] for name in ACTIVITY_TYPES])
    failure = np.asarray([_OUTCOME[_FAILURE[name]] for name in ACTIVITY_TYPES])
    result: np.ndarray = np.where(reached, success[types], failure[types])
    return result


def _intake(vocabulary: LeadVocabulary, leads: LeadBatch) -> _Part:
    types = np.asarray([_TYPE[name] for name in vocabulary.intake_type])[leads.channel]
    outcome = np.asarray([_OUTCOME[_INTAKE_OUTCOME[name]] for name in ACTIVITY_TYPES])[types]
    return _Part(
        lead=np.arange(len(leads)),
        occurred_at=leads.created_at,
        type=types,
        direction=np.full(len(leads), INBOUND),
        has_rep=vocabulary.intake_has_rep[leads.channel],
        outcome=outcome,
    )


def _first_contacts(
    random: CounterRandom, leads: LeadBatch, funnel: FunnelOutcome, success: np.ndarray
) -> _Part:
    rows = np.flatnonzero(funnel.contacted)
    index = leads.index[rows]
    types = _FIRST_CONTACT_TYPES[
        categorical_from_uniform(random.uniform(Stream.FIRST_CONTACT_TYPE, index), _FIRST_CONTACT_WEIGHTS)
    ]
    reached = random.bernoulli(Stream.ACTIVITY_OUTCOME, index, success[rows], draw=0)
    return _Part(
        lead=rows,
        occurred_at=funnel.first_contact[rows],
        type=types,
        direction=np.full(len(rows), OUTBOUND),
        has_rep=np.ones(len(rows), dtype=bool),
        outcome=_outcomes(types, reached),
    )


def _milestones(random: CounterRandom, leads: LeadBatch, funnel: FunnelOutcome) -> list[_Part]:
    parts = []
    for offset, (first, second, first_share) in enumerate(_MILESTONES):
        stage = CONTACTED + 1 + offset
        rows = np.flatnonzero(funnel.depth >= stage)
        use_first = random.bernoulli(Stream.ANCHOR_TYPE, leads.index[rows], first_share, draw=offset)
        types = np.where(use_first, _TYPE[first], _TYPE[second])
        outcome = _outcomes(types, np.ones(len(rows), dtype=bool))
        if STAGE_CODES[stage] == "won":
            outcome = np.full(len(rows), _OUTCOME["contract_signed"])
        parts.append(
            _Part(
                lead=rows,
                occurred_at=funnel.stage_at[rows, stage],
                type=types,
                direction=np.full(len(rows), OUTBOUND),
                has_rep=np.ones(len(rows), dtype=bool),
                outcome=outcome,
            )
        )
    return parts


def _follow_ups(
    config: GeneratorConfig,
    random: CounterRandom,
    leads: LeadBatch,
    funnel: FunnelOutcome,
    success: np.ndarray,
) -> _Part:
    """Return follow-up activities spread uniformly over each lead's open period."""
    settings = config.activities
    mean = np.asarray(list(settings.mean_by_depth.values()))[funnel.depth]
    mean = mean * np.exp(settings.engagement_effect * leads.engagement)
    rate = random.gamma(Stream.ACTIVITY_COUNT, leads.index, settings.dispersion, mean)
    count = np.minimum(random.poisson(Stream.ACTIVITY_COUNT, leads.index, rate, draw=1), MAX_FOLLOW_UPS)

    start = np.where(funnel.contacted, funnel.first_contact, leads.created_at)
    open_span = (
        np.where(funnel.contacted, settings.open_span_days, NEVER_CONTACTED_SPAN_DAYS) * MICROS_PER_DAY
    )
    closed = funnel.closed_at
    end = np.where(closed != NO_TIME, closed, start + open_span.astype(np.int64))
    end = np.maximum(end, start + MICROS_PER_HOUR)

    rows = np.repeat(np.arange(len(leads)), count)
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count)
    index = leads.index[rows]
    position = random.uniform(Stream.ACTIVITY_TIME, index, slot)
    occurred = start[rows] + (position * (end[rows] - start[rows])).astype(np.int64)

    inbound_rate = np.where(funnel.contacted[rows], settings.inbound_rate, 1.0)
    inbound = random.bernoulli(Stream.ACTIVITY_DIRECTION, index, inbound_rate, slot)
    type_uniform = random.uniform(Stream.ACTIVITY_TYPE, index, slot)
    types = np.where(
        inbound,
        _INBOUND_TYPES[categorical_from_uniform(type_uniform, _INBOUND_WEIGHTS)],
        _OUTBOUND_TYPES[categorical_from_uniform(type_uniform, _OUTBOUND_WEIGHTS)],
    )
    occurred = np.where(
        inbound,
        occurred,
        to_working_hours(
            occurred, random.uniform(Stream.BUSINESS_HOURS, index, 100 + slot), WORKING_DAY_HOURS
        ),
    )
    reached = random.bernoulli(Stream.ACTIVITY_OUTCOME, index, success[rows], 1 + slot)
    outcome = np.where(inbound, _OUTCOME["received"], _outcomes(types, reached))
    return _Part(
        lead=rows,
        occurred_at=occurred,
        type=types,
        direction=np.where(inbound, INBOUND, OUTBOUND),
        has_rep=~(inbound & (types == _TYPE["form"])),
        outcome=outcome,
    )


def _replies(
    config: GeneratorConfig,
    random: CounterRandom,
    leads: LeadBatch,
    funnel: FunnelOutcome,
    follow_ups: _Part,
    success: np.ndarray,
) -> _Part:
    """Return the owner's replies to inbound follow-ups of contacted leads."""
    inbound = np.flatnonzero((follow_ups.direction == INBOUND) & funnel.contacted[follow_ups.lead])
    lead = follow_ups.lead[inbound]
    # A per-activity counter: lead number and the activity's slot among the lead's follow-ups.
    index = leads.index[lead] * (MAX_FOLLOW_UPS + 1) + _slot_within_lead(follow_ups.lead, inbound)
    replied = random.bernoulli(Stream.ACTIVITY_REPLY, index, config.activities.reply_rate)
    rows = inbound[replied]
    lead = lead[replied]
    index = index[replied]
    hours = random.lognormal(Stream.ACTIVITY_REPLY_DELAY, index, config.activities.reply_median_hours, 1.2)
    occurred = to_working_hours(
        follow_ups.occurred_at[rows] + (hours * MICROS_PER_HOUR).astype(np.int64),
        random.uniform(Stream.BUSINESS_HOURS, index, 1),
    )
    inbound_types = follow_ups.type[rows]
    types = np.where(np.isin(inbound_types, [_TYPE["call"], _TYPE["email"]]), inbound_types, _TYPE["wechat"])
    reached = random.bernoulli(Stream.ACTIVITY_OUTCOME, index, np.minimum(1.0, success[lead] + 0.3), 2)
    return _Part(
        lead=lead,
        occurred_at=occurred,
        type=types,
        direction=np.full(len(rows), OUTBOUND),
        has_rep=np.ones(len(rows), dtype=bool),
        outcome=_outcomes(types, reached),
    )


def _slot_within_lead(lead_of_row: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Return each row's position among the rows of its lead (rows of a lead are contiguous)."""
    first_row = np.searchsorted(lead_of_row, lead_of_row[rows], side="left")
    result: np.ndarray = rows - first_row
    return result
