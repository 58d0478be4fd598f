"""Orders: the deal of each won lead, existing customers' earlier orders, repeats and refunds.

Each customer has a base order size: a stated budget when there is one, otherwise the
median of its size band times its industry's order value, with lognormal noise, scaled up
for better leads. Repeat purchases follow a heterogeneous Poisson process (a gamma-distributed
monthly rate per customer) until the customer stops buying after an exponential lifetime,
at most ``horizon_months`` after the first order. Any order line can get a refund: a later
line with a negative amount. Existing customers' histories start before the lead arrives.
The customer created by a lead has the id of that lead with a C prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.synthetic.config import GeneratorConfig
from data.synthetic.funnel import WON, FunnelOutcome
from data.synthetic.population import LeadBatch, LeadVocabulary
from data.synthetic.randomness import CounterRandom, Stream
from data.synthetic.reps import MICROS_PER_MONTH
from data.synthetic.timeline import MICROS_PER_DAY, WORKING_DAY_HOURS, to_working_hours

MAX_REPEATS = 200  # per customer; keeps order ids within three sequence digits with refunds
MAX_DEAL_DELAY_DAYS = 3.0  # the deal order follows the won stage within this many days
PRIOR_ORDER_SIGMA = 0.3  # spread of an existing customer's first order around its base size
KIND_PRIOR, KIND_DEAL, KIND_REPEAT, KIND_REFUND = 0, 1, 2, 3


@dataclass
class OrderRows:
    """Order lines of one batch before the history end, sorted by customer and time."""

    lead: np.ndarray  # index into the batch; the customer is C + that lead's number
    ordered_at: np.ndarray
    amount: np.ndarray
    sequence: np.ndarray  # 1-based position within the customer
    value_24m: np.ndarray  # per lead of the batch: order value within the horizon after the win

    def __len__(self) -> int:
        return len(self.lead)


@dataclass
class _Lines:
    lead: np.ndarray
    ordered_at: np.ndarray
    amount: np.ndarray
    kind: np.ndarray


def draw_orders(
    config: GeneratorConfig,
    vocabulary: LeadVocabulary,
    random: CounterRandom,
    leads: LeadBatch,
    funnel: FunnelOutcome,
    history_end: int,
) -> OrderRows:
    """Return the order lines of a batch's customers and each lead's true value after its win."""
    settings = config.orders
    customer = np.flatnonzero(funnel.won | leads.existing_customer)
    base = _base_amount(config, vocabulary, random, leads, customer)

    prior = _prior_first_orders(config, random, leads, customer, base)
    deals = _deal_orders(random, leads, funnel, customer, base)
    anchor_time = np.full(len(leads), np.iinfo(np.int64).min, dtype=np.int64)
    anchor_time[deals.lead] = deals.ordered_at
    anchor_time[prior.lead] = prior.ordered_at  # an existing customer's repeats start at its first order
    repeats = _repeat_orders(config, vocabulary, random, leads, customer, base, anchor_time[customer])
    lines = _concatenate([prior, deals, repeats])
    lines = _concatenate([lines, _refunds(config, random, leads, lines)])

    won_at = funnel.stage_at[:, WON]
    horizon = round(settings.horizon_months * MICROS_PER_MONTH)
    after_win = funnel.won[lines.lead] & (lines.ordered_at >= won_at[lines.lead])
    after_win &= lines.ordered_at < won_at[lines.lead] + horizon
    value = np.bincount(lines.lead[after_win], weights=lines.amount[after_win], minlength=len(leads))
    value_24m = np.where(funnel.won, value, np.nan)

    kept = lines.ordered_at < history_end
    order = np.lexsort((lines.kind[kept], lines.ordered_at[kept], lines.lead[kept]))
    lead = lines.lead[kept][order]
    starts = np.searchsorted(lead, lead, side="left")
    return OrderRows(
        lead=lead,
        ordered_at=lines.ordered_at[kept][order],
        amount=lines.amount[kept][order],
        sequence=np.arange(len(lead)) - starts + 1,
        value_24m=value_24m,
    )


def _concatenate(parts: list[_Lines]) -> _Lines:
    return _Lines(
        lead=np.concatenate([part.lead for part in parts]),
        ordered_at=np.concatenate([part.ordered_at for part in parts]),
        amount=np.concatenate([part.amount for part in parts]),
        kind=np.concatenate([part.kind for part in parts]),
    )


def _round_amount(amount: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.maximum(np.rint(amount / 10.0), 1.0) * 10.0  # contracts are in whole tens of CNY
    return result


def _base_amount(
    config: GeneratorConfig,
    vocabulary: LeadVocabulary,
    random: CounterRandom,
    leads: LeadBatch,
    customer: np.ndarray,
) -> np.ndarray:
    """Return each customer's first-order size in CNY (index-aligned with ``customer``)."""
    settings = config.orders
    index = leads.index[customer]
    industry = leads.industry[customer]
    industry_value = np.where(industry >= 0, vocabulary.industry_order_value[np.maximum(industry, 0)], 1.0)
    budget = leads.budget[customer]
    stated = ~np.isnan(budget)
    noise = random.normal(Stream.ORDER_AMOUNT, index)
    from_budget = np.where(stated, budget, 1.0) * np.exp(settings.budget_sigma * noise)
    from_profile = leads.size_budget[customer] * industry_value * np.exp(settings.first_order_sigma * noise)
    amount = np.where(stated, from_budget, from_profile) * np.exp(
        settings.quality_value_effect * leads.quality[customer]
    )
    return _round_amount(amount)


def _prior_first_orders(
    config: GeneratorConfig, random: CounterRandom, leads: LeadBatch, customer: np.ndarray, base: np.ndarray
) -> _Lines:
    existing = leads.existing_customer[customer]
    rows = customer[existing]
    index = leads.index[rows]
    low, high = config.orders.prior_first_order_months
    months = low + (high - low) * random.uniform(Stream.PRIOR_FIRST_ORDER, index)
    ordered = to_working_hours(
        leads.created_at[rows] - (months * MICROS_PER_MONTH).astype(np.int64),
        random.uniform(Stream.BUSINESS_HOURS, index, 20),
        WORKING_DAY_HOURS,
    )
    amount = _round_amount(
        base[existing] * np.exp(PRIOR_ORDER_SIGMA * random.normal(Stream.ORDER_AMOUNT, index, 1))
    )
    return _Lines(rows, ordered, amount, np.full(len(rows), KIND_PRIOR))


def _deal_orders(
    random: CounterRandom, leads: LeadBatch, funnel: FunnelOutcome, customer: np.ndarray, base: np.ndarray
) -> _Lines:
    won = funnel.won[customer]
    rows = customer[won]
    index = leads.index[rows]
    days = MAX_DEAL_DELAY_DAYS * random.uniform(Stream.ORDER_DELAY, index)
    ordered = to_working_hours(
        funnel.stage_at[rows, WON] + (days * MICROS_PER_DAY).astype(np.int64),
        random.uniform(Stream.BUSINESS_HOURS, index, 21),
        WORKING_DAY_HOURS,
    )
    return _Lines(rows, ordered, base[won], np.full(len(rows), KIND_DEAL))


def _repeat_orders(
    config: GeneratorConfig,
    vocabulary: LeadVocabulary,
    random: CounterRandom,
    leads: LeadBatch,
    customer: np.ndarray,
    base: np.ndarray,
    anchor: np.ndarray,
) -> _Lines:
    settings = config.orders
    index = leads.index[customer]
    industry = leads.industry[customer]
    repeat_rate = np.where(industry >= 0, vocabulary.industry_repeat_rate[np.maximum(industry, 0)], 1.0)
    monthly = random.gamma(
        Stream.REPEAT_RATE,
        index,
        settings.repeat_shape,
        settings.repeat_per_month * repeat_rate * np.exp(0.2 * leads.quality[customer]),
    )
    lifetime = np.minimum(
        random.exponential(Stream.REPEAT_LIFETIME, index, settings.lifetime_mean_months),
        settings.horizon_months,
    )
    count = np.minimum(random.poisson(Stream.REPEAT_COUNT, index, monthly * lifetime), MAX_REPEATS)

    owner = np.repeat(np.arange(len(customer)), count)
    slot = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
    line_index = index[owner]
    months = random.uniform(Stream.REPEAT_TIME, line_index, slot) * lifetime[owner]
    ordered = to_working_hours(
        anchor[owner] + (months * MICROS_PER_MONTH).astype(np.int64),
        random.uniform(Stream.BUSINESS_HOURS, line_index, 300 + slot),
        WORKING_DAY_HOURS,
    )
    amount = _round_amount(
        base[owner]
        * settings.repeat_share
        * np.exp(settings.repeat_sigma * random.normal(Stream.REPEAT_AMOUNT, line_index, slot))
    )
    return _Lines(customer[owner], ordered, amount, np.full(len(owner), KIND_REPEAT))


def _refunds(config: GeneratorConfig, random: CounterRandom, leads: LeadBatch, lines: _Lines) -> _Lines:
    """Return a refund line for some order lines: part or all of the amount, some days later."""
    settings = config.orders
    order = np.lexsort((lines.kind, lines.ordered_at, lines.lead))
    lead = lines.lead[order]
    slot = np.arange(len(lead)) - np.searchsorted(lead, lead, side="left")
    line_index = leads.index[lead] * (MAX_REPEATS + 3) + slot
    refunded = random.bernoulli(Stream.REFUND, line_index, settings.refund_rate)
    chosen = order[refunded]
    line_index = line_index[refunded]
    full = random.bernoulli(Stream.REFUND_SHARE, line_index, settings.full_refund_share)
    share = np.where(full, 1.0, 0.2 + 0.7 * random.uniform(Stream.REFUND_SHARE, line_index, 1))
    days = random.lognormal(Stream.REFUND_DELAY, line_index, settings.refund_median_days, 0.6)
    refunded_at = to_working_hours(
        lines.ordered_at[chosen] + (days * MICROS_PER_DAY).astype(np.int64),
        random.uniform(Stream.BUSINESS_HOURS, line_index, 2),
        WORKING_DAY_HOURS,
    )
    amount = -np.round(lines.amount[chosen] * share, 2)
    return _Lines(lines.lead[chosen], refunded_at, amount, np.full(len(chosen), KIND_REFUND))
