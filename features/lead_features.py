"""Lead attributes, lead age and funnel stage of each (lead, cutoff) row.

Lead attributes (channel, region, custom attributes ...) are static: they are taken as known
at every cutoff. Attributes declared ``post_contact`` are known only after sales contact,
so they are left out unless ``FeatureConfig.include_post_contact`` is set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from data.folder import CustomAttribute
from data.stages import STAGE_CODES, stage_order
from features.catalog import LEAD_ATTRIBUTE_FEATURES, FeatureDef
from features.config import FeatureConfig
from features.inputs import require_columns, shown
from features.windows import (
    MICROS_PER_DAY,
    EventIndex,
    entity_codes,
    gather,
    micros_to_timestamps,
    timestamp_micros,
)
from leadscore.errors import DataValidationError, SchemaError

_INITIAL_STAGE = "lead"


def attribute_columns(
    leads: pd.DataFrame,
    lead_positions: np.ndarray,
    cutoffs: np.ndarray,
    attribute_definitions: Sequence[FeatureDef],
    attributes: Sequence[CustomAttribute],
) -> dict[str, np.ndarray | pd.Series]:
    """Return canonical and custom lead attributes per spine row.

    Categorical values stay strings (the feature spec encodes them); numbers become float64,
    booleans 1.0/0.0, and timestamp attributes days before the cutoff.
    """
    columns: dict[str, np.ndarray | pd.Series] = {}
    for definition in LEAD_ATTRIBUTE_FEATURES:
        columns[definition.name] = _take(leads, definition.name, lead_positions, definition.kind)

    declared = {attribute.name: attribute for attribute in attributes}
    for definition in attribute_definitions:
        name = definition.attribute
        if name is None or name not in declared:
            raise SchemaError(f"feature {definition.name!r} names no declared custom attribute")
        if name not in leads.columns:
            raise SchemaError(
                f"custom attribute {name!r} is declared in leads.attributes.json but leads has no such "
                "column; add the column or remove the declaration"
            )
        attribute = declared[name]
        if attribute.type == "timestamp":
            columns[definition.name] = _days_before_cutoff(leads[name], lead_positions, cutoffs, name)
        elif attribute.type == "bool":
            values = leads[name].to_numpy(dtype=object)[lead_positions]
            columns[definition.name] = _booleans_as_floats(values, name)
        else:
            columns[definition.name] = _take(leads, name, lead_positions, definition.kind)
    return columns


def _take(leads: pd.DataFrame, column: str, lead_positions: np.ndarray, kind: str) -> np.ndarray | pd.Series:
    if column not in leads.columns:
        if kind == "categorical":
            return pd.Series([None] * len(lead_positions), dtype="str")
        return np.full(len(lead_positions), np.nan)
    values = leads[column]
    if kind == "categorical":
        taken = values.iloc[lead_positions].reset_index(drop=True)
        return taken if pd.api.types.is_string_dtype(taken.dtype) else taken.astype("str")
    try:
        return pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)[
            lead_positions
        ]
    except (TypeError, ValueError) as error:
        raise DataValidationError(
            f"leads column {column!r} must be numeric; got dtype {values.dtype} ({error}). "
            "Coerce the table with data.validate.coerce_canonical_dtypes."
        ) from None


def _booleans_as_floats(values: np.ndarray, column: str) -> np.ndarray:
    result = np.full(len(values), np.nan)
    for position, value in enumerate(values):
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            continue
        if not isinstance(value, (bool, np.bool_)):
            raise DataValidationError(
                f"custom attribute {column!r} is declared bool but contains {value!r}; store true or false"
            )
        result[position] = float(value)
    return result


def _days_before_cutoff(
    values: pd.Series, lead_positions: np.ndarray, cutoffs: np.ndarray, column: str
) -> np.ndarray:
    """Return days from a timestamp attribute to the cutoff; missing unless strictly before it."""
    present = values.notna().to_numpy()
    micros = np.zeros(len(values), dtype=np.int64)
    micros[present] = timestamp_micros(values[present], column=column)
    row_micros = micros[lead_positions]
    known = present[lead_positions] & (row_micros < cutoffs)
    return np.where(known, (cutoffs - row_micros) / MICROS_PER_DAY, np.nan)


def lead_time_columns(
    created: np.ndarray, cutoffs: np.ndarray, config: FeatureConfig
) -> dict[str, np.ndarray]:
    """Return lead age at the cutoff and the local hour and weekday of creation."""
    local = micros_to_timestamps(created).dt.tz_convert(config.timezone)
    return {
        "lead_age_days": (cutoffs - created) / MICROS_PER_DAY,
        "created_hour_local": local.dt.hour.to_numpy(dtype=np.float64),
        "created_weekday_local": local.dt.day_of_week.to_numpy(dtype=np.float64),
    }


def stage_columns(
    stage_changes: pd.DataFrame,
    leads: pd.Index,
    lead_positions: np.ndarray,
    cutoffs: np.ndarray,
    created: np.ndarray,
) -> dict[str, np.ndarray | pd.Series]:
    """Return the stage at the cutoff, days in it, stage changes so far and furthest stage.

    Stage changes at one instant are ordered by funnel position (lost last), so the stage at
    a cutoff does not depend on the order of input rows.
    """
    require_columns(stage_changes, "stage_changes", ("lead_id", "stage", "changed_at"))
    codes = entity_codes(stage_changes["lead_id"], leads)
    relevant = np.isin(codes, np.unique(lead_positions))
    events = stage_changes if relevant.all() else stage_changes[relevant]
    stage_codes = entity_codes(events["stage"], pd.Index(STAGE_CODES))
    if (stage_codes < 0).any():
        unknown = pd.unique(events["stage"].to_numpy()[stage_codes < 0])
        raise DataValidationError(
            f"stage_changes has unknown stage value(s) {shown(unknown)}; "
            f"expected one of {list(STAGE_CODES)}. "
            "Normalize them with data.stages.parse_stage."
        )
    index = EventIndex(
        codes[relevant], timestamp_micros(events["changed_at"], column="changed_at"), tie_break=stage_codes
    )
    sorted_stages = index.sorted_values(stage_codes)
    start = index.block_starts(lead_positions)
    position = index.positions_before(lead_positions, cutoffs)
    has = position > start
    last = position - 1

    current = gather(sorted_stages, last, has, STAGE_CODES.index(_INITIAL_STAGE)).astype(np.int64)
    entered = np.where(has, gather(_run_start_times(index, sorted_stages), last, has, 0.0), created)
    stage_names = pd.Series(np.asarray(STAGE_CODES, dtype=object)[current], dtype="str")
    return {
        "stage": stage_names,
        "days_in_stage": (cutoffs - entered) / MICROS_PER_DAY,
        "stage_changes_count": (position - start).astype(np.float64),
        "furthest_stage_order": _furthest_stage(index, sorted_stages, last, has),
    }


def _run_start_times(index: EventIndex, sorted_stages: np.ndarray) -> np.ndarray:
    """Return, per sorted stage change, when the lead entered that stage without leaving it since."""
    size = len(index)
    if size == 0:
        return np.empty(0, dtype=np.float64)
    new_run = np.ones(size, dtype=bool)
    new_run[1:] = (index.codes[1:] != index.codes[:-1]) | (sorted_stages[1:] != sorted_stages[:-1])
    run_start = np.maximum.accumulate(np.where(new_run, np.arange(size), 0))
    return index.times[run_start].astype(np.float64)


def _furthest_stage(
    index: EventIndex, sorted_stages: np.ndarray, last: np.ndarray, has: np.ndarray
) -> np.ndarray:
    """Return the highest funnel position entered up to each query (0: still at 'lead')."""
    size = len(index)
    if size == 0:
        return np.zeros(len(last))
    # lost has no funnel position, so it gets rank 0, below 'lead', and never raises the maximum.
    ranks = np.array([(stage_order(code) if stage_order(code) is not None else -1) for code in STAGE_CODES])
    ranked = ranks[sorted_stages] + 1
    # Entity codes are sorted, so code * 8 + rank grows across blocks and a running
    # maximum never carries one lead's rank into the next lead.
    running = np.maximum.accumulate(index.codes * 8 + ranked)
    furthest = gather(running - index.codes * 8 - 1, last, has, 0.0)
    return np.maximum(furthest, 0.0)
