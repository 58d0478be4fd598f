"""Checks on the frames the feature stage reads: canonical tables and spines."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.windows import entity_codes, timestamp_micros
from leadscore.errors import DataValidationError, SchemaError

SPINE_COLUMNS = ("lead_id", "cutoff")
_SHOWN_VALUES = 5


def require_columns(frame: pd.DataFrame, table: str, columns: Sequence[str]) -> None:
    """Raise SchemaError naming every column of ``columns`` that ``frame`` lacks."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise SchemaError(
            f"table {table!r} lacks column(s) {missing}; present: {list(map(str, frame.columns))}. "
            "Read tables with data.folder.read_data_dir or data.records.tables_from_records."
        )


def lead_index(leads: pd.DataFrame) -> pd.Index:
    """Return the lead ids as an index, raising when an id is missing or repeated."""
    require_columns(leads, "leads", ("lead_id", "created_at"))
    ids = leads["lead_id"]
    if ids.isna().any():
        raise DataValidationError(
            f"leads has {int(ids.isna().sum())} row(s) without lead_id; every lead needs an id"
        )
    index = pd.Index(ids)
    if not index.is_unique:
        repeated = index[index.duplicated()].unique()[:_SHOWN_VALUES].tolist()
        raise DataValidationError(
            f"leads has repeated lead_id values, for example {repeated}; keep one row per lead"
        )
    return index


def check_spine(spine: pd.DataFrame) -> np.ndarray:
    """Validate a spine and return its cutoffs as microseconds since the epoch."""
    require_columns(spine, "spine", SPINE_COLUMNS)
    missing_ids = spine["lead_id"].isna()
    if missing_ids.any():
        raise DataValidationError(
            f"spine has {int(missing_ids.sum())} row(s) without lead_id; every row needs a lead and a cutoff"
        )
    return timestamp_micros(spine["cutoff"], column="cutoff")


def spine_lead_positions(spine: pd.DataFrame, leads: pd.Index) -> np.ndarray:
    """Return the leads-table position of each spine row, raising on lead ids not in leads."""
    positions = entity_codes(spine["lead_id"], leads)
    unknown = positions < 0
    if unknown.any():
        examples = pd.unique(spine["lead_id"].to_numpy()[unknown])[:_SHOWN_VALUES].tolist()
        raise DataValidationError(
            f"{int(unknown.sum())} spine row(s) name leads that are not in the leads table, "
            f"for example {examples}; send each lead's record with its events"
        )
    return positions


def shown(values: Sequence[object] | np.ndarray) -> list[object]:
    """Return the first few values of a collection for an error message."""
    return list(values[:_SHOWN_VALUES])
