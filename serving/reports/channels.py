"""Channel report numbers: leads, conversion, predicted and realised value per channel, campaign, keyword.

Won revenue is attributed back to the lead that won the customer. Each order goes to the most
recent lead of the same customer_id that was won at or before the order time, and so to that
lead's channel, campaign and keyword. Refunds (negative amounts) are netted. Orders
placed before the customer's first won lead, and orders of customers without a won lead, are
revenue of existing customers: they are not attributed and the report states their total.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from serving.reports.scores import ScoreTable
from serving.reports.stage_history import STATUS_LOST, STATUS_OPEN, STATUS_WON, StageHistory, require_columns

logger = logging.getLogger(__name__)

# Each level groups leads by these lead columns, from coarse to fine.
LEVELS: dict[str, tuple[str, ...]] = {
    "channel": ("channel",),
    "campaign": ("channel", "campaign"),
    "keyword": ("channel", "campaign", "keyword"),
}
SOURCE_COLUMNS: tuple[str, ...] = ("channel", "campaign", "keyword")


@dataclass(frozen=True)
class Attribution:
    """Net order revenue per won lead, and the orders that could not be attributed."""

    lead_revenue: pd.Series
    orders: int
    total_amount: float
    attributed_orders: int
    attributed_amount: float
    before_win_orders: int
    before_win_amount: float
    no_won_lead_orders: int
    no_won_lead_amount: float
    won_without_customer: int
    currencies: tuple[str, ...]
    notes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelsResult:
    """One frame per level in ``LEVELS``, sorted by leads, and the attribution behind it.

    Columns: the level's source columns (NaN where the lead has none), leads, won, lost, open,
    conversion (won / leads), scored, mean_p_convert, mean_expected_value, won_revenue,
    revenue_share, realised_value_per_lead (won_revenue / leads).
    """

    levels: dict[str, pd.DataFrame]
    attribution: Attribution
    scores: ScoreTable | None


def _clean_orders(orders: pd.DataFrame, notes: dict[str, int]) -> pd.DataFrame:
    require_columns(orders, "orders", ("customer_id", "ordered_at", "amount"))
    frame = orders[["customer_id", "ordered_at", "amount"]].copy()
    incomplete = frame.isna().any(axis=1)
    notes["report.channels.dropped.incomplete_order"] = int(incomplete.sum())
    frame = frame.loc[~incomplete]
    frame["customer_id"] = frame["customer_id"].astype("str")
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True)
    frame["amount"] = frame["amount"].astype("float64")
    return frame


def attribute_revenue(history: StageHistory, leads: pd.DataFrame, orders: pd.DataFrame) -> Attribution:
    """Attribute each order to the customer's latest lead won at or before it (see the module doc)."""
    notes: dict[str, int] = {}
    clean = _clean_orders(orders, notes)
    won = history.leads.loc[history.leads["status"] == STATUS_WON, ["won_at"]]
    if "customer_id" in leads.columns:
        customers = leads.drop_duplicates("lead_id").set_index("lead_id")["customer_id"]
        won = won.assign(customer_id=customers.reindex(won.index).to_numpy())
    else:
        won = won.assign(customer_id=pd.Series(pd.NA, index=won.index, dtype="str"))
    without_customer = int(won["customer_id"].isna().sum())
    won = won.dropna(subset=["customer_id"]).rename_axis("lead_id").reset_index()
    won["customer_id"] = won["customer_id"].astype("str")

    matched = pd.merge_asof(
        clean.sort_values("ordered_at"),
        won.sort_values("won_at"),
        left_on="ordered_at",
        right_on="won_at",
        by="customer_id",
        direction="backward",
    )
    attributed = matched["lead_id"].notna()
    has_won_lead = matched["customer_id"].isin(set(won["customer_id"]))
    before_win = ~attributed & has_won_lead
    no_won_lead = ~attributed & ~has_won_lead
    lead_revenue = matched.loc[attributed].groupby("lead_id")["amount"].sum()
    currencies: tuple[str, ...] = ()
    if "currency" in orders.columns:
        currencies = tuple(sorted(str(value) for value in orders["currency"].dropna().unique()))
    result = Attribution(
        lead_revenue=lead_revenue,
        orders=len(clean),
        total_amount=float(clean["amount"].sum()),
        attributed_orders=int(attributed.sum()),
        attributed_amount=float(matched.loc[attributed, "amount"].sum()),
        before_win_orders=int(before_win.sum()),
        before_win_amount=float(matched.loc[before_win, "amount"].sum()),
        no_won_lead_orders=int(no_won_lead.sum()),
        no_won_lead_amount=float(matched.loc[no_won_lead, "amount"].sum()),
        won_without_customer=without_customer,
        currencies=currencies,
        notes=notes,
    )
    logger.info(
        "attributed %d of %d orders (%.0f of %.0f) to %d won leads",
        result.attributed_orders,
        result.orders,
        result.attributed_amount,
        result.total_amount,
        len(lead_revenue),
    )
    return result


def _lead_frame(
    history: StageHistory, leads: pd.DataFrame, attribution: Attribution, scores: ScoreTable | None
) -> pd.DataFrame:
    outcome = history.leads
    source = leads.drop_duplicates("lead_id").set_index("lead_id")
    frame = pd.DataFrame(index=outcome.index)
    for column in SOURCE_COLUMNS:
        if column in source.columns:
            frame[column] = source[column].reindex(outcome.index).astype("str")
        else:
            frame[column] = pd.Series(pd.NA, index=outcome.index, dtype="str")
    frame["won"] = outcome["status"] == STATUS_WON
    frame["lost"] = outcome["status"] == STATUS_LOST
    frame["open"] = outcome["status"] == STATUS_OPEN
    frame["revenue"] = attribution.lead_revenue.reindex(outcome.index).fillna(0.0).to_numpy()
    if scores is not None:
        frame["p_convert"] = scores.scores["p_convert"].reindex(outcome.index)
        frame["expected_value"] = scores.scores["expected_value"].reindex(outcome.index)
    else:
        frame["p_convert"] = np.nan
        frame["expected_value"] = np.nan
    frame["scored"] = frame["expected_value"].notna()
    return frame


def _summarize(frame: pd.DataFrame, keys: tuple[str, ...], total_revenue: float) -> pd.DataFrame:
    grouped = frame.groupby(list(keys), dropna=False, sort=False)
    table = grouped.agg(
        leads=("won", "size"),
        won=("won", "sum"),
        lost=("lost", "sum"),
        open=("open", "sum"),
        scored=("scored", "sum"),
        mean_p_convert=("p_convert", "mean"),
        mean_expected_value=("expected_value", "mean"),
        won_revenue=("revenue", "sum"),
    ).reset_index()
    table[["won", "lost", "open", "scored"]] = table[["won", "lost", "open", "scored"]].astype("int64")
    table["conversion"] = table["won"] / table["leads"]
    table["revenue_share"] = table["won_revenue"] / total_revenue if total_revenue else np.nan
    table["realised_value_per_lead"] = table["won_revenue"] / table["leads"]
    ordered = [
        *keys,
        "leads",
        "won",
        "lost",
        "open",
        "conversion",
        "scored",
        "mean_p_convert",
        "mean_expected_value",
        "won_revenue",
        "revenue_share",
        "realised_value_per_lead",
    ]
    return table[ordered].sort_values(["leads", *keys], ascending=[False, *([True] * len(keys))])


def compute_channels(
    history: StageHistory, leads: pd.DataFrame, orders: pd.DataFrame, scores: ScoreTable | None
) -> ChannelsResult:
    """Return leads, conversion, predicted and realised value per channel, campaign and keyword."""
    attribution = attribute_revenue(history, leads, orders)
    frame = _lead_frame(history, leads, attribution, scores)
    total = float(frame["revenue"].sum())
    levels = {level: _summarize(frame, keys, total).reset_index(drop=True) for level, keys in LEVELS.items()}
    return ChannelsResult(levels=levels, attribution=attribution, scores=scores)
