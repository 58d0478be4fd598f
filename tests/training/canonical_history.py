"""Small canonical CRM histories with a known conversion signal, for scorer and training tests.

Each lead gets a latent propensity from its channel, company size and budget. A rep reaches
out after a random number of hours, and inbound contacts arrive at a rate that grows with the
propensity. The probability of a win rises with the propensity, with inbound contacts and
with a first contact within 48 hours. Won leads place one to three
orders whose amounts grow with company size. The tables go through ``data.validate`` dtypes,
so they look like an imported data folder.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.folder import CanonicalTables
from data.validate import coerce_canonical_dtypes, empty_table

CHANNELS = ("referral", "Baidu SEM", "WeCom", "trade show", "web form")
CHANNEL_EFFECT = np.array([1.3, 0.0, 0.3, 0.6, -0.5])
SIZES = ("1-20", "21-100", "101-500", "500+")
SIZE_EFFECT = np.array([-0.5, 0.0, 0.4, 0.8])
SIZE_ORDER_VALUE = np.array([3_000.0, 8_000.0, 20_000.0, 50_000.0])
REGIONS = ("华东", "华南", "华北", "西南")
INDUSTRIES = ("制造", "零售", "软件", "教育")


def make_history(
    n_leads: int,
    *,
    seed: int = 0,
    start: str = "2022-01-01",
    days: int = 1080,
    signal: float = 1.0,
) -> CanonicalTables:
    """Return canonical tables for ``n_leads`` leads created over ``days`` days from ``start``.

    ``signal`` scales every effect on conversion; 0 gives labels unrelated to the features.
    """
    rng = np.random.default_rng(seed)
    origin = pd.Timestamp(start, tz="UTC")
    lead_ids = np.array([f"L{number:06d}" for number in range(1, n_leads + 1)])
    created = origin + pd.to_timedelta(np.sort(rng.uniform(0, days, n_leads)), unit="D")
    channel = rng.integers(0, len(CHANNELS), n_leads)
    size = rng.integers(0, len(SIZES), n_leads)
    budget = np.round(rng.lognormal(10.0, 0.8, n_leads), -2)
    budget_known = rng.random(n_leads) < 0.6
    propensity = CHANNEL_EFFECT[channel] + SIZE_EFFECT[size] + np.where(budget_known, 0.3, -0.2)

    # First outbound contact: most leads within a day, slow ones after several days, some never.
    contact_hours = rng.gamma(1.2, 12.0, n_leads) * np.where(rng.random(n_leads) < 0.2, 8.0, 1.0)
    never_contacted = rng.random(n_leads) < 0.08
    inbound_count = rng.poisson(np.exp(0.5 * propensity))

    fast = (contact_hours <= 48) & ~never_contacted
    logit = -2.2 + signal * (propensity + 0.35 * np.minimum(inbound_count, 4) + np.where(fast, 0.8, -0.6))
    won = rng.random(n_leads) < 1.0 / (1.0 + np.exp(-logit))
    close_days = rng.uniform(5, 60, n_leads)
    lost = ~won & (rng.random(n_leads) < 0.6)

    leads = pd.DataFrame(
        {
            "lead_id": lead_ids,
            "created_at": created,
            "channel": np.array(CHANNELS)[channel],
            "region": np.array(REGIONS)[rng.integers(0, len(REGIONS), n_leads)],
            "industry": np.array(INDUSTRIES)[rng.integers(0, len(INDUSTRIES), n_leads)],
            "company_size": np.array(SIZES)[size],
            "declared_budget": np.where(budget_known, budget, np.nan),
            "customer_id": np.array([f"C{number:06d}" for number in range(1, n_leads + 1)]),
        }
    )

    activity_rows: list[tuple[str, str, pd.Timestamp, str, str]] = []
    stage_rows: list[tuple[str, str, pd.Timestamp]] = []
    order_rows: list[tuple[str, str, pd.Timestamp, float]] = []
    for position in range(n_leads):
        lead = lead_ids[position]
        born = created[position]
        close_at = born + pd.Timedelta(days=float(close_days[position]))
        if not never_contacted[position]:
            first = born + pd.Timedelta(hours=float(contact_hours[position]))
            if first < close_at:
                activity_rows.append((f"{lead}-c", lead, first, "call", "outbound"))
                stage_rows.append((lead, "contacted", first))
        for number in range(int(inbound_count[position])):
            moment = born + pd.Timedelta(days=float(rng.uniform(0.1, 40.0)))
            if moment < close_at:
                activity_rows.append((f"{lead}-i{number}", lead, moment, "wechat", "inbound"))
        if won[position]:
            stage_rows.append((lead, "won", close_at))
            for number in range(int(rng.integers(1, 4))):
                ordered = close_at + pd.Timedelta(days=float(rng.uniform(0, 120)) * number)
                amount = float(rng.lognormal(np.log(SIZE_ORDER_VALUE[size[position]]), 0.5))
                order_rows.append((f"{lead}-o{number}", f"C{position + 1:06d}", ordered, round(amount, 2)))
        elif lost[position]:
            stage_rows.append((lead, "lost", close_at))

    activities = pd.DataFrame(
        activity_rows, columns=["activity_id", "lead_id", "occurred_at", "type", "direction"]
    )
    stage_changes = pd.DataFrame(stage_rows, columns=["lead_id", "stage", "changed_at"])
    orders = pd.DataFrame(order_rows, columns=["order_id", "customer_id", "ordered_at", "amount"])
    return CanonicalTables(
        leads=coerce_canonical_dtypes("leads", leads),
        activities=coerce_canonical_dtypes("activities", activities),
        stage_changes=coerce_canonical_dtypes("stage_changes", stage_changes),
        orders=coerce_canonical_dtypes("orders", orders),
        reps=empty_table("reps"),
    )
