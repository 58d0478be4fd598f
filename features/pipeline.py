"""Feature frames for spines: one code path for training, online scoring and batch rescoring.

``build_features`` takes a spine of (lead_id, cutoff) rows and returns the same rows with
every feature of ``feature_definitions`` added. Each feature of a row depends only on that
row's lead and customer and on events strictly before its cutoff, never on the other rows.
So one lead sent by the CRM gets the same values as inside a batch of a million.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from data.folder import CanonicalTables, CustomAttribute
from features.activity_features import activity_columns
from features.catalog import (
    ACTIVITY_SUMMARY_FEATURES,
    CUSTOMER_FEATURES,
    ENGAGEMENT_TREND,
    LEAD_ATTRIBUTE_FEATURES,
    LEAD_TIME_FEATURES,
    STAGE_FEATURES,
    FeatureDef,
    attribute_definitions,
    window_definitions,
)
from features.clv import customer_columns
from features.config import FeatureConfig
from features.inputs import check_spine, lead_index, shown, spine_lead_positions
from features.lead_features import attribute_columns, lead_time_columns, stage_columns
from features.windows import timestamp_micros
from leadscore.errors import DataValidationError

logger = logging.getLogger(__name__)


def feature_definitions(config: FeatureConfig, attributes: Sequence[CustomAttribute]) -> list[FeatureDef]:
    """Return every feature ``build_features`` emits for this config and these attributes, in order."""
    definitions = [
        *LEAD_ATTRIBUTE_FEATURES,
        *attribute_definitions(attributes, include_post_contact=config.include_post_contact),
        *LEAD_TIME_FEATURES,
        *STAGE_FEATURES,
        *ACTIVITY_SUMMARY_FEATURES,
        *window_definitions(config.windows_days),
    ]
    if len(config.windows_days) >= 2:
        definitions.append(ENGAGEMENT_TREND)
    definitions.extend(CUSTOMER_FEATURES)
    return definitions


def build_features(spine: pd.DataFrame, tables: CanonicalTables, config: FeatureConfig) -> pd.DataFrame:
    """Return ``spine`` (same rows, order and index, its columns kept) with the features added.

    Features use events with time < cutoff only. Raises DataValidationError for spine rows
    whose lead is unknown or whose cutoff is before the lead was created.

    NOTE: totals, first contact, rep counts and CLV look back to the lead's creation (and the
    customer's first order), so an online caller must send the full event history of the
    lead, not only the last 90 days, to get the batch values.
    """
    cutoffs = check_spine(spine)
    leads = lead_index(tables.leads)
    lead_positions = spine_lead_positions(spine, leads)
    created = timestamp_micros(tables.leads["created_at"], column="created_at")[lead_positions]
    _check_cutoffs_after_creation(spine, cutoffs, created)

    definitions = feature_definitions(config, tables.attributes)
    custom = [definition for definition in definitions if definition.attribute is not None]
    computed: dict[str, np.ndarray | pd.Series] = {}
    computed.update(attribute_columns(tables.leads, lead_positions, cutoffs, custom, tables.attributes))
    computed.update(lead_time_columns(created, cutoffs, config))
    computed.update(stage_columns(tables.stage_changes, leads, lead_positions, cutoffs, created))
    computed.update(activity_columns(tables.activities, leads, lead_positions, cutoffs, created, config))
    computed.update(
        customer_columns(tables.leads, lead_positions, cutoffs, tables.orders, timezone=config.timezone)
    )

    overlapping = [definition.name for definition in definitions if definition.name in spine.columns]
    if overlapping:
        raise DataValidationError(
            f"spine already has feature column(s) {shown(overlapping)}; pass a spine with lead_id and "
            "cutoff (and labels) only"
        )
    features = pd.DataFrame(
        {definition.name: _as_column(computed[definition.name]) for definition in definitions}
    )
    features.index = spine.index
    logger.debug("built %d features for %d spine rows", len(definitions), len(spine))
    return pd.concat([spine, features], axis=1)


def _as_column(values: np.ndarray | pd.Series) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    return pd.Series(values)


def _check_cutoffs_after_creation(spine: pd.DataFrame, cutoffs: np.ndarray, created: np.ndarray) -> None:
    early = cutoffs < created
    if early.any():
        examples = spine["lead_id"].to_numpy()[early]
        raise DataValidationError(
            f"{int(early.sum())} spine row(s) have a cutoff before their lead was created, "
            f"for example lead(s) {shown(examples)}; a lead has no features before it exists"
        )
