"""Canonical and ground-truth columns of one batch, as Arrow arrays ready for the writers.

Ids: lead ``L00000001`` (lead number, 1-based, in arrival order), customer ``C00000001``
(the lead that created or brought the customer), activity ``A00000001-001`` and order
``O00000001-001`` (the lead's number and the row's position within the lead).
Everything at or after the history end is cut, as in a CRM export taken at that moment; the
ground truth keeps it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from data.folder import CustomAttribute
from data.schema import ACTIVITY_TYPES, DIRECTIONS
from data.stages import LOST
from data.synthetic.activities import OUTCOMES, ActivityRows
from data.synthetic.funnel import NO_TIME, RATINGS, STAGE_CODES, WON, FunnelOutcome
from data.synthetic.orders import OrderRows
from data.synthetic.population import LeadBatch, LeadVocabulary
from data.synthetic.reps import Roster
from data.synthetic.writer import category_array, float_array, id_array, string_array, timestamp_array

ID_WIDTH = 8
CURRENCY = "CNY"
LEAD_ATTRIBUTES: tuple[CustomAttribute, ...] = (
    CustomAttribute("contact_title", "category", False, "Job title of the contact person, stated at intake."),
    CustomAttribute(
        "lead_rating",
        "category",
        True,
        "A-D rating the owner rep gives after the first contact, from the rep's view of the likely outcome.",
    ),
)


def lead_columns(
    vocabulary: LeadVocabulary,
    roster: Roster,
    leads: LeadBatch,
    funnel: FunnelOutcome,
    history_end: int,
) -> dict[str, pa.Array]:
    """Return the leads table of a batch as exported at ``history_end``.

    ``customer_id`` is set for leads from existing customers and for leads won before the
    export, because the won lead is linked to the customer it created.
    """
    number = leads.index + 1
    won_by_end = funnel.won & (funnel.stage_at[:, WON] < history_end)
    rated = funnel.contacted & (funnel.first_contact < history_end)
    return {
        "lead_id": id_array("L", number, ID_WIDTH),
        "created_at": timestamp_array(leads.created_at),
        "channel": category_array(leads.channel, vocabulary.channels),
        "campaign": category_array(leads.campaign, vocabulary.campaigns),
        "keyword": category_array(leads.keyword, vocabulary.keywords),
        "region": category_array(leads.region, vocabulary.regions),
        "industry": category_array(leads.industry, vocabulary.industries),
        "company_size": category_array(leads.size, vocabulary.sizes),
        "declared_budget": float_array(leads.budget),
        "customer_id": _masked_ids("C", number, ~(leads.existing_customer | won_by_end)),
        "owner_rep_id": string_array(roster.rep_ids[funnel.owner]),
        "company_name": string_array(leads.company_name),
        "contact_title": category_array(leads.title, vocabulary.titles),
        "lead_rating": category_array(np.where(rated, funnel.rating, -1), RATINGS),
    }


def _masked_ids(prefix: str, numbers: np.ndarray, missing: np.ndarray) -> pa.Array:
    ids = id_array(prefix, numbers, ID_WIDTH)
    return pa.array(ids.to_numpy(zero_copy_only=False), type=ids.type, mask=missing)


def stage_change_columns(leads: LeadBatch, funnel: FunnelOutcome, history_end: int) -> dict[str, pa.Array]:
    """Return one row per stage entered (and per lead marked lost) before ``history_end``."""
    times = np.concatenate([funnel.stage_at, funnel.lost_at[:, None]], axis=1)
    codes = (*STAGE_CODES, LOST.code)
    entered = (times != NO_TIME) & (times < history_end)
    rows, stage = np.nonzero(entered)  # row-major: by lead, then in funnel order
    return {
        "lead_id": id_array("L", leads.index[rows] + 1, ID_WIDTH),
        "stage": category_array(stage, codes),
        "changed_at": timestamp_array(times[rows, stage]),
    }


def activity_columns(
    leads: LeadBatch, funnel: FunnelOutcome, roster: Roster, rows: ActivityRows
) -> dict[str, pa.Array]:
    """Return the activities table of a batch."""
    number = leads.index[rows.lead] + 1
    rep_ids = roster.rep_ids[funnel.owner[rows.lead]]
    return {
        "activity_id": id_array("A", number, ID_WIDTH, rows.sequence),
        "lead_id": id_array("L", number, ID_WIDTH),
        "rep_id": string_array(rep_ids, ~rows.has_rep),
        "occurred_at": timestamp_array(rows.occurred_at),
        "type": category_array(rows.type, ACTIVITY_TYPES),
        "direction": category_array(rows.direction, DIRECTIONS),
        "outcome": category_array(rows.outcome, OUTCOMES),
    }


def order_columns(leads: LeadBatch, rows: OrderRows) -> dict[str, pa.Array]:
    """Return the orders table of a batch; refunds are lines with negative amounts."""
    number = leads.index[rows.lead] + 1
    return {
        "order_id": id_array("O", number, ID_WIDTH, rows.sequence),
        "customer_id": id_array("C", number, ID_WIDTH),
        "ordered_at": timestamp_array(rows.ordered_at),
        "amount": float_array(rows.amount),
        "currency": pa.array([CURRENCY] * len(rows), type=pa.large_string()),
    }


TRUTH_COLUMNS: dict[str, str] = {
    "lead_id": "Lead id, as in leads.parquet.",
    "latent_quality": "Latent quality: the conversion logit from intake attributes plus unexplained noise.",
    "engagement": "Engagement propensity; drives activity counts, outcomes and conversion.",
    "value_index": "How big a deal the lead is, in (0, 1); scales the tier effects.",
    "drift_weight": "How far the drift had ramped in when the lead arrived (0 none, 1 full).",
    "owner_tier": "Tier of the owner rep.",
    "owner_effect": "The owner's own conversion logit effect.",
    "skill_match": "Whether the owner lists the lead's industry among the rep's skills.",
    "contacted": "Whether a rep ever contacts the lead (possibly after the history end).",
    "first_contact_delay_hours": "Hours from intake to the first contact; missing when never contacted.",
    "conversion_logit": "The lead's conversion logit with its actual owner.",
    "p_convert_true": "Probability of eventual conversion with the actual owner.",
    "p_convert_senior": "Probability with a senior owner of average own effect and no skill match.",
    "p_convert_regular": "Probability with a regular owner of average own effect and no skill match.",
    "p_convert_newcomer": "Probability with a newcomer owner of average own effect and no skill match.",
    "furthest_stage": "Furthest funnel stage the lead ever reaches, uncensored.",
    "converted": "Whether the lead is eventually won, including wins after the history end.",
    "won_at": "When the lead is won, including after the history end.",
    "lost_at": "When the lead is marked lost, including after the history end.",
    "order_value_24m": "Order value, refunds included, in the 24 months after the win; missing if not won.",
}


def truth_columns(
    config_tiers: tuple[str, ...], roster: Roster, leads: LeadBatch, funnel: FunnelOutcome, orders: OrderRows
) -> dict[str, pa.Array]:
    """Return the ground truth of a batch, one row per lead."""
    won_at = funnel.stage_at[:, WON]
    columns: dict[str, pa.Array] = {
        "lead_id": id_array("L", leads.index + 1, ID_WIDTH),
        "latent_quality": pa.array(leads.quality),
        "engagement": pa.array(leads.engagement),
        "value_index": pa.array(leads.value),
        "drift_weight": pa.array(leads.drift),
        "owner_tier": category_array(roster.tier[funnel.owner], config_tiers),
        "owner_effect": pa.array(roster.effect[funnel.owner]),
        "skill_match": pa.array(funnel.skill_match),
        "contacted": pa.array(funnel.contacted),
        "first_contact_delay_hours": float_array(funnel.delay_hours),
        "conversion_logit": pa.array(funnel.logit),
        "p_convert_true": pa.array(funnel.p_convert),
    }
    for position, tier in enumerate(config_tiers):
        columns[f"p_convert_{tier}"] = pa.array(funnel.p_by_tier[:, position])
    columns.update(
        {
            "furthest_stage": category_array(funnel.depth, STAGE_CODES),
            "converted": pa.array(funnel.won),
            "won_at": timestamp_array(won_at, won_at == NO_TIME),
            "lost_at": timestamp_array(funnel.lost_at, funnel.lost_at == NO_TIME),
            "order_value_24m": float_array(orders.value_24m),
        }
    )
    return columns


def truth_schema() -> pa.Schema:
    """Return the Arrow schema of ground_truth/leads.parquet."""
    types: dict[str, pa.DataType] = {name: pa.float64() for name in TRUTH_COLUMNS}
    types.update(
        {
            "lead_id": pa.large_string(),
            "owner_tier": pa.large_string(),
            "furthest_stage": pa.large_string(),
            "skill_match": pa.bool_(),
            "contacted": pa.bool_(),
            "converted": pa.bool_(),
            "won_at": pa.timestamp("us", tz="UTC"),
            "lost_at": pa.timestamp("us", tz="UTC"),
        }
    )
    return pa.schema([pa.field(name, types[name]) for name in TRUTH_COLUMNS])
