"""Tiny canonical histories for feature tests, built from dict rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from data.folder import CanonicalTables, CustomAttribute
from data.records import tables_from_records

UTC = "UTC"


def at(text: str) -> pd.Timestamp:
    """Return a UTC timestamp from 'YYYY-MM-DD HH:MM[:SS]' text."""
    return pd.Timestamp(text, tz=UTC)


def make_tables(
    leads: Sequence[dict[str, Any]],
    activities: Sequence[dict[str, Any]] = (),
    stage_changes: Sequence[dict[str, Any]] = (),
    orders: Sequence[dict[str, Any]] = (),
    attributes: Sequence[CustomAttribute] = (),
) -> CanonicalTables:
    """Return validated canonical tables; ids for activities and orders are filled in when absent."""
    activity_rows = [{"activity_id": f"a{number}", **row} for number, row in enumerate(activities, start=1)]
    order_rows = [{"order_id": f"o{number}", **row} for number, row in enumerate(orders, start=1)]
    return tables_from_records(
        list(leads), activity_rows, list(stage_changes), order_rows, timezone=UTC, attributes=attributes
    )


def spine_of(*rows: tuple[str, str]) -> pd.DataFrame:
    """Return a spine from (lead_id, UTC time text) pairs."""
    return pd.DataFrame(
        {
            "lead_id": pd.Series([lead for lead, _ in rows], dtype="str"),
            "cutoff": pd.Series([at(text) for _, text in rows]).dt.as_unit("us"),
        }
    )


def random_history(seed: int, lead_count: int = 30) -> dict[str, list[dict[str, Any]]]:
    """Return record dicts of a random but valid history: leads, activities, stage changes, orders.

    Every third lead belongs to an existing customer with past orders (refunds included).
    """
    import numpy as np

    from data.schema import ACTIVITY_TYPES, DIRECTIONS

    rng = np.random.default_rng(seed)
    start = at("2024-01-01 00:00")
    channels = ["baidu", "wecom", "referral", "expo", None]
    regions = ["east", "north", "south"]
    funnel = ["contacted", "qualified", "proposal", "negotiation"]
    history: dict[str, list[dict[str, Any]]] = {
        "leads": [],
        "activities": [],
        "stage_changes": [],
        "orders": [],
    }
    for number in range(lead_count):
        lead_id = f"L{number:03d}"
        created = start + pd.Timedelta(minutes=int(rng.integers(0, 60 * 24 * 120)))
        customer = f"C{number // 3:03d}" if number % 3 == 0 else None
        history["leads"].append(
            {
                "lead_id": lead_id,
                "created_at": created.isoformat(),
                "channel": channels[int(rng.integers(0, len(channels)))],
                "region": regions[int(rng.integers(0, len(regions)))],
                "declared_budget": float(rng.integers(0, 50)) * 1000.0 if rng.random() < 0.7 else None,
                "customer_id": customer,
            }
        )
        for _ in range(int(rng.integers(0, 12))):
            history["activities"].append(
                {
                    "lead_id": lead_id,
                    "occurred_at": (
                        created + pd.Timedelta(hours=float(rng.exponential(24 * 20)))
                    ).isoformat(),
                    "type": ACTIVITY_TYPES[int(rng.integers(0, len(ACTIVITY_TYPES)))],
                    "direction": DIRECTIONS[int(rng.integers(0, 2))],
                    "rep_id": f"R{int(rng.integers(0, 4))}",
                }
            )
        moment = created
        for stage in funnel[: int(rng.integers(0, len(funnel) + 1))]:
            moment = moment + pd.Timedelta(hours=float(rng.exponential(24 * 10)))
            history["stage_changes"].append(
                {"lead_id": lead_id, "stage": stage, "changed_at": moment.isoformat()}
            )
        if rng.random() < 0.3:
            terminal = "won" if rng.random() < 0.5 else "lost"
            moment = moment + pd.Timedelta(hours=float(rng.exponential(24 * 10)))
            history["stage_changes"].append(
                {"lead_id": lead_id, "stage": terminal, "changed_at": moment.isoformat()}
            )
        if customer is not None:
            for _ in range(int(rng.integers(1, 6))):
                ordered = created + pd.Timedelta(days=float(rng.uniform(-400, 200)))
                amount = round(float(rng.uniform(-200, 3000)), 2)
                history["orders"].append(
                    {"customer_id": customer, "ordered_at": ordered.isoformat(), "amount": amount}
                )
    return history


def tables_of(
    history: dict[str, list[dict[str, Any]]], lead_ids: Sequence[str] | None = None
) -> CanonicalTables:
    """Return tables of ``history`` restricted to ``lead_ids`` (and their customers' orders)."""
    if lead_ids is None:
        return make_tables(
            history["leads"], history["activities"], history["stage_changes"], history["orders"]
        )
    wanted = set(lead_ids)
    leads = [row for row in history["leads"] if row["lead_id"] in wanted]
    customers = {row["customer_id"] for row in leads if row["customer_id"] is not None}
    return make_tables(
        leads,
        [row for row in history["activities"] if row["lead_id"] in wanted],
        [row for row in history["stage_changes"] if row["lead_id"] in wanted],
        [row for row in history["orders"] if row["customer_id"] in customers],
    )
