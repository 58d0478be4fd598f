"""Activity features of each (lead, cutoff) row, from activities strictly before the cutoff."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.schema import ACTIVITY_TYPES, DIRECTIONS
from features.catalog import window_feature_name
from features.config import FeatureConfig
from features.inputs import require_columns, shown
from features.windows import (
    MICROS_PER_DAY,
    MICROS_PER_HOUR,
    EventIndex,
    entity_codes,
    gather,
    timestamp_micros,
)
from leadscore.errors import DataValidationError

_REQUIRED = ("lead_id", "occurred_at", "type", "direction")


def activity_columns(
    activities: pd.DataFrame,
    leads: pd.Index,
    lead_positions: np.ndarray,
    cutoffs: np.ndarray,
    created: np.ndarray,
    config: FeatureConfig,
) -> dict[str, np.ndarray]:
    """Return the activity features per spine row.

    ``leads`` maps lead ids to codes; ``lead_positions`` gives each row's code, ``cutoffs``
    its cutoff and ``created`` its lead's creation time (all int64 microseconds).
    """
    require_columns(activities, "activities", _REQUIRED)
    codes = entity_codes(activities["lead_id"], leads)
    relevant = np.isin(codes, np.unique(lead_positions))
    events = activities if relevant.all() else activities[relevant]
    types = _category_codes(events["type"], ACTIVITY_TYPES, "type")
    directions = _category_codes(events["direction"], DIRECTIONS, "direction")
    index = EventIndex(codes[relevant], timestamp_micros(events["occurred_at"], column="occurred_at"))

    columns: dict[str, np.ndarray] = {}
    start = index.block_starts(lead_positions)
    position = index.positions_before(lead_positions, cutoffs)
    columns["activities_total"] = (position - start).astype(np.float64)
    columns.update(_window_counts(index, types, directions, lead_positions, cutoffs, position, config))
    columns.update(_recency(index, directions, start, position, cutoffs))
    columns.update(_first_contact(index, directions, lead_positions, start, cutoffs, created, config))
    columns["distinct_reps"] = _distinct_reps(events, index, lead_positions, cutoffs)
    if len(config.windows_days) >= 2:
        columns["engagement_trend"] = _engagement_trend(columns, config.windows_days)
    return columns


def _category_codes(values: pd.Series, allowed: tuple[str, ...], column: str) -> np.ndarray:
    codes = entity_codes(values, pd.Index(allowed))
    invalid = codes < 0
    if invalid.any():
        raise DataValidationError(
            f"activities column {column!r} has {int(invalid.sum())} value(s) outside {list(allowed)}, "
            f"for example {shown(pd.unique(values.to_numpy()[invalid]))}; "
            "validate the data folder with data.validate.validate_tables and fix those rows"
        )
    return codes


def _window_counts(
    index: EventIndex,
    types: np.ndarray,
    directions: np.ndarray,
    lead_positions: np.ndarray,
    cutoffs: np.ndarray,
    position: np.ndarray,
    config: FeatureConfig,
) -> dict[str, np.ndarray]:
    """Count events in [cutoff - days, cutoff) per window, in total, per direction and per type."""
    group_flags: dict[str | None, np.ndarray] = {None: np.ones(len(index), dtype=bool)}
    for code, direction in enumerate(DIRECTIONS):
        group_flags[direction] = directions == code
    for code, activity_type in enumerate(ACTIVITY_TYPES):
        group_flags[activity_type] = types == code
    prefixes = {group: index.prefix_counts(flags) for group, flags in group_flags.items()}

    columns: dict[str, np.ndarray] = {}
    for days in config.windows_days:
        window_start = index.positions_before(lead_positions, cutoffs - days * MICROS_PER_DAY)
        for group, prefix in prefixes.items():
            counts = prefix[position] - prefix[window_start]
            columns[window_feature_name(group, days)] = counts.astype(np.float64)
    return columns


def _recency(
    index: EventIndex,
    directions: np.ndarray,
    start: np.ndarray,
    position: np.ndarray,
    cutoffs: np.ndarray,
) -> dict[str, np.ndarray]:
    has_any = position > start
    last_time = gather(index.times, position - 1, has_any, np.nan)

    inbound = index.sorted_values(directions) == DIRECTIONS.index("inbound")
    # Position of the latest inbound event at or before each sorted position (-1: none yet).
    latest_inbound = (
        np.maximum.accumulate(np.where(inbound, np.arange(len(index)), -1)) if len(index) else inbound
    )
    candidate = gather(latest_inbound, position - 1, has_any, -1).astype(np.int64)
    has_inbound = has_any & (candidate >= start)
    last_inbound_time = gather(index.times, candidate, has_inbound, np.nan)
    return {
        "days_since_last_activity": (cutoffs - last_time) / MICROS_PER_DAY,
        "days_since_last_inbound": (cutoffs - last_inbound_time) / MICROS_PER_DAY,
    }


def _first_contact(
    index: EventIndex,
    directions: np.ndarray,
    lead_positions: np.ndarray,
    start: np.ndarray,
    cutoffs: np.ndarray,
    created: np.ndarray,
    config: FeatureConfig,
) -> dict[str, np.ndarray]:
    """Hours to the first outbound activity, or the hours waited so far when none came yet."""
    size = len(index)
    outbound = index.sorted_values(directions) == DIRECTIONS.index("outbound")
    # Position of the earliest outbound event at or after each sorted position (size: none).
    next_outbound = np.full(size + 1, size, dtype=np.int64)
    if size:
        candidates = np.where(outbound, np.arange(size), size)
        next_outbound[:size] = np.minimum.accumulate(candidates[::-1])[::-1]
    first = next_outbound[start]
    in_lead = first < size
    in_lead[in_lead] = index.codes[first[in_lead]] == lead_positions[in_lead]
    first_time = gather(index.times, first, in_lead, np.nan)
    contacted = in_lead & (first_time < cutoffs)

    waited_until = np.where(contacted, first_time, cutoffs)
    hours = (waited_until - created) / MICROS_PER_HOUR
    return {
        "contacted": contacted.astype(np.float64),
        "hours_to_first_contact": hours,
        "first_contact_sla_breached": (hours > config.first_contact_sla_hours).astype(np.float64),
    }


def _distinct_reps(
    events: pd.DataFrame, index: EventIndex, lead_positions: np.ndarray, cutoffs: np.ndarray
) -> np.ndarray:
    """Count reps whose first activity on the lead came before the cutoff."""
    if "rep_id" not in events.columns or len(index) == 0:
        return np.zeros(len(lead_positions))
    rep_codes, distinct_reps = pd.factorize(events["rep_id"])
    rep_codes = index.sorted_values(rep_codes)
    # Events are sorted by lead and time, so the first copy of a (lead, rep) pair is the
    # rep's first touch. Missing reps (code -1) are left out.
    pairs = pd.Series(index.codes * (len(distinct_reps) + 1) + rep_codes)
    first = (~pairs.duplicated(keep="first")).to_numpy() & (rep_codes >= 0)
    touches = EventIndex(index.codes[first], index.times[first])
    return touches.counts_before(lead_positions, cutoffs).astype(np.float64)


def _engagement_trend(columns: dict[str, np.ndarray], windows_days: tuple[int, ...]) -> np.ndarray:
    recent_days, earlier_days = windows_days[0], windows_days[1]
    recent = columns[window_feature_name(None, recent_days)]
    earlier = columns[window_feature_name(None, earlier_days)] - recent
    return recent / recent_days - earlier / (earlier_days - recent_days)
