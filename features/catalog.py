"""The declared feature list: every feature's name, kind and labels in English and Chinese.

``features.pipeline.feature_definitions`` assembles the full list for one FeatureConfig and
set of custom attributes; ``build_features`` emits exactly these columns in this order.
Reason texts, reports and the feature spec take their labels from here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from data.folder import CustomAttribute
from data.schema import ACTIVITY_TYPES, DIRECTIONS
from leadscore.errors import ConfigError

FeatureKind = Literal["numeric", "categorical"]

ATTRIBUTE_PREFIX = "attr_"


@dataclass(frozen=True)
class FeatureDef:
    """One model input: its column name, kind, labels for people and meaning.

    ``attribute`` names the custom lead attribute a feature comes from, and ``post_contact``
    marks values known only after sales contact, which the leakage probe excludes.
    """

    name: str
    kind: FeatureKind
    label_en: str
    label_zh: str
    description: str
    attribute: str | None = None
    post_contact: bool = False


def _numeric(name: str, label_en: str, label_zh: str, description: str) -> FeatureDef:
    return FeatureDef(name, "numeric", label_en, label_zh, description)


def _categorical(name: str, label_en: str, label_zh: str, description: str) -> FeatureDef:
    return FeatureDef(name, "categorical", label_en, label_zh, description)


# Canonical lead columns used as-is: known at capture, so known at every cutoff.
LEAD_ATTRIBUTE_FEATURES: tuple[FeatureDef, ...] = (
    _categorical("channel", "Channel", "来源渠道", "Acquisition channel of the lead."),
    _categorical("campaign", "Campaign", "推广计划", "Marketing campaign of the lead."),
    _categorical("region", "Region", "所属区域", "Sales region of the lead."),
    _categorical("industry", "Industry", "所属行业", "Industry of the lead's company."),
    _categorical("company_size", "Company size", "公司规模", "Company size band (headcount)."),
    _numeric("declared_budget", "Declared budget", "声明预算", "Budget the lead stated, in CNY."),
)

LEAD_TIME_FEATURES: tuple[FeatureDef, ...] = (
    _numeric("lead_age_days", "Lead age (days)", "线索时长（天）", "Days from creation to the cutoff."),
    _numeric(
        "created_hour_local",
        "Creation hour",
        "创建时刻（小时）",
        "Hour of day (0-23) the lead was created, in the business time zone.",
    ),
    _numeric(
        "created_weekday_local",
        "Creation weekday",
        "创建星期",
        "Weekday the lead was created (0 = Monday), in the business time zone.",
    ),
)

STAGE_FEATURES: tuple[FeatureDef, ...] = (
    _categorical(
        "stage",
        "Stage",
        "当前阶段",
        "Funnel stage at the cutoff: the last stage entered before it, 'lead' when none.",
    ),
    _numeric(
        "days_in_stage",
        "Days in stage",
        "当前阶段停留天数",
        "Days since the lead entered its stage at the cutoff (since creation when still 'lead').",
    ),
    _numeric(
        "stage_changes_count", "Stage changes", "阶段变更次数", "Stage changes recorded before the cutoff."
    ),
    _numeric(
        "furthest_stage_order",
        "Furthest stage reached",
        "到达的最远阶段",
        "Funnel position (0 = lead ... 5 = won) of the furthest stage entered before the cutoff.",
    ),
)

ACTIVITY_SUMMARY_FEATURES: tuple[FeatureDef, ...] = (
    _numeric("activities_total", "Activities", "跟进总次数", "Activities of the lead before the cutoff."),
    _numeric(
        "days_since_last_activity",
        "Days since last activity",
        "距上次跟进天数",
        "Days from the last activity to the cutoff; missing when there was none.",
    ),
    _numeric(
        "days_since_last_inbound",
        "Days since last inbound activity",
        "距客户上次主动联系天数",
        "Days from the last inbound activity to the cutoff; missing when there was none.",
    ),
    _numeric(
        "contacted",
        "Contacted",
        "已首次联系",
        "1 when a rep reached out (an outbound activity) before the cutoff, else 0.",
    ),
    _numeric(
        "hours_to_first_contact",
        "Hours to first contact",
        "首次联系用时（小时）",
        "Hours from creation to the first outbound activity; "
        "for a lead not yet contacted, the hours it has waited until the cutoff.",
    ),
    _numeric(
        "first_contact_sla_breached",
        "First-contact SLA breached",
        "首次联系超时",
        "1 when first contact took, or the wait so far exceeds, first_contact_sla_hours.",
    ),
    _numeric(
        "distinct_reps",
        "Reps involved",
        "参与跟进的销售人数",
        "Distinct reps with an activity on the lead before the cutoff.",
    ),
)

ENGAGEMENT_TREND = _numeric(
    "engagement_trend",
    "Engagement trend",
    "互动趋势",
    "Activities per day in the shortest window minus activities per day in the rest of the "
    "second window; positive when the lead is warming up.",
)

CUSTOMER_FEATURES: tuple[FeatureDef, ...] = (
    _numeric(
        "is_existing_customer",
        "Existing customer",
        "老客户",
        "1 when the lead's customer has an order before the cutoff, else 0.",
    ),
    _numeric(
        "customer_frequency",
        "Repeat purchase days",
        "复购天数",
        "BG/NBD frequency: distinct purchase days before the cutoff minus one.",
    ),
    _numeric(
        "customer_recency",
        "Purchase recency (days)",
        "首末购间隔（天）",
        "BG/NBD recency: days from the first to the last purchase day before the cutoff.",
    ),
    _numeric(
        "customer_T",
        "Customer age (days)",
        "客户年龄（天）",
        "BG/NBD T: days from the first purchase day to the last day before the cutoff.",
    ),
    _numeric(
        "customer_monetary_value",
        "Mean repeat purchase value",
        "复购日均金额",
        "Mean purchase value per repeat purchase day (first purchase day excluded); 0 without repeats.",
    ),
    _numeric("customer_order_count", "Orders", "订单数", "Purchase lines (amount >= 0) before the cutoff."),
    _numeric(
        "customer_total_net_value",
        "Net revenue",
        "净收入",
        "Sum of order amounts before the cutoff, refunds netted.",
    ),
    _numeric(
        "customer_mean_net_value",
        "Mean net order value",
        "单均净收入",
        "Net revenue divided by the number of purchase lines.",
    ),
    _numeric(
        "customer_refund_share",
        "Refund share",
        "退款占比",
        "Refunded amount as a share of purchased amount before the cutoff.",
    ),
    _numeric(
        "customer_tenure_days",
        "Customer tenure (days)",
        "客户时长（天）",
        "Days from the first purchase to the cutoff.",
    ),
    _numeric(
        "customer_days_since_last_order",
        "Days since last order",
        "距上次下单天数",
        "Days from the last purchase to the cutoff.",
    ),
    _numeric(
        "customer_interpurchase_mean_days",
        "Mean days between purchases",
        "平均复购间隔（天）",
        "Mean gap in days between consecutive purchase days.",
    ),
    _numeric(
        "customer_interpurchase_std_days",
        "Std of days between purchases",
        "复购间隔标准差（天）",
        "Sample standard deviation of the gaps between purchase days (needs 2 or more gaps).",
    ),
)

ACTIVITY_TYPE_LABELS: dict[str, tuple[str, str]] = {
    "call": ("calls", "电话"),
    "wechat": ("WeChat messages", "微信"),
    "email": ("emails", "邮件"),
    "visit": ("visits", "拜访"),
    "demo": ("demos", "演示"),
    "quote": ("quotes", "报价"),
    "form": ("form submissions", "表单"),
    "other": ("other activities", "其他跟进"),
}
DIRECTION_LABELS: dict[str, tuple[str, str]] = {
    "inbound": ("inbound activities", "客户主动联系"),
    "outbound": ("outbound activities", "销售主动联系"),
}


def window_feature_name(group: str | None, days: int) -> str:
    """Return the column name of an activity count: ``activities_30d``, ``activities_call_7d`` ..."""
    return f"activities_{days}d" if group is None else f"activities_{group}_{days}d"


def window_groups() -> tuple[str, ...]:
    """Return the activity groups counted per window: each direction, then each activity type."""
    return (*DIRECTIONS, *ACTIVITY_TYPES)


def window_definitions(windows_days: Sequence[int]) -> list[FeatureDef]:
    """Return the activity-count features for each look-back window."""
    definitions: list[FeatureDef] = []
    for days in windows_days:
        definitions.append(
            _numeric(
                window_feature_name(None, days),
                f"Activities, last {days} days",
                f"近{days}天跟进次数",
                f"Activities in the {days} days before the cutoff.",
            )
        )
        for group in window_groups():
            label_en, label_zh = {**DIRECTION_LABELS, **ACTIVITY_TYPE_LABELS}[group]
            definitions.append(
                _numeric(
                    window_feature_name(group, days),
                    f"{label_en.capitalize()}, last {days} days",
                    f"近{days}天{label_zh}次数",
                    f"Count of {label_en} in the {days} days before the cutoff.",
                )
            )
    return definitions


def attribute_feature_name(attribute: str) -> str:
    """Return the feature column of a custom attribute: ``attr_`` plus the name in word characters.

    LightGBM 4.7 rejects JSON punctuation in feature names and renames spaces, so spaces and
    punctuation become underscores here ("Lead Quality" becomes ``attr_Lead_Quality``).
    Chinese characters are kept, which LightGBM accepts.
    """
    cleaned = re.sub(r"\W+", "_", attribute.strip()).strip("_")
    if not cleaned:
        raise ConfigError(f"custom attribute name {attribute!r} has no letters or digits to name a feature")
    return ATTRIBUTE_PREFIX + cleaned


def attribute_definitions(
    attributes: Sequence[CustomAttribute], *, include_post_contact: bool
) -> list[FeatureDef]:
    """Return one feature per usable custom attribute, in declaration order.

    Text attributes are free text and give no feature. Post-contact attributes are left out
    unless ``include_post_contact``. Timestamp attributes become days before the cutoff.
    """
    definitions: list[FeatureDef] = []
    seen: dict[str, str] = {}
    for attribute in attributes:
        if attribute.type == "text":
            continue
        if attribute.post_contact and not include_post_contact:
            continue
        name = attribute_feature_name(attribute.name)
        if name in seen:
            raise ConfigError(
                f"custom attributes {seen[name]!r} and {attribute.name!r} both map to feature {name!r}; "
                "rename one of them in leads.attributes.json"
            )
        seen[name] = attribute.name
        kind: FeatureKind = "categorical" if attribute.type == "category" else "numeric"
        described = attribute.description or f"Custom lead attribute {attribute.name!r}."
        if attribute.type == "timestamp":
            label_en = f"Days since {attribute.name}"
            label_zh = f"距{attribute.name}天数"
            described += " Days from this time to the cutoff; missing when it is not before the cutoff."
        else:
            label_en = label_zh = attribute.name
        definitions.append(
            FeatureDef(
                name,
                kind,
                label_en,
                label_zh,
                described,
                attribute=attribute.name,
                post_contact=attribute.post_contact,
            )
        )
    return definitions
