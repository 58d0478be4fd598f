"""Synthetic lead feature frames with a known conversion signal, for the modelling-core tests.

The frames carry a lead id, a cutoff, the labels ``converted`` and ``value`` and a subset of
the lead features named as in ``features.catalog`` (the rule-score inputs among them). They
are drawn directly from a logistic model instead of going through the feature pipeline, so
these tests stay fast and the true signal is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CHANNELS = ("Baidu SEM", "转介绍 referral", "展会 trade show", "WeCom", "web form")
COMPANY_SIZES = ("1-20", "21-100", "101-500", "500+")
STAGES = ("lead", "contacted", "qualified", "proposal", "negotiation")
CATEGORICAL_FEATURES = ("channel", "company_size", "stage")
NUMERIC_FEATURES = (
    "declared_budget",
    "contacted",
    "hours_to_first_contact",
    "first_contact_sla_breached",
    "activities_inbound_30d",
    "activities_demo_90d",
    "activities_quote_90d",
    "furthest_stage_order",
    "noise",
)
FEATURES = CATEGORICAL_FEATURES + NUMERIC_FEATURES

_CHANNEL_EFFECT = np.array([0.0, 1.2, 0.8, 0.2, -0.3])
_SIZE_EFFECT = np.array([-0.6, 0.0, 0.5, 0.9])
_STAGE_EFFECT = np.array([-0.8, -0.3, 0.4, 1.0, 1.6])


@dataclass(frozen=True)
class Definition:
    """A stand-in for features.catalog.FeatureDef with the two fields the baselines read."""

    name: str
    kind: str


DEFINITIONS = tuple(Definition(name, "categorical") for name in CATEGORICAL_FEATURES) + tuple(
    Definition(name, "numeric") for name in NUMERIC_FEATURES
)


def make_lead_frame(
    n_leads: int,
    *,
    seed: int = 0,
    intercept: float = -2.6,
    snapshots_per_lead: int = 1,
    start: str = "2023-01-01",
    days: int = 540,
) -> pd.DataFrame:
    """Build one row per lead snapshot with features, ``converted`` (0/1) and net ``value``.

    Conversion follows a logistic model of channel, company size, stage, budget, response
    speed, inbound contacts, demos and quotes. ``noise`` carries no signal. Buyers get a
    lognormal value that grows with company size; about 3 % of them end with a net refund.
    """
    rng = np.random.default_rng(seed)
    created = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, days, n_leads)), unit="D"
    )
    channel = rng.choice(len(CHANNELS), n_leads, p=[0.4, 0.1, 0.1, 0.25, 0.15])
    size = rng.choice(len(COMPANY_SIZES), n_leads, p=[0.4, 0.3, 0.2, 0.1])
    stage = rng.choice(len(STAGES), n_leads, p=[0.35, 0.3, 0.2, 0.1, 0.05])
    budget = np.exp(rng.normal(10.5 + 0.5 * size, 1.0))
    budget[rng.random(n_leads) < 0.2] = np.nan
    hours = rng.exponential(20.0, n_leads)
    contacted = (rng.random(n_leads) >= 0.1).astype(float)
    inbound = rng.poisson(0.8, n_leads).astype(float)
    demo = (rng.random(n_leads) < 0.2).astype(float)
    quote = (rng.random(n_leads) < 0.15).astype(float)
    noise = rng.normal(size=n_leads)

    logit = (
        intercept
        + _CHANNEL_EFFECT[channel]
        + _SIZE_EFFECT[size]
        + _STAGE_EFFECT[stage]
        + 0.4 * np.nan_to_num((np.log(budget) - 11.0), nan=-0.5)
        - 0.02 * np.where(contacted == 1, hours, 60.0)
        + 0.35 * inbound
        + 0.8 * demo
        + 0.9 * quote
    )
    converted = (rng.random(n_leads) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    value = np.where(converted == 1, np.exp(rng.normal(9.0 + 0.6 * size, 1.0)), 0.0)
    refunds = (converted == 1) & (rng.random(n_leads) < 0.03)
    value[refunds] = -rng.uniform(100, 2000, int(refunds.sum()))

    frame = pd.DataFrame(
        {
            "lead_id": [f"L{i:06d}" for i in range(n_leads)],
            "cutoff": created + pd.Timedelta(hours=1),
            "channel": np.array(CHANNELS)[channel],
            "company_size": np.array(COMPANY_SIZES)[size],
            "stage": np.array(STAGES)[stage],
            "declared_budget": budget,
            "contacted": contacted,
            "hours_to_first_contact": hours,
            "first_contact_sla_breached": (hours > 48).astype(float),
            "activities_inbound_30d": inbound,
            "activities_demo_90d": demo,
            "activities_quote_90d": quote,
            "furthest_stage_order": stage.astype(float),
            "noise": noise,
            "converted": converted,
            "value": value,
        }
    )
    if snapshots_per_lead > 1:
        copies = []
        for number in range(snapshots_per_lead):
            copy = frame.copy()
            copy["cutoff"] = copy["cutoff"] + pd.Timedelta(days=30 * number)
            copies.append(copy)
        frame = pd.concat(copies, ignore_index=True).sort_values(["cutoff", "lead_id"], ignore_index=True)
    return frame


def to_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the feature matrix the feature spec would build: fixed categories, spec order."""
    columns: dict[str, pd.Series] = {}
    categories = {"channel": CHANNELS, "company_size": COMPANY_SIZES, "stage": STAGES}
    for name in FEATURES:
        if name in categories:
            columns[name] = pd.Series(pd.Categorical(frame[name], categories=list(categories[name])))
        else:
            columns[name] = frame[name].astype("float64").reset_index(drop=True)
    return pd.DataFrame(columns)
