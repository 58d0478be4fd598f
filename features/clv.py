"""Customer-lifetime-value (CLV) features from orders before a cutoff.

Names follow the BG/NBD literature and the ``lifetimes`` package, with days as the period:

* frequency: distinct purchase days minus one (the number of repeat purchase days);
* recency: days from the first to the last purchase day;
* T: days from the first purchase day to the last calendar day before the cutoff;
* monetary_value: mean value per repeat purchase day, the first purchase day excluded
  (0 for a customer without repeats).

Purchases are order lines with amount >= 0 and refunds are lines with amount < 0. Purchase
days are calendar days in the business time zone. With a cutoff at midnight after the last
calibration day, these match lifetimes' ``summary_data_from_transaction_data`` with that
day as ``observation_period_end`` and ``freq="D"``. A customer without a purchase before
the cutoff has order_count 0, total_net_value 0 and every other feature missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.schema import DEFAULT_TIMEZONE
from features.inputs import require_columns
from features.windows import (
    MICROS_PER_DAY,
    EventIndex,
    entity_codes,
    gather,
    local_day_numbers,
    timestamp_micros,
)

CLV_COLUMNS: tuple[str, ...] = (
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "order_count",
    "total_net_value",
    "mean_net_value",
    "refund_share",
    "tenure_days",
    "days_since_last_order",
    "interpurchase_mean_days",
    "interpurchase_std_days",
)

_PURCHASE_COLUMNS: tuple[str, ...] = (
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "tenure_days",
    "days_since_last_order",
    "interpurchase_mean_days",
    "interpurchase_std_days",
)


def clv_features(
    orders: pd.DataFrame, customer_cutoffs: pd.DataFrame, *, timezone: str = DEFAULT_TIMEZONE
) -> pd.DataFrame:
    """Return the CLV features of each (customer_id, cutoff) row, same rows and index.

    Only orders strictly before each row's cutoff are used. ``orders`` needs customer_id,
    ordered_at (tz-aware) and amount; ``customer_cutoffs`` needs customer_id and cutoff.
    """
    require_columns(customer_cutoffs, "customer_cutoffs", ("customer_id", "cutoff"))
    cutoffs = timestamp_micros(customer_cutoffs["cutoff"], column="cutoff")
    ids = customer_cutoffs["customer_id"]
    customers = pd.Index(ids.dropna().unique())
    codes = entity_codes(ids, customers)
    columns = clv_arrays(orders, customers, codes, cutoffs, timezone=timezone)
    return pd.DataFrame(columns, index=customer_cutoffs.index)


def clv_arrays(
    orders: pd.DataFrame,
    customers: pd.Index,
    codes: np.ndarray,
    cutoffs: np.ndarray,
    *,
    timezone: str,
) -> dict[str, np.ndarray]:
    """Return the CLV columns for query rows given as customer codes (-1: none) and cutoffs."""
    require_columns(orders, "orders", ("customer_id", "ordered_at", "amount"))
    rows = len(codes)
    columns = {name: np.full(rows, np.nan) for name in CLV_COLUMNS}
    columns["order_count"] = np.zeros(rows)
    columns["total_net_value"] = np.zeros(rows)

    order_codes = entity_codes(orders["customer_id"], customers)
    known = order_codes >= 0
    order_codes = order_codes[known]
    times = timestamp_micros(orders["ordered_at"], column="ordered_at")[known]
    amounts = orders["amount"].to_numpy(dtype=np.float64)[known]
    queried = codes >= 0
    if not queried.any() or len(order_codes) == 0:
        return columns

    query_codes = codes[queried]
    query_cutoffs = cutoffs[queried]
    purchase_columns = _purchase_features(
        order_codes, times, amounts, query_codes, query_cutoffs, timezone=timezone
    )
    net_columns = _net_features(order_codes, times, amounts, query_codes, query_cutoffs)

    gross = purchase_columns.pop("gross_purchase_value")
    count = purchase_columns["order_count"]
    refunds = net_columns.pop("refund_value")
    with np.errstate(divide="ignore", invalid="ignore"):
        net_columns["mean_net_value"] = np.where(count > 0, net_columns["total_net_value"] / count, np.nan)
        net_columns["refund_share"] = np.where(gross > 0, refunds / gross, np.nan)
    for name, values in {**purchase_columns, **net_columns}.items():
        columns[name][queried] = values
    return columns


@dataclass(frozen=True)
class _PurchaseDays:
    """Per purchase line, in the index's sorted order: its calendar day and day structure."""

    days: np.ndarray  # local calendar day number
    new_day: np.ndarray  # first line of a purchase day of its customer
    gaps: np.ndarray  # days since the customer's previous purchase day (0 except on new days)
    on_first_day: np.ndarray  # line falls on the customer's first purchase day

    @classmethod
    def of(cls, index: EventIndex, timezone: str) -> _PurchaseDays:
        days = local_day_numbers(index.times, timezone)
        new_block = np.ones(len(index), dtype=bool)
        new_block[1:] = index.codes[1:] != index.codes[:-1]
        new_day = new_block.copy()
        new_day[1:] |= days[1:] != days[:-1]
        previous_day = np.concatenate([days[:1], days[:-1]])
        gaps = np.where(new_day & ~new_block, days - previous_day, 0)
        block_start = np.maximum.accumulate(np.where(new_block, np.arange(len(index)), 0))
        return cls(days, new_day, gaps, days == days[block_start])


def _purchase_features(
    order_codes: np.ndarray,
    times: np.ndarray,
    amounts: np.ndarray,
    query_codes: np.ndarray,
    query_cutoffs: np.ndarray,
    *,
    timezone: str,
) -> dict[str, np.ndarray]:
    purchase = amounts >= 0
    amounts = amounts[purchase]
    index = EventIndex(order_codes[purchase], times[purchase], amounts)
    if len(index) == 0:
        result = {name: np.full(len(query_codes), np.nan) for name in _PURCHASE_COLUMNS}
        result["order_count"] = np.zeros(len(query_codes))
        result["gross_purchase_value"] = np.zeros(len(query_codes))
        return result

    start = index.block_starts(query_codes)
    position = index.positions_before(query_codes, query_cutoffs)
    has = position > start
    last = position - 1
    purchase_days = _PurchaseDays.of(index, timezone)
    frequency = _window_sum(purchase_days.new_day, start, position) - 1
    first_day = gather(purchase_days.days, start, has, np.nan)
    last_included_day = local_day_numbers(query_cutoffs - 1, timezone)
    result = {
        "order_count": (position - start).astype(np.float64),
        "frequency": np.where(has, frequency, np.nan),
        "recency": gather(purchase_days.days, last, has, np.nan) - first_day,
        "T": np.where(has, last_included_day - first_day, np.nan),
    }

    running = index.entity_cumsum(amounts)
    gross = gather(running, last, has, 0.0)
    first_day_rows = _window_sum(purchase_days.on_first_day, start, position)
    first_day_total = gather(running, start + first_day_rows - 1, has, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        repeat_mean = (gross - first_day_total) / frequency
    result["monetary_value"] = np.where(has, np.where(frequency > 0, repeat_mean, 0.0), np.nan)
    result["gross_purchase_value"] = gross
    result.update(_interpurchase_stats(purchase_days.gaps, start, position, frequency, has))

    first_time = gather(index.times, start, has, np.nan)
    last_time = gather(index.times, last, has, np.nan)
    result["tenure_days"] = (query_cutoffs - first_time) / MICROS_PER_DAY
    result["days_since_last_order"] = (query_cutoffs - last_time) / MICROS_PER_DAY
    return result


def _interpurchase_stats(
    gaps: np.ndarray, start: np.ndarray, position: np.ndarray, frequency: np.ndarray, has: np.ndarray
) -> dict[str, np.ndarray]:
    """Return the mean and sample standard deviation of the gaps between purchase days."""
    gap_sum = _window_sum(gaps, start, position).astype(np.float64)
    gap_square_sum = _window_sum(gaps * gaps, start, position).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_gap = gap_sum / frequency
        variance = (gap_square_sum - frequency * mean_gap * mean_gap) / (frequency - 1)
    return {
        "interpurchase_mean_days": np.where(has & (frequency >= 1), mean_gap, np.nan),
        "interpurchase_std_days": np.where(
            has & (frequency >= 2), np.sqrt(np.clip(variance, 0.0, None)), np.nan
        ),
    }


def _net_features(
    order_codes: np.ndarray,
    times: np.ndarray,
    amounts: np.ndarray,
    query_codes: np.ndarray,
    query_cutoffs: np.ndarray,
) -> dict[str, np.ndarray]:
    index = EventIndex(order_codes, times, amounts)
    start = index.block_starts(query_codes)
    position = index.positions_before(query_codes, query_cutoffs)
    has = position > start
    net = index.entity_cumsum(amounts)
    refunded = index.entity_cumsum(np.clip(-amounts, 0.0, None))
    return {
        "total_net_value": gather(net, position - 1, has, 0.0),
        "refund_value": gather(refunded, position - 1, has, 0.0),
    }


def _window_sum(values: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Return the sum of integer ``values`` (sorted order) over [start, stop) per query."""
    prefix = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(np.asarray(values, dtype=np.int64), out=prefix[1:])
    return prefix[stop] - prefix[start]


def customer_columns(
    leads: pd.DataFrame,
    lead_positions: np.ndarray,
    cutoffs: np.ndarray,
    orders: pd.DataFrame,
    *,
    timezone: str,
) -> dict[str, np.ndarray]:
    """Return the CLV features of each spine row's customer, prefixed ``customer_``.

    ``is_existing_customer`` comes from orders before the cutoff, never from the presence
    of customer_id: a CRM may fill customer_id only once the lead has converted.
    """
    if "customer_id" in leads.columns:
        row_ids = pd.Series(leads["customer_id"].to_numpy()[lead_positions])
    else:
        row_ids = pd.Series([None] * len(lead_positions), dtype="str")
    customers = pd.Index(row_ids.dropna().unique())
    codes = entity_codes(row_ids, customers)
    columns = clv_arrays(orders, customers, codes, cutoffs, timezone=timezone)
    result = {"is_existing_customer": (columns["order_count"] > 0).astype(np.float64)}
    result.update({f"customer_{name}": values for name, values in columns.items()})
    return result
