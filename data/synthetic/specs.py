"""Typed specs of the categories the synthetic history draws from, each with its effects.

Effects on the latent lead quality and on the conversion logit are in logit units: +0.4
multiplies the odds of conversion by about 1.5.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ActivityType = Literal["call", "wechat", "email", "visit", "demo", "quote", "form", "other"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeywordSpec(_Spec):
    """A search keyword of a Baidu SEM campaign."""

    weight: float = Field(gt=0, description="Relative share of the campaign's leads.")
    quality: float = Field(description="Effect of the keyword's purchase intent on latent quality.")


class CampaignSpec(_Spec):
    """A marketing campaign inside one channel."""

    weight: float = Field(gt=0, description="Relative share of the channel's leads.")
    quality: float = Field(default=0.0, description="Effect on latent quality.")
    keywords: dict[str, KeywordSpec] = Field(
        default_factory=dict, description="Search keywords; empty for campaigns without keywords."
    )


class ChannelSpec(_Spec):
    """An acquisition channel: its share of leads before and after the drift, and its effects."""

    weight: float = Field(gt=0, description="Share of leads before the drift starts.")
    drift_weight: float = Field(gt=0, description="Share of leads once the drift has fully ramped in.")
    quality: float = Field(description="Effect on latent quality.")
    size_tilt: float = Field(
        default=0.0,
        description="Tilt toward larger (positive) or smaller (negative) companies, per size band.",
    )
    budget_declared: float = Field(ge=0, le=1, description="Probability that the lead states a budget.")
    existing_customer: float = Field(
        ge=0, le=1, description="Probability that the lead comes from an existing customer."
    )
    never_contacted: float = Field(ge=0, le=1, description="Probability that no rep ever contacts the lead.")
    intake_activity: ActivityType = Field(description="Activity type logged when the lead arrives.")
    intake_has_rep: bool = Field(
        description="Whether a rep takes part in the intake activity (a call) or not (a web form)."
    )
    campaigns: dict[str, CampaignSpec] = Field(
        default_factory=dict, description="Campaigns; empty for channels without campaigns."
    )
    campaign_missing: float = Field(
        default=0.0, ge=0, le=1, description="Probability that the campaign is not recorded."
    )


class RegionSpec(_Spec):
    """A sales region of China, with the cities used in company names."""

    weight: float = Field(gt=0, description="Share of leads.")
    quality: float = Field(description="Effect on latent quality.")
    cities: tuple[str, ...] = Field(min_length=1, description="Cities whose names prefix company names.")
    neighbours: tuple[str, ...] = Field(description="Regions a rep based here may also cover.")


class IndustrySpec(_Spec):
    """An industry of the lead's company."""

    weight: float = Field(gt=0, description="Share of leads that state an industry.")
    quality: float = Field(description="Effect on latent quality.")
    order_value: float = Field(gt=0, description="Multiplier of order amounts.")
    repeat_rate: float = Field(gt=0, description="Multiplier of the repeat-purchase rate.")
    name_word: str = Field(description="Word used in company names of this industry.")


class SizeSpec(_Spec):
    """A company-size band (headcount)."""

    weight: float = Field(gt=0, description="Share of leads that state a size.")
    quality: float = Field(description="Effect on latent quality.")
    value: float = Field(description="Contribution to the lead value index (larger is a bigger deal).")
    budget_median: float = Field(gt=0, description="Median declared budget and first order, in CNY.")
    dwell_factor: float = Field(gt=0, description="Multiplier of time spent in each funnel stage.")


class TitleSpec(_Spec):
    """The job title of the contact person."""

    weight: float = Field(gt=0, description="Share of leads that state a title.")
    quality: float = Field(description="Effect on latent quality (decision makers convert more).")


class TierSpec(_Spec):
    """A rep tier: its share of the team, capacity and effect on conversion."""

    share: float = Field(gt=0, description="Share of the reps.")
    capacity: int = Field(gt=0, description="Typical maximum of open leads at once.")
    hired_months_before_end: tuple[float, float] = Field(
        description="Range of months between the hire date and the end of the history."
    )
    low_value_effect: float = Field(description="Conversion logit effect on small, nurture leads.")
    high_value_effect: float = Field(description="Conversion logit effect on large, high-value leads.")
    response_median_hours: float = Field(gt=0, description="Median working hours until the first contact.")
    slow_response_rate: float = Field(
        ge=0, le=1, description="Probability that the first contact slips past 48 hours."
    )
    routing_weight_low: float = Field(ge=0, description="Routing weight for low-value leads.")
    routing_weight_high: float = Field(ge=0, description="Routing weight for high-value leads.")
