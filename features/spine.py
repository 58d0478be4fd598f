"""Spines: the (lead_id, cutoff) rows that features and labels are computed for.

A training spine contains one row per lead shortly after creation plus periodic snapshots
while the lead is still open, so the model sees leads at every age. A scoring spine contains
every lead open at one instant. A lead is open at a cutoff when it entered no terminal stage
(won or lost) strictly before it. A terminal stage entered exactly at the cutoff belongs to
the label side, so the lead is still open there. Training cutoffs start
``first_cutoff_hours`` after creation, and a scoring spine takes the leads created strictly
before ``as_of``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from data.folder import CanonicalTables
from data.stages import TERMINAL_STAGES
from features.config import FeatureConfig
from features.inputs import lead_index, require_columns
from features.windows import (
    MICROS_PER_DAY,
    MICROS_PER_HOUR,
    entity_codes,
    micros_to_timestamps,
    scalar_micros,
    timestamp_micros,
)
from leadscore.errors import InsufficientDataError

logger = logging.getLogger(__name__)

NEVER = np.iinfo(np.int64).max  # close time of a lead that is still open

_EVENT_TIME_COLUMNS = (
    ("leads", "created_at"),
    ("activities", "occurred_at"),
    ("stage_changes", "changed_at"),
    ("orders", "ordered_at"),
)


def lead_close_micros(tables: CanonicalTables, leads: pd.Index) -> np.ndarray:
    """Return, per lead in ``leads`` order, when it first entered won or lost (NEVER if not)."""
    stage_changes = tables.stage_changes
    require_columns(stage_changes, "stage_changes", ("lead_id", "stage", "changed_at"))
    close = np.full(len(leads), NEVER, dtype=np.int64)
    terminal = stage_changes[stage_changes["stage"].isin(TERMINAL_STAGES).to_numpy()]
    if terminal.empty:
        return close
    codes = entity_codes(terminal["lead_id"], leads)
    times = timestamp_micros(terminal["changed_at"], column="changed_at")
    known = codes >= 0
    np.minimum.at(close, codes[known], times[known])
    return close


def latest_event_time(tables: CanonicalTables) -> pd.Timestamp:
    """Return the latest timestamp in the event tables: how far the history is observed.

    Raises InsufficientDataError when the tables contain no events at all.
    """
    latest: int | None = None
    for table, column in _EVENT_TIME_COLUMNS:
        frame = tables.table(table)
        if column not in frame.columns or frame.empty:
            continue
        micros = timestamp_micros(frame[column], column=column)
        table_latest = int(micros.max())
        latest = table_latest if latest is None else max(latest, table_latest)
    if latest is None:
        raise InsufficientDataError(
            "the tables contain no leads or events, so there is no history to observe"
        )
    return pd.Timestamp(latest, unit="us", tz="UTC")


def snapshot_offsets_micros(config: FeatureConfig) -> np.ndarray:
    """Return the cutoff offsets after creation: the first snapshot, then each periodic one."""
    first = round(config.first_cutoff_hours * MICROS_PER_HOUR)
    periodic = [k * config.snapshot_every_days * MICROS_PER_DAY for k in range(1, config.max_snapshots + 1)]
    return np.array([first, *periodic], dtype=np.int64)


def training_spine(
    tables: CanonicalTables, config: FeatureConfig, observed_until: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Return training cutoffs: shortly after creation, then every ``snapshot_every_days`` while open.

    A cutoff is kept while the lead is open there and the cutoff is not after
    ``observed_until`` (default: the latest event in ``tables``), because a snapshot
    after the end of the history could not have been taken. Rows are in leads-table
    order with cutoffs ascending; leads without any cutoff are counted in the log.
    """
    leads = lead_index(tables.leads)
    until = scalar_micros(observed_until or latest_event_time(tables), name="observed_until")
    created = timestamp_micros(tables.leads["created_at"], column="created_at")
    close = lead_close_micros(tables, leads)

    offsets = snapshot_offsets_micros(config)
    cutoffs = created[:, None] + offsets[None, :]
    keep = (cutoffs <= close[:, None]) & (cutoffs <= until)

    rows_per_lead = keep.sum(axis=1)
    closed_early = int(((rows_per_lead == 0) & (created + offsets[0] > close)).sum())
    too_recent = int(((rows_per_lead == 0) & (created + offsets[0] <= close)).sum())
    if closed_early or too_recent:
        logger.info(
            "training spine skips %d lead(s) closed within %.2f h of creation and %d lead(s) "
            "created too close to the end of the history",
            closed_early,
            config.first_cutoff_hours,
            too_recent,
        )

    lead_positions = np.repeat(np.arange(len(leads)), rows_per_lead)
    spine = _spine_frame(tables.leads["lead_id"], lead_positions, cutoffs[keep])
    logger.info("training spine: %d rows for %d leads", len(spine), int((rows_per_lead > 0).sum()))
    return spine


def scoring_spine(tables: CanonicalTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """Return one row per lead open at ``as_of`` (created before it, no won or lost before it).

    ``as_of`` must be tz-aware. Rows are in leads-table order and every cutoff equals as_of.
    """
    leads = lead_index(tables.leads)
    as_of_micros = scalar_micros(as_of, name="as_of")
    created = timestamp_micros(tables.leads["created_at"], column="created_at")
    close = lead_close_micros(tables, leads)

    open_at = (created < as_of_micros) & (close >= as_of_micros)
    positions = np.flatnonzero(open_at)
    spine = _spine_frame(tables.leads["lead_id"], positions, np.full(len(positions), as_of_micros))
    logger.info(
        "scoring spine at %s: %d open lead(s), %d closed, %d created later",
        pd.Timestamp(as_of).isoformat(),
        int(open_at.sum()),
        int(((created < as_of_micros) & (close < as_of_micros)).sum()),
        int((created >= as_of_micros).sum()),
    )
    return spine


def _spine_frame(lead_ids: pd.Series, positions: np.ndarray, cutoffs: np.ndarray) -> pd.DataFrame:
    ids = pd.Series(lead_ids.to_numpy()[positions], dtype=lead_ids.dtype)
    return pd.DataFrame({"lead_id": ids, "cutoff": micros_to_timestamps(cutoffs)})
