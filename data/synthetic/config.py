"""Every knob of the synthetic CRM history, as one strict, typed config.

The defaults tell the story documented in docs/synthetic-history.md: about 8 % of leads are
won, reps log about 10 activities per lead, and in the last four months the channel mix
shifts toward Douyin while the base conversion rate falls.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tomllib
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from data.schema import TIERS
from data.synthetic import catalog
from data.synthetic.specs import ChannelSpec, IndustrySpec, RegionSpec, SizeSpec, TierSpec, TitleSpec
from leadscore.errors import ConfigError

FUNNEL_DEPTHS: tuple[str, ...] = ("qualified", "proposal", "negotiation", "won")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftConfig(_Strict):
    """The documented drift: the channel mix moves to each channel's ``drift_weight`` and the
    conversion logit shifts by ``conversion_shift``, both ramping in linearly over ``ramp_days``
    from the first day of month ``start_month`` (0-based) of the history."""

    enabled: bool = Field(default=True, description="Switch the drift off to get a stationary history.")
    start_month: int | None = Field(
        default=None,
        ge=0,
        description="Month of the history (0-based) where the drift starts; None means months - 4.",
    )
    ramp_days: float = Field(
        default=45.0, gt=0, description="Days over which the drift ramps from none to full."
    )
    conversion_shift: float = Field(
        default=-0.35, description="Change of the conversion logit once the drift is full (market cooling)."
    )


class ArrivalConfig(_Strict):
    """Spread of lead intake over the calendar (China Standard Time)."""

    monthly_growth: float = Field(
        default=0.02, gt=-0.5, lt=1.0, description="Growth of lead volume per month."
    )
    hour_weights: tuple[float, ...] = Field(
        default=catalog.HOUR_WEIGHTS,
        min_length=24,
        max_length=24,
        description="Relative intake per hour of day.",
    )
    weekday_weights: tuple[float, ...] = Field(
        default=catalog.WEEKDAY_WEIGHTS,
        min_length=7,
        max_length=7,
        description="Relative intake, Monday first.",
    )
    holiday_factor: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="Intake multiplier during Spring Festival, Labour Day and National Day.",
    )


class ResponseConfig(_Strict):
    """Time to the first contact, and its effect on conversion."""

    sigma: float = Field(default=1.3, gt=0, description="Log-scale spread of the working-hours delay.")
    slow_extra_hours: tuple[float, float] = Field(
        default=(48.0, 60.0),
        description="A slow first contact waits this minimum plus an exponential of this mean.",
    )
    speed_penalty: float = Field(
        default=0.22,
        ge=0,
        description="Conversion logit lost per unit of log(1 + first-contact delay in hours).",
    )


class FunnelConfig(_Strict):
    """Stage progression: how far a lead gets and how long each stage lasts."""

    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"qualified": -2.3, "proposal": -1.4, "negotiation": -0.6, "won": 0.0},
        description="A lead reaches a stage when its conversion logit plus logistic noise exceeds the value.",
    )
    dwell_median_days: dict[str, float] = Field(
        default_factory=lambda: {"qualified": 2.0, "proposal": 6.0, "negotiation": 8.0, "won": 10.0},
        description="Median days from the previous stage to this one, before the size factor.",
    )
    dwell_sigma: float = Field(default=0.8, gt=0, description="Log-scale spread of dwell times.")
    lost_median_days: float = Field(
        default=12.0, gt=0, description="Median days from the last stage to lost."
    )
    lost_sigma: float = Field(default=0.9, gt=0, description="Log-scale spread of the time to lost.")
    left_open_rate: float = Field(
        default=0.15, ge=0, le=1, description="Share of contacted, unwon leads that reps never mark lost."
    )
    recycle_rate: float = Field(
        default=0.7, ge=0, le=1, description="Share of never-contacted leads that the CRM marks lost."
    )
    recycle_days: tuple[float, float] = Field(
        default=(30.0, 60.0),
        description="Range of days after intake when a never-contacted lead is marked lost.",
    )
    rating_noise: float = Field(
        default=0.6, ge=0, description="Noise of the rep's A-D rating around the lead's conversion logit."
    )

    @model_validator(mode="after")
    def _check_stages(self) -> FunnelConfig:
        for name, mapping in (("thresholds", self.thresholds), ("dwell_median_days", self.dwell_median_days)):
            if tuple(mapping) != FUNNEL_DEPTHS:
                raise ValueError(
                    f"funnel.{name} needs the keys {FUNNEL_DEPTHS} in that order, got {tuple(mapping)}"
                )
        values = list(self.thresholds.values())
        if values != sorted(values):
            raise ValueError(f"funnel.thresholds must increase along the funnel, got {self.thresholds}")
        if self.recycle_days[0] > self.recycle_days[1]:
            raise ValueError(f"funnel.recycle_days must be (min, max), got {self.recycle_days}")
        return self


class ActivityConfig(_Strict):
    """Activities beyond intake, first contact and stage milestones."""

    mean_by_depth: dict[str, float] = Field(
        default_factory=lambda: {
            "lead": 0.3,
            "contacted": 4.5,
            "qualified": 7.0,
            "proposal": 9.0,
            "negotiation": 10.0,
            "won": 10.0,
        },
        description="Mean number of follow-up activities by the furthest stage a lead reaches.",
    )
    dispersion: float = Field(
        default=2.0, gt=0, description="Gamma shape of the per-lead activity rate; smaller is more uneven."
    )
    engagement_effect: float = Field(
        default=0.3, description="Log change of the activity count per unit of engagement."
    )
    inbound_rate: float = Field(default=0.25, ge=0, le=1, description="Share of follow-ups the lead starts.")
    reply_rate: float = Field(
        default=0.7, ge=0, le=1, description="Share of inbound follow-ups that the owner replies to."
    )
    reply_median_hours: float = Field(
        default=1.5, gt=0, description="Median hours until the owner replies to an inbound follow-up."
    )
    open_span_days: float = Field(
        default=60.0,
        gt=0,
        description="Days over which follow-ups of a lead without a terminal stage spread.",
    )


class OrderConfig(_Strict):
    """Orders of won leads and of existing customers: first order, repeats, refunds."""

    first_order_sigma: float = Field(
        default=0.9, gt=0, description="Log-scale spread of the first order amount."
    )
    budget_sigma: float = Field(
        default=0.35, gt=0, description="Log-scale spread of the first order around a stated budget."
    )
    quality_value_effect: float = Field(
        default=0.15, description="Log change of order amounts per unit of latent quality."
    )
    repeat_per_month: float = Field(
        default=0.25, ge=0, description="Mean repeat purchases per month of an active customer."
    )
    repeat_shape: float = Field(default=1.2, gt=0, description="Gamma shape of the customer's repeat rate.")
    lifetime_mean_months: float = Field(
        default=20.0, gt=0, description="Mean months until a customer stops buying."
    )
    horizon_months: float = Field(
        default=24.0, gt=0, description="Months after the first order that repeats can occur."
    )
    repeat_share: float = Field(
        default=0.3, gt=0, description="Median repeat amount as a share of the first order."
    )
    repeat_sigma: float = Field(default=0.8, gt=0, description="Log-scale spread of repeat amounts.")
    refund_rate: float = Field(
        default=0.04, ge=0, le=1, description="Probability that an order gets a refund line."
    )
    full_refund_share: float = Field(
        default=0.4, ge=0, le=1, description="Share of refunds that return the whole amount."
    )
    refund_median_days: float = Field(
        default=12.0, gt=0, description="Median days from an order to its refund."
    )
    prior_first_order_months: tuple[float, float] = Field(
        default=(2.0, 24.0),
        description="Range of months before intake of an existing customer's first order.",
    )


class GeneratorConfig(_Strict):
    """The whole synthetic history: size, seed, time window and every effect."""

    leads: int = Field(ge=1, le=100_000_000, description="Number of leads.")
    seed: int = Field(default=0, ge=0, lt=2**63, description="Seed; equal seeds give byte-identical tables.")
    start: dt.date = Field(
        default=dt.date(2024, 1, 1), description="First day of the history (China Standard Time)."
    )
    months: int = Field(default=18, ge=1, le=120, description="Length of the history in calendar months.")
    chunk_size: int = Field(
        default=50_000,
        ge=1,
        le=10_000_000,
        description="Leads generated and written per chunk; bounds memory.",
    )
    reps: int | None = Field(
        default=None, ge=1, le=99_999, description="Team size; None sizes it from leads_per_rep."
    )
    leads_per_rep: int = Field(
        default=250, ge=1, description="Leads per rep over the history when reps is None."
    )
    min_reps: int = Field(default=8, ge=1, description="Smallest team when reps is None.")

    channels: dict[str, ChannelSpec] = Field(default_factory=catalog.default_channels)
    regions: dict[str, RegionSpec] = Field(default_factory=catalog.default_regions)
    industries: dict[str, IndustrySpec] = Field(default_factory=catalog.default_industries)
    sizes: dict[str, SizeSpec] = Field(default_factory=catalog.default_sizes)
    titles: dict[str, TitleSpec] = Field(default_factory=catalog.default_titles)
    tiers: dict[str, TierSpec] = Field(default_factory=catalog.default_tiers)

    industry_missing: float = Field(
        default=0.08, ge=0, le=1, description="Share of leads without an industry."
    )
    size_missing: float = Field(default=0.1, ge=0, le=1, description="Share of leads without a company size.")
    title_missing: float = Field(
        default=0.15, ge=0, le=1, description="Share of leads without a contact title."
    )
    budget_sigma: float = Field(
        default=0.9, gt=0, description="Log-scale spread of declared budgets around the size median."
    )
    budget_declared_quality: float = Field(
        default=0.35, description="Quality effect of stating a budget at all."
    )
    budget_ratio_quality: float = Field(
        default=0.25, description="Quality effect per unit of log(budget / size median), clipped to [-1, 1]."
    )
    existing_customer_quality: float = Field(
        default=0.9, description="Quality effect of being an existing customer."
    )
    missing_field_quality: float = Field(
        default=-0.1, description="Quality effect of each of industry, size and title left blank on the form."
    )
    quality_noise: float = Field(
        default=0.8, ge=0, description="Standard deviation of unexplained lead quality."
    )
    value_budget_weight: float = Field(
        default=0.5, description="Weight of log(budget / 40,000 CNY) in the lead value index."
    )

    conversion_intercept: float = Field(default=-3.15, description="Conversion logit of an average lead.")
    engagement_quality_weight: float = Field(
        default=0.45, description="How much engagement follows latent quality."
    )
    engagement_noise: float = Field(
        default=0.9, ge=0, description="Standard deviation of engagement beyond quality."
    )
    engagement_effect: float = Field(default=0.45, description="Conversion logit per unit of engagement.")
    rep_effect_sd: float = Field(
        default=0.15, ge=0, description="Standard deviation of a rep's own conversion effect."
    )
    skill_match_effect: float = Field(
        default=0.2, description="Conversion logit when the rep knows the lead's industry."
    )
    turnover_rate: float = Field(
        default=0.08, ge=0, le=1, description="Share of reps who leave during the history."
    )

    drift: DriftConfig = Field(default_factory=DriftConfig)
    arrivals: ArrivalConfig = Field(default_factory=ArrivalConfig)
    response: ResponseConfig = Field(default_factory=ResponseConfig)
    funnel: FunnelConfig = Field(default_factory=FunnelConfig)
    activities: ActivityConfig = Field(default_factory=ActivityConfig)
    orders: OrderConfig = Field(default_factory=OrderConfig)

    @model_validator(mode="after")
    def _check_references(self) -> GeneratorConfig:
        if tuple(self.tiers) != TIERS:
            raise ValueError(f"tiers must be exactly {TIERS} in that order, got {tuple(self.tiers)}")
        for name, region in self.regions.items():
            unknown = [neighbour for neighbour in region.neighbours if neighbour not in self.regions]
            if unknown:
                raise ValueError(f"region {name!r} names unknown neighbour regions {unknown}")
        for name, channel in self.channels.items():
            if channel.campaign_missing > 0 and not channel.campaigns:
                raise ValueError(f"channel {name!r} sets campaign_missing but has no campaigns")
        if self.drift.start_month is not None and self.drift.start_month >= self.months:
            raise ValueError(
                f"drift.start_month {self.drift.start_month} is outside a history of {self.months} months"
            )
        return self

    @property
    def team_size(self) -> int:
        """Number of reps: ``reps`` if set, else leads / leads_per_rep, at least ``min_reps``."""
        if self.reps is not None:
            return self.reps
        return max(self.min_reps, math.ceil(self.leads / self.leads_per_rep))

    @property
    def drift_start_month(self) -> int:
        """Month (0-based) where the drift starts."""
        if self.drift.start_month is not None:
            return self.drift.start_month
        return max(self.months - 4, 0)


def load_generator_config(path: Path | None = None, **overrides: object) -> GeneratorConfig:
    """Build a ``GeneratorConfig`` from an optional YAML, TOML or JSON file plus ``overrides``.

    Overrides whose value is None are ignored, so command-line options left unset keep the
    file's or the default value. Raises ``ConfigError`` naming each invalid or unknown key.
    """
    values: dict[str, object] = {}
    if path is not None:
        values.update(_read_config_file(Path(path)))
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return GeneratorConfig.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}"
            for item in error.errors()
        )
        source = f" in {path}" if path is not None else ""
        raise ConfigError(
            f"invalid generator config{source}: {problems}; fix these settings in the config file "
            "or with the matching command-line option"
        ) from None


def _read_config_file(path: Path) -> dict[str, object]:
    if not path.is_file():
        raise ConfigError(f"generator config file {path} not found")
    text = path.read_text("utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            loaded = yaml.safe_load(text)
        elif suffix == ".toml":
            loaded = tomllib.loads(text)
        elif suffix == ".json":
            loaded = json.loads(text)
        else:
            raise ConfigError(f"generator config {path} must end in .yaml, .yml, .toml or .json")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"generator config {path} cannot be parsed: {error}") from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"generator config {path} must hold a mapping of settings, not {type(loaded).__name__}"
        )
    return loaded
