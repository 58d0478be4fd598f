"""Labels from the window after each cutoff: conversion within the horizon and net revenue.

The label window starts at the cutoff itself: an event exactly at the cutoff is invisible
to the features (they use time < cutoff) and counts for the label. Both windows include
their end, so a lead won exactly ``horizon_days`` after the cutoff counts as converted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.folder import CanonicalTables
from data.stages import WON
from features.config import FeatureConfig
from features.inputs import check_spine, lead_index, require_columns, spine_lead_positions
from features.spine import latest_event_time
from features.windows import MICROS_PER_DAY, EventIndex, entity_codes, scalar_micros, timestamp_micros

LABEL_COLUMNS = ("converted", "value", "label_complete", "value_complete")


def attach_labels(
    spine: pd.DataFrame,
    tables: CanonicalTables,
    config: FeatureConfig,
    observed_until: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Return ``spine`` with labels added, same rows and order.

    converted (int8): the lead entered ``won`` in [cutoff, cutoff + horizon_days].
    value (float64): net order revenue of the lead's customer in
    [cutoff, cutoff + ltv_horizon_days], refunds netted. It is 0.0 for a lead without
    customer_id.
    label_complete / value_complete (bool): the conversion / LTV window ends at or before
    ``observed_until`` (default: the latest event in ``tables``). A lead already converted
    has a known label even when its window is incomplete, but the flag follows the window
    alone so that training can filter on one rule.
    """
    cutoffs = check_spine(spine)
    leads = lead_index(tables.leads)
    lead_positions = spine_lead_positions(spine, leads)
    until = scalar_micros(
        observed_until if observed_until is not None else latest_event_time(tables), name="observed_until"
    )
    horizon = config.horizon_days * MICROS_PER_DAY
    ltv_horizon = config.ltv_horizon_days * MICROS_PER_DAY

    labelled = spine.copy()
    labelled["converted"] = _converted(tables, leads, lead_positions, cutoffs, horizon)
    labelled["value"] = _net_revenue(tables, lead_positions, cutoffs, ltv_horizon)
    labelled["label_complete"] = cutoffs + horizon <= until
    labelled["value_complete"] = cutoffs + ltv_horizon <= until
    return labelled


def _converted(
    tables: CanonicalTables,
    leads: pd.Index,
    lead_positions: np.ndarray,
    cutoffs: np.ndarray,
    horizon: int,
) -> np.ndarray:
    stage_changes = tables.stage_changes
    require_columns(stage_changes, "stage_changes", ("lead_id", "stage", "changed_at"))
    won = stage_changes[(stage_changes["stage"] == WON).to_numpy()]
    codes = entity_codes(won["lead_id"], leads)
    known = codes >= 0
    index = EventIndex(codes[known], timestamp_micros(won["changed_at"], column="changed_at")[known])
    # Events in [cutoff, cutoff + horizon]: before (end + 1 us) minus before cutoff.
    wins = index.counts_before(lead_positions, cutoffs + horizon + 1) - index.counts_before(
        lead_positions, cutoffs
    )
    return (wins > 0).astype(np.int8)


def _net_revenue(
    tables: CanonicalTables, lead_positions: np.ndarray, cutoffs: np.ndarray, ltv_horizon: int
) -> np.ndarray:
    orders = tables.orders
    require_columns(orders, "orders", ("customer_id", "ordered_at", "amount"))
    customer_ids = tables.leads["customer_id"] if "customer_id" in tables.leads.columns else None
    value = np.zeros(len(cutoffs), dtype=np.float64)
    if customer_ids is None or orders.empty:
        return value

    row_customers = pd.Series(customer_ids.to_numpy()[lead_positions])
    customers = pd.Index(row_customers.dropna().unique())
    row_codes = entity_codes(row_customers, customers)
    has_customer = row_codes >= 0
    order_codes = entity_codes(orders["customer_id"], customers)
    known = order_codes >= 0
    amounts = orders["amount"].to_numpy(dtype=np.float64)[known]
    index = EventIndex(
        order_codes[known], timestamp_micros(orders["ordered_at"], column="ordered_at")[known], amounts
    )
    if len(index) == 0:
        return value
    running = index.entity_cumsum(amounts)

    codes = row_codes[has_customer]
    start = index.block_starts(codes)
    window_end = index.positions_before(codes, cutoffs[has_customer] + ltv_horizon + 1)
    window_start = index.positions_before(codes, cutoffs[has_customer])
    total_to_end = np.where(window_end > start, running[np.maximum(window_end - 1, 0)], 0.0)
    total_to_start = np.where(window_start > start, running[np.maximum(window_start - 1, 0)], 0.0)
    value[has_customer] = total_to_end - total_to_start
    return value
