"""Per-customer recency-frequency-monetary summary with a calibration and a holdout window.

The summary feeds BG/NBD and Gamma-Gamma (``training.baselines.btyd``) and the holdout targets
of lifetime-value experiments. It follows the conventions of the buy-till-you-die literature:

- Transactions are aggregated per customer and calendar day, so several order lines on one
  day count as one purchase whose value is their sum.
- ``frequency`` is the number of purchase days after the first one within calibration, and
  ``recency`` is the time from the first to the last purchase day.
- ``T`` is the time from the first purchase day to the last day of calibration. A customer who
  first bought on 1997-01-01, with calibration ending after 1997-09-30, has T = 272 days.
- ``monetary_value`` is the mean value of the repeat purchase days, 0 without repeat purchases.
  The first purchase is left out, as in the Gamma-Gamma literature.
- A purchase is an order line with a value >= 0. Lines with a negative value are refunds: they
  are not purchases, and only ``revenue_holdout`` (net revenue) includes them. These are the
  definitions of ``features.clv``, which computes the same columns in days.

The cutoff is exclusive: calibration contains the days before it and the holdout window opens on
it. Customers without a purchase before the cutoff are not part of the cohort.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data.schema import DEFAULT_TIMEZONE
from leadscore.errors import DataValidationError, InsufficientDataError, SchemaError

logger = logging.getLogger(__name__)

WEEK = pd.Timedelta(weeks=1)

EXCLUDED_NEW_CUSTOMER = "customer without a purchase before the cutoff"
EXCLUDED_AFTER_WINDOW = "after the end of the last window"
EXCLUDED_CALIBRATION_REFUND = "refund before the cutoff (not a purchase)"


@dataclass(frozen=True)
class RfmSummary:
    """The per-customer summary and the transactions that were left out of it."""

    customers: pd.DataFrame
    """One row per customer of the calibration cohort, sorted by customer id. Columns:
    customer_id, first_purchase, frequency, recency, T, monetary_value (with a value column),
    and with a holdout window frequency_holdout, revenue_holdout (net of refunds, with a value
    column) and duration_holdout."""
    excluded_transactions: dict[str, int] = field(default_factory=dict)
    """Transaction rows left out, counted by reason."""


def summarize_transactions(
    transactions: pd.DataFrame,
    *,
    cutoff: pd.Timestamp | str,
    holdout_end: pd.Timestamp | str | None = None,
    customer_column: str = "customer_id",
    time_column: str = "ordered_at",
    value_column: str | None = "amount",
    time_unit: pd.Timedelta = WEEK,
    timezone: str = DEFAULT_TIMEZONE,
) -> RfmSummary:
    """Summarize transactions per customer for calibration (before ``cutoff``) and holdout.

    ``cutoff`` and ``holdout_end`` must be midnights in ``timezone``, the business timezone that
    defines calendar days. Timezone-aware timestamps are converted to it, and naive timestamps
    and cutoffs are taken as already in it. Recency, T and duration_holdout are expressed in
    ``time_unit`` (weeks by default). Without ``holdout_end``, transactions on or after the
    cutoff are left out. With it, the holdout window is [cutoff, holdout_end). Every
    transaction row left out is counted by reason in ``excluded_transactions`` and logged.
    Missing ids, missing times and non-finite values raise instead of being dropped.
    """
    if time_unit <= pd.Timedelta(0):
        raise ValueError(
            f"time_unit must be a positive duration such as pd.Timedelta(weeks=1); got {time_unit}"
        )
    cutoff_day = _local_midnight("cutoff", cutoff, timezone)
    holdout_end_day = None if holdout_end is None else _local_midnight("holdout_end", holdout_end, timezone)
    if holdout_end_day is not None and holdout_end_day <= cutoff_day:
        raise ValueError(
            f"holdout_end ({holdout_end_day.date()}) must be after cutoff ({cutoff_day.date()}); "
            "the holdout window is [cutoff, holdout_end)."
        )

    lines = _transaction_lines(transactions, customer_column, time_column, value_column, timezone)
    purchases = lines.loc[lines["is_purchase"]]
    first_days = purchases.groupby("customer_id", sort=True)["day"].min()
    first_day_of_line = lines["customer_id"].map(first_days)
    in_cohort = (first_day_of_line < cutoff_day).to_numpy(dtype=bool)
    if not in_cohort.any():
        raise InsufficientDataError(
            f"no customer made a purchase before the cutoff {cutoff_day.date()} "
            f"({len(transactions)} transaction rows); choose a later cutoff."
        )
    window_end = cutoff_day if holdout_end_day is None else holdout_end_day
    in_window = (lines["day"] < window_end).to_numpy()
    in_calibration = (lines["day"] < cutoff_day).to_numpy()
    is_purchase = lines["is_purchase"].to_numpy()

    excluded = {
        EXCLUDED_NEW_CUSTOMER: int((~in_cohort).sum()),
        EXCLUDED_AFTER_WINDOW: int((in_cohort & ~in_window).sum()),
        EXCLUDED_CALIBRATION_REFUND: int((in_cohort & in_calibration & ~is_purchase).sum()),
    }
    excluded = {reason: count for reason, count in excluded.items() if count}
    for reason, count in excluded.items():
        logger.info("RFM summary left out %d transaction rows: %s", count, reason)

    calibration = _daily_totals(lines.loc[in_cohort & in_calibration & is_purchase])
    customers = _calibration_summary(calibration, cutoff_day, time_unit, value_column is not None)
    if holdout_end_day is not None:
        holdout = lines.loc[in_cohort & in_window & ~in_calibration]
        customers = _add_holdout(customers, holdout, holdout_end_day - cutoff_day, time_unit, value_column)
    logger.info(
        "RFM summary: %d customers, calibration before %s, holdout until %s",
        len(customers),
        cutoff_day.date(),
        "none" if holdout_end_day is None else holdout_end_day.date(),
    )
    return RfmSummary(customers=customers.reset_index(drop=True), excluded_transactions=excluded)


def _local_midnight(name: str, value: pd.Timestamp | str, timezone: str) -> pd.Timestamp:
    """Return ``value`` as a naive timestamp in ``timezone``, raising unless it is a midnight there."""
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a date such as '1997-10-01'; got {value!r} ({error}).") from None
    if stamp is pd.NaT:
        raise ValueError(f"{name} must be a date such as '1997-10-01'; got a missing value.")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(timezone).tz_localize(None)
    if stamp != stamp.normalize():
        raise ValueError(
            f"{name} must be a midnight in {timezone} because transactions are counted per calendar day; "
            f"got {stamp}. Pass a date such as '{stamp.normalize().date()}'."
        )
    return stamp


def _transaction_lines(
    transactions: pd.DataFrame,
    customer_column: str,
    time_column: str,
    value_column: str | None,
    timezone: str,
) -> pd.DataFrame:
    """Validate transaction rows and return customer_id, local day, value and is_purchase per row."""
    if transactions.empty:
        raise InsufficientDataError("transactions is empty; an RFM summary needs at least one purchase.")
    needed = [customer_column, time_column] + ([value_column] if value_column else [])
    missing = [column for column in needed if column not in transactions.columns]
    if missing:
        raise SchemaError(
            f"transactions lack column(s) {', '.join(missing)}; "
            f"available: {', '.join(map(str, transactions.columns))}. "
            "Pass customer_column, time_column and value_column to match your table."
        )

    customer_ids = transactions[customer_column]
    _reject_missing(customer_column, customer_ids.isna().to_numpy())
    days = _local_days(transactions[time_column], time_column, timezone)
    lines = pd.DataFrame({"customer_id": customer_ids.astype("str").to_numpy(), "day": days.to_numpy()})
    if value_column:
        values = pd.to_numeric(transactions[value_column], errors="coerce").astype("float64")
        _reject_missing(value_column, ~np.isfinite(values.to_numpy()))
        lines["value"] = values.to_numpy()
        lines["is_purchase"] = lines["value"] >= 0
    else:
        lines["is_purchase"] = True
    return lines


def _daily_totals(purchases: pd.DataFrame) -> pd.DataFrame:
    """Aggregate purchase lines per customer and day, summing their value when there is one."""
    columns = ["value"] if "value" in purchases.columns else []
    grouped = purchases.groupby(["customer_id", "day"], as_index=False, sort=True)
    return grouped[columns].sum() if columns else grouped.size()[["customer_id", "day"]]


def _local_days(times: pd.Series, column: str, timezone: str) -> pd.Series:
    if not pd.api.types.is_datetime64_any_dtype(times):
        raise SchemaError(
            f"column {column!r} must hold timestamps (datetime64); got dtype {times.dtype}. "
            "Parse it first, for example with pd.to_datetime."
        )
    _reject_missing(column, times.isna().to_numpy())
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert(timezone).dt.tz_localize(None)
    return times.dt.normalize()


def _reject_missing(column: str, mask: np.ndarray) -> None:
    bad = np.flatnonzero(mask)
    if bad.size:
        raise DataValidationError(
            f"column {column!r} has {bad.size} missing or non-numeric value(s), "
            f"first at row position {bad[0]}; fix or drop those transaction rows before summarizing."
        )


def _calibration_summary(
    calibration: pd.DataFrame, cutoff_day: pd.Timestamp, time_unit: pd.Timedelta, with_value: bool
) -> pd.DataFrame:
    grouped = calibration.groupby("customer_id", sort=True)
    first_day = grouped["day"].min()
    last_day = grouped["day"].max()
    purchase_days = grouped["day"].size()
    last_calibration_day = cutoff_day - pd.Timedelta(days=1)

    customers = pd.DataFrame(
        {
            "customer_id": first_day.index.astype("str"),
            "first_purchase": first_day.to_numpy(),
            "frequency": (purchase_days - 1).to_numpy(dtype=np.int64),
            "recency": _in_units(last_day - first_day, time_unit),
            "T": _in_units(last_calibration_day - first_day, time_unit),
        }
    )
    if with_value:
        is_first = calibration["day"].to_numpy() == calibration["customer_id"].map(first_day).to_numpy()
        repeat = calibration.loc[~is_first]
        repeat_mean = repeat.groupby("customer_id", sort=True)["value"].mean()
        customers["monetary_value"] = customers["customer_id"].map(repeat_mean).fillna(0.0).astype("float64")
    return customers


def _in_units(durations: pd.Series, time_unit: pd.Timedelta) -> np.ndarray:
    return durations.to_numpy(dtype="timedelta64[us]") / time_unit.to_timedelta64()


def _add_holdout(
    customers: pd.DataFrame,
    holdout: pd.DataFrame,
    duration: pd.Timedelta,
    time_unit: pd.Timedelta,
    value_column: str | None,
) -> pd.DataFrame:
    """Add holdout purchase days, net revenue (refunds included) and the window length."""
    purchase_days = _daily_totals(holdout.loc[holdout["is_purchase"]]).groupby("customer_id").size()
    customers["frequency_holdout"] = customers["customer_id"].map(purchase_days).fillna(0).astype("int64")
    if value_column:
        net_revenue = holdout.groupby("customer_id")["value"].sum()
        customers["revenue_holdout"] = customers["customer_id"].map(net_revenue).fillna(0.0).astype("float64")
    customers["duration_holdout"] = duration / time_unit
    return customers
