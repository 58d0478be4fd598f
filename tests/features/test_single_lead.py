"""Row-path features (``features.single_lead``) against ``build_features`` on the same records."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from data.payload_rows import payload_rows
from data.records import tables_from_records
from features.config import FeatureConfig
from features.pipeline import build_features, feature_definitions
from features.single_lead import lead_features
from leadscore.errors import DataValidationError
from tests.features import payload_leads
from training.scorer import split_records

CONFIGS = {
    "shanghai-default": FeatureConfig(),
    "new-york-one-window": FeatureConfig(
        timezone="America/New_York",
        windows_days=(14,),
        include_post_contact=True,
        first_contact_sla_hours=24.0,
    ),
    "utc-three-windows": FeatureConfig(timezone="UTC", windows_days=(3, 10, 60)),
}
BASE_LEAD: dict[str, Any] = {
    "lead_id": "L1",
    "created_at": "2025-03-01T09:00:00+08:00",
    "channel": "referral",
    "customer_id": "C1",
    "activities": [{"occurred_at": "2025-03-02T10:00:00+08:00", "type": "call", "direction": "outbound"}],
    "stage_changes": [{"stage": "contacted", "changed_at": "2025-03-02T10:00:00+08:00"}],
    "orders": [{"ordered_at": "2024-05-01T10:00:00+08:00", "amount": 1200.0}],
}


def _same(expected: Any, actual: Any, kind: str) -> bool:
    if kind == "categorical":
        if actual is None:
            return bool(pd.isna(expected))
        return isinstance(actual, str) and actual == expected
    if not isinstance(actual, float):
        return False
    if math.isnan(actual):
        return bool(np.isnan(expected))
    return bool(actual == expected)


def _split(records: list[dict[str, Any]], attributes: Any) -> tuple[list[dict[str, Any]], ...]:
    leads, activities, stage_changes, orders = split_records(records)
    for lead in leads:
        for attribute in attributes:
            lead.setdefault(attribute.name, None)
    return leads, activities, stage_changes, orders


@pytest.mark.parametrize("name", list(CONFIGS))
def test_single_lead_matches_build_features(name: str) -> None:
    config = CONFIGS[name]
    attributes = payload_leads.all_attributes()
    cases = payload_leads.lead_cases(len(name), timezone=config.timezone, count=250)
    leads, activities, stage_changes, orders = _split([case.record for case in cases], attributes)
    tables = tables_from_records(
        leads, activities, stage_changes, orders, timezone=config.timezone, attributes=attributes
    )
    cutoffs = pd.Series([pd.Timestamp(case.cutoff, unit="us", tz="UTC") for case in cases]).dt.as_unit("us")
    spine = pd.DataFrame({"lead_id": tables.leads["lead_id"], "cutoff": cutoffs})
    batch = build_features(spine, tables, config)

    rows = payload_rows(
        leads, activities, stage_changes, orders, timezone=config.timezone, attributes=attributes
    )
    assert rows is not None
    definitions = feature_definitions(config, attributes)
    mismatches = []
    for position, (lead, case) in enumerate(zip(rows.leads, cases, strict=True)):
        customer_orders = rows.orders_by_customer.get(lead.customer_id or "", [])
        single = lead_features(lead, customer_orders, case.cutoff, config, attributes)
        assert list(single) == [definition.name for definition in definitions]
        for definition in definitions:
            expected = batch[definition.name].iloc[position]
            if not _same(expected, single[definition.name], definition.kind):
                mismatches.append((lead.lead_id, definition.name, expected, single[definition.name]))

    assert mismatches == []
    # The cases must reach the hard parts, or equality proves little.
    assert len(cases) >= 200
    assert (batch["customer_order_count"] >= 2).sum() >= 5
    assert (batch["customer_refund_share"] > 0).sum() >= 3
    assert (batch["stage_changes_count"] >= 2).sum() >= 20
    assert (batch["activities_total"] == 0).sum() >= 5
    assert batch["channel"].isna().sum() >= 5
    assert batch["attr_last_webinar_at"].notna().sum() >= 20
    assert batch["attr_budget_approved"].notna().sum() >= 20


@pytest.mark.parametrize(
    ("case", "change"),
    [
        ("created_at not ISO 8601", {"created_at": "03/01/2025"}),
        ("undeclared field", {"phone": "13800000000"}),
        ("negative budget", {"declared_budget": -5.0}),
        ("budget as text", {"declared_budget": "lots"}),
        ("budget as boolean", {"declared_budget": True}),
        ("missing created_at", {"created_at": None}),
        (
            "unknown activity type",
            {"activities": [{"occurred_at": "2025-03-02", "type": "fax", "direction": "outbound"}]},
        ),
        ("unknown stage", {"stage_changes": [{"stage": "wondering", "changed_at": "2025-03-02"}]}),
        (
            "order of another customer",
            {"orders": [{"ordered_at": "2024-05-01", "amount": 1.0, "customer_id": "C9"}]},
        ),
        (
            "repeated activity id",
            {
                "activities": [
                    {
                        "activity_id": "A",
                        "occurred_at": "2025-03-02",
                        "type": "call",
                        "direction": "outbound",
                    },
                    {
                        "activity_id": "A",
                        "occurred_at": "2025-03-03",
                        "type": "call",
                        "direction": "outbound",
                    },
                ]
            },
        ),
    ],
)
def test_payload_rows_rejects_what_tables_reject(case: str, change: dict[str, Any]) -> None:
    record = {**BASE_LEAD, **change}
    leads, activities, stage_changes, orders = _split([record], ())

    assert payload_rows(leads, activities, stage_changes, orders, timezone="Asia/Shanghai") is None, case
    with pytest.raises(DataValidationError):
        tables_from_records(leads, activities, stage_changes, orders, timezone="Asia/Shanghai")


@pytest.mark.parametrize(
    ("case", "change"),
    [
        ("integer lead id", {"lead_id": 17}),
        ("integer channel", {"channel": 5}),
        ("blank channel", {"channel": "  "}),
        ("numpy integer budget", {"declared_budget": np.int64(5000)}),
    ],
)
def test_payload_rows_leaves_unusual_values_to_tables(case: str, change: dict[str, Any]) -> None:
    record = {**BASE_LEAD, **change}
    leads, activities, stage_changes, orders = _split([record], ())

    assert payload_rows(leads, activities, stage_changes, orders, timezone="Asia/Shanghai") is None, case
    tables = tables_from_records(leads, activities, stage_changes, orders, timezone="Asia/Shanghai")
    assert len(tables.leads) == 1
