"""Features of one lead at one cutoff, computed row by row from typed payload rows.

``lead_features`` returns the values that ``features.pipeline.build_features`` gives the
same lead, in the order of ``feature_definitions``, without building pandas frames. A
request that scores one lead spends most of the table path's time on pandas overhead for
one-row frames, and this path avoids it.

Each function below restates one batch function for a single lead: the same events, the
same sort order and the same float64 operations in the same order, so the values are equal
to the last bit. ``tests/features/test_single_lead.py`` checks that on varied synthetic
leads. A change to a batch feature needs the same change here, or that test fails.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import itertools
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from data.folder import CustomAttribute
from data.payload_rows import ActivityRow, LeadRow, OrderRow
from data.schema import ACTIVITY_TYPES, DIRECTIONS
from data.stages import STAGE_CODES, stage_order
from features.catalog import LEAD_ATTRIBUTE_FEATURES, FeatureDef, window_feature_name
from features.config import FeatureConfig
from features.pipeline import feature_definitions
from features.windows import MICROS_PER_DAY, MICROS_PER_HOUR

_INITIAL_STAGE = "lead"
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def lead_features(
    lead: LeadRow,
    orders: Sequence[OrderRow],
    cutoff: int,
    config: FeatureConfig,
    attributes: Sequence[CustomAttribute],
) -> dict[str, Any]:
    """Return every feature of ``lead`` at ``cutoff`` (microseconds, UTC), in definition order.

    ``orders`` are the order lines of the lead's customer. Categorical values are ``str`` or
    None when missing; numeric values are ``float`` (NaN when missing).
    """
    definitions = _definitions(config, tuple(attributes))
    computed: dict[str, Any] = {}
    computed.update(_attribute_values(lead, cutoff, definitions, attributes))
    computed.update(_lead_time_values(lead.created_at, cutoff, config.timezone))
    computed.update(_stage_values(lead, cutoff))
    computed.update(_activity_values(lead, cutoff, config))
    computed.update(_customer_values(orders if lead.customer_id is not None else (), cutoff, config.timezone))
    return {definition.name: computed[definition.name] for definition in definitions}


@functools.lru_cache(maxsize=16)
def _definitions(config: FeatureConfig, attributes: tuple[CustomAttribute, ...]) -> tuple[FeatureDef, ...]:
    return tuple(feature_definitions(config, attributes))


def _attribute_values(
    lead: LeadRow, cutoff: int, definitions: Sequence[FeatureDef], attributes: Sequence[CustomAttribute]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for definition in LEAD_ATTRIBUTE_FEATURES:
        values[definition.name] = _plain(lead.values.get(definition.name), definition.kind)

    declared = {attribute.name: attribute for attribute in attributes}
    for definition in definitions:
        if definition.attribute is None:
            continue
        value = lead.values.get(definition.attribute)
        kind = declared[definition.attribute].type
        if kind == "timestamp":
            values[definition.name] = _days_before_cutoff(value, cutoff)
        elif kind == "bool":
            values[definition.name] = math.nan if value is None else float(value)
        else:
            values[definition.name] = _plain(value, definition.kind)
    return values


def _days_before_cutoff(moment: int | None, cutoff: int) -> float:
    """Return days from a timestamp attribute to the cutoff; NaN unless strictly before it."""
    if moment is None or moment >= cutoff:
        return math.nan
    return _days_since(moment, cutoff)


def _plain(value: Any, kind: str) -> Any:
    if kind == "categorical":
        return value
    return math.nan if value is None else float(value)


def _lead_time_values(created: int, cutoff: int, timezone: str) -> dict[str, float]:
    local = pd.Timestamp(created, unit="us", tz="UTC").tz_convert(timezone)
    return {
        "lead_age_days": float(cutoff - created) / MICROS_PER_DAY,
        "created_hour_local": float(local.hour),
        "created_weekday_local": float(local.day_of_week),
    }


def _stage_values(lead: LeadRow, cutoff: int) -> dict[str, Any]:
    """Mirror ``features.lead_features.stage_columns``: ties at one instant sort by funnel position."""
    changes = sorted(
        lead.stage_changes, key=lambda change: (change.changed_at, STAGE_CODES.index(change.stage))
    )
    before = [change for change in changes if change.changed_at < cutoff]
    if not before:
        return {
            "stage": _INITIAL_STAGE,
            "days_in_stage": float(cutoff - lead.created_at) / MICROS_PER_DAY,
            "stage_changes_count": 0.0,
            "furthest_stage_order": 0.0,
        }

    current = before[-1].stage
    run_start = len(before) - 1
    while run_start > 0 and before[run_start - 1].stage == current:
        run_start -= 1
    entered = before[run_start].changed_at
    furthest = max(_funnel_rank(change.stage) for change in before)
    return {
        "stage": current,
        "days_in_stage": float(cutoff - entered) / MICROS_PER_DAY,
        "stage_changes_count": float(len(before)),
        "furthest_stage_order": float(max(furthest, 0)),
    }


def _funnel_rank(code: str) -> int:
    order = stage_order(code)
    return -1 if order is None else order


def _activity_values(lead: LeadRow, cutoff: int, config: FeatureConfig) -> dict[str, float]:
    """Mirror ``features.activity_features.activity_columns`` for one lead."""
    events = sorted(lead.activities, key=lambda event: event.occurred_at)
    before = [event for event in events if event.occurred_at < cutoff]
    values: dict[str, float] = {"activities_total": float(len(before))}
    values.update(_window_counts(before, cutoff, config.windows_days))

    inbound = [event for event in before if event.direction == "inbound"]
    values["days_since_last_activity"] = _days_since(before[-1].occurred_at, cutoff) if before else math.nan
    values["days_since_last_inbound"] = _days_since(inbound[-1].occurred_at, cutoff) if inbound else math.nan

    first_outbound = next((event for event in events if event.direction == "outbound"), None)
    contacted = first_outbound is not None and first_outbound.occurred_at < cutoff
    waited_until = first_outbound.occurred_at if first_outbound is not None and contacted else cutoff
    hours = float(waited_until - lead.created_at) / MICROS_PER_HOUR
    values["contacted"] = 1.0 if contacted else 0.0
    values["hours_to_first_contact"] = hours
    values["first_contact_sla_breached"] = 1.0 if hours > config.first_contact_sla_hours else 0.0

    values["distinct_reps"] = float(len({event.rep_id for event in before if event.rep_id is not None}))
    if len(config.windows_days) >= 2:
        recent_days, earlier_days = config.windows_days[0], config.windows_days[1]
        recent = values[window_feature_name(None, recent_days)]
        earlier = values[window_feature_name(None, earlier_days)] - recent
        values["engagement_trend"] = recent / recent_days - earlier / (earlier_days - recent_days)
    return values


def _window_counts(
    before: Sequence[ActivityRow], cutoff: int, windows_days: Sequence[int]
) -> dict[str, float]:
    counts: dict[str, float] = {}
    for days in windows_days:
        start = cutoff - days * MICROS_PER_DAY
        recent = [event for event in before if event.occurred_at >= start]
        by_group = collections.Counter(event.direction for event in recent)
        by_group.update(event.type for event in recent)
        counts[window_feature_name(None, days)] = float(len(recent))
        for group in (*DIRECTIONS, *ACTIVITY_TYPES):
            counts[window_feature_name(group, days)] = float(by_group[group])
    return counts


def _days_since(moment: int, cutoff: int) -> float:
    return float(cutoff - moment) / MICROS_PER_DAY


# --- customer lifetime value -----------------------------------------------------------------------


def _customer_values(orders: Sequence[OrderRow], cutoff: int, timezone: str) -> dict[str, float]:
    """Mirror ``features.clv.customer_columns`` for one lead's customer."""
    columns = _purchase_values(orders, cutoff, timezone)
    net, refunds = _net_values(orders, cutoff)
    count = columns["order_count"]
    gross = columns.pop("gross_purchase_value")
    columns["total_net_value"] = net
    columns["mean_net_value"] = net / count if count > 0 else math.nan
    columns["refund_share"] = refunds / gross if gross > 0 else math.nan

    result = {"is_existing_customer": 1.0 if count > 0 else 0.0}
    for name in (
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
    ):
        result[f"customer_{name}"] = columns[name]
    return result


def _purchase_values(orders: Sequence[OrderRow], cutoff: int, timezone: str) -> dict[str, float]:
    """Purchase features over order lines with amount >= 0, sorted by time then amount."""
    lines = sorted(
        (line for line in orders if line.amount >= 0), key=lambda line: (line.ordered_at, line.amount)
    )
    before = [line for line in lines if line.ordered_at < cutoff]
    if not before:
        missing = math.nan
        return {
            "order_count": 0.0,
            "gross_purchase_value": 0.0,
            **dict.fromkeys(
                (
                    "frequency",
                    "recency",
                    "T",
                    "monetary_value",
                    "tenure_days",
                    "days_since_last_order",
                    "interpurchase_mean_days",
                    "interpurchase_std_days",
                ),
                missing,
            ),
        }

    days = [_local_day(line.ordered_at, timezone) for line in before]
    running = _running_sums([line.amount for line in before])
    distinct_days = sorted(set(days))
    frequency = len(distinct_days) - 1
    first_day = days[0]
    first_day_rows = sum(1 for day in days if day == first_day)
    gross = running[-1]
    first_day_total = running[first_day_rows - 1]
    gaps = [later - earlier for earlier, later in itertools.pairwise(distinct_days)]
    gap_sum = float(sum(gaps))
    gap_square_sum = float(sum(gap * gap for gap in gaps))

    values = {
        "order_count": float(len(before)),
        "gross_purchase_value": gross,
        "frequency": float(frequency),
        "recency": float(days[-1]) - float(first_day),
        "T": float(_local_day(cutoff - 1, timezone) - first_day),
        "monetary_value": (gross - first_day_total) / frequency if frequency > 0 else 0.0,
        "tenure_days": float(cutoff - before[0].ordered_at) / MICROS_PER_DAY,
        "days_since_last_order": float(cutoff - before[-1].ordered_at) / MICROS_PER_DAY,
        "interpurchase_mean_days": math.nan,
        "interpurchase_std_days": math.nan,
    }
    if frequency >= 1:
        mean_gap = gap_sum / frequency
        values["interpurchase_mean_days"] = mean_gap
    if frequency >= 2:
        variance = (gap_square_sum - frequency * mean_gap * mean_gap) / (frequency - 1)
        values["interpurchase_std_days"] = math.sqrt(max(variance, 0.0))
    return values


def _net_values(orders: Sequence[OrderRow], cutoff: int) -> tuple[float, float]:
    """Return net revenue and refunded value of the order lines before the cutoff."""
    lines = sorted(orders, key=lambda line: (line.ordered_at, line.amount))
    before = [line for line in lines if line.ordered_at < cutoff]
    if not before:
        return 0.0, 0.0
    net = _running_sums([line.amount for line in before])[-1]
    refunded = _running_sums([max(-line.amount, 0.0) for line in before])[-1]
    return net, refunded


def _running_sums(values: Sequence[float]) -> list[float]:
    """Return the running sums of ``values`` as pandas' grouped ``cumsum`` computes them.

    pandas (checked with 3.1.1) sums groups with Kahan compensation, which
    ``features.windows.EventIndex.entity_cumsum`` inherits, so this does the same.
    """
    total = 0.0
    compensation = 0.0
    sums: list[float] = []
    for value in values:
        adjusted = value - compensation
        updated = total + adjusted
        compensation = updated - total - adjusted
        total = updated
        sums.append(total)
    return sums


@functools.lru_cache(maxsize=4096)
def _local_day(micros: int, timezone: str) -> int:
    """Return the calendar day (days since 1970-01-01) of an instant in ``timezone``."""
    local = pd.Timestamp(micros, unit="us", tz="UTC").tz_convert(timezone)
    return local.date().toordinal() - _EPOCH_ORDINAL
