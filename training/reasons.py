"""Reasons behind a conversion score: the features that pushed it up or down, as sentences.

Contributions are LightGBM SHAP values (``Booster.predict(pred_contrib=True)``) of the
conversion booster, in log-odds units before calibration. Each reason names the feature, its
direction, its contribution and a sentence about the lead's own value of that feature in
``en`` or ``zh-CN``, such as "not contacted within 48 hours" or "3 inbound contacts in the last
7 days". Features without a dedicated sentence fall back to their label and value.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from data.stages import FUNNEL, LOST
from features.catalog import ACTIVITY_TYPE_LABELS, FeatureDef
from leadscore.i18n import Locale, register_messages, translate
from training.boosting import as_lightgbm_input

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Direction = Literal["positive", "negative"]

# Contributions smaller than this (in log-odds) are noise from tree rounding, not reasons.
MIN_CONTRIBUTION = 1e-6
DEFAULT_SLA_HOURS = 48.0

_REFERRAL_CHANNELS = frozenset({"referral", "转介绍", "介绍", "老客户推荐", "客户推荐", "推荐"})
_WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_STAGE_NAMES = {stage.code: stage for stage in (*FUNNEL, LOST)}
_STAGE_BY_ORDER = {stage.order: stage for stage in FUNNEL}
_WINDOW_FEATURE = re.compile(r"^activities_(?:(?P<group>[a-z]+)_)?(?P<days>\d+)d$")

_MESSAGES: dict[str, dict[str, str]] = {
    "reason.generic": {"en": "{label}: {value}", "zh-CN": "{label}：{value}"},
    "reason.generic_missing": {"en": "{label}: not recorded", "zh-CN": "{label}：未记录"},
    "reason.channel_referral": {"en": "came through a referral", "zh-CN": "来自转介绍"},
    "reason.channel": {"en": "came through the {value} channel", "zh-CN": "来自{value}渠道"},
    "reason.channel_missing": {"en": "channel not recorded", "zh-CN": "来源渠道未记录"},
    "reason.not_contacted_within_sla": {
        "en": "not contacted within {sla} hours",
        "zh-CN": "{sla} 小时内未首次联系",
    },
    "reason.not_contacted_yet": {
        "en": "not contacted yet ({hours} hours since capture)",
        "zh-CN": "尚未首次联系（线索创建已 {hours} 小时）",
    },
    "reason.contacted_within_sla": {
        "en": "first contacted within {sla} hours",
        "zh-CN": "{sla} 小时内完成首次联系",
    },
    "reason.contacted_after_sla": {
        "en": "first contacted only after {hours} hours",
        "zh-CN": "{hours} 小时后才首次联系",
    },
    "reason.contacted": {"en": "already contacted by a rep", "zh-CN": "销售已首次联系"},
    "reason.inbound_count.one": {
        "en": "1 inbound contact in the last {days} days",
        "zh-CN": "最近 {days} 天 1 次客户主动联系",
    },
    "reason.inbound_count.other": {
        "en": "{count} inbound contacts in the last {days} days",
        "zh-CN": "最近 {days} 天 {count} 次客户主动联系",
    },
    "reason.outbound_count.one": {
        "en": "1 outbound contact by reps in the last {days} days",
        "zh-CN": "最近 {days} 天销售主动联系 1 次",
    },
    "reason.outbound_count.other": {
        "en": "{count} outbound contacts by reps in the last {days} days",
        "zh-CN": "最近 {days} 天销售主动联系 {count} 次",
    },
    "reason.activity_count.one": {
        "en": "1 activity in the last {days} days",
        "zh-CN": "最近 {days} 天共 1 次跟进",
    },
    "reason.activity_count.other": {
        "en": "{count} activities in the last {days} days",
        "zh-CN": "最近 {days} 天共 {count} 次跟进",
    },
    "reason.activity_type_count": {
        "en": "{count} {kind} in the last {days} days",
        "zh-CN": "最近 {days} 天{kind} {count} 次",
    },
    "reason.stage": {"en": "currently at the {stage} stage", "zh-CN": "当前处于{stage}阶段"},
    "reason.furthest_stage": {"en": "has reached the {stage} stage", "zh-CN": "最远已到达{stage}阶段"},
    "reason.days_in_stage": {
        "en": "{duration} in the current stage",
        "zh-CN": "在当前阶段已停留{duration}",
    },
    "reason.stage_changes": {"en": "{count} stage changes so far", "zh-CN": "已有 {count} 次阶段变更"},
    "reason.no_activity": {"en": "no activity recorded yet", "zh-CN": "尚无跟进记录"},
    "reason.last_activity": {"en": "last activity {duration} ago", "zh-CN": "上次跟进在{duration}前"},
    "reason.never_inbound": {"en": "has never reached out", "zh-CN": "客户从未主动联系"},
    "reason.last_inbound": {
        "en": "last reached out {duration} ago",
        "zh-CN": "客户上次主动联系在{duration}前",
    },
    "reason.existing_customer": {"en": "is an existing customer", "zh-CN": "是老客户"},
    "reason.new_customer": {"en": "is not yet a customer", "zh-CN": "尚未成为客户"},
    "reason.order_count": {"en": "{count} earlier orders", "zh-CN": "此前下单 {count} 次"},
    "reason.budget": {"en": "stated a budget of {amount} CNY", "zh-CN": "声明预算 {amount} 元"},
    "reason.no_budget": {"en": "no budget stated", "zh-CN": "未说明预算"},
    "reason.engagement_rising": {"en": "engagement is rising", "zh-CN": "互动在增加"},
    "reason.engagement_falling": {"en": "engagement is falling", "zh-CN": "互动在减少"},
    "reason.engagement_steady": {"en": "engagement is steady", "zh-CN": "互动保持平稳"},
    "reason.lead_age": {"en": "captured {duration} ago", "zh-CN": "线索创建于{duration}前"},
    "duration.under_one_day": {"en": "less than a day", "zh-CN": "不到 1 天"},
    "duration.one_day": {"en": "1 day", "zh-CN": " 1 天"},
    "duration.days": {"en": "{days} days", "zh-CN": " {days} 天"},
    "reason.created_hour": {"en": "captured at {hour}:00 local time", "zh-CN": "创建于当地时间 {hour} 点"},
    "reason.created_weekday": {"en": "captured on a {weekday}", "zh-CN": "创建于{weekday}"},
    "reason.distinct_reps": {
        "en": "{count} reps have worked on the lead",
        "zh-CN": "{count} 位销售参与过跟进",
    },
}

_registered = False


def register_reason_messages() -> None:
    """Register the reason sentences with ``leadscore.i18n`` (idempotent)."""
    global _registered  # noqa: PLW0603 - a once-only flag; the catalog itself lives in leadscore.i18n
    if not _registered:
        register_messages(_MESSAGES)
        _registered = True


@dataclass(frozen=True)
class Reason:
    """One feature's push on a lead's conversion score."""

    feature: str
    direction: Direction
    contribution: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "direction": self.direction,
            "contribution": self.contribution,
            "text": self.text,
        }


@dataclass(frozen=True)
class ReasonContext:
    """Feature labels and the first-contact SLA, which sentences need besides the feature value."""

    definitions: Mapping[str, FeatureDef]
    sla_hours: float = DEFAULT_SLA_HOURS

    @classmethod
    def of(cls, definitions: Sequence[FeatureDef], sla_hours: float = DEFAULT_SLA_HOURS) -> ReasonContext:
        return cls({definition.name: definition for definition in definitions}, sla_hours)


# --- value formatting ---------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _format_number(value: float) -> str:
    """Format a count or duration: whole numbers without decimals, others with one."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}"


def _format_amount(value: float) -> str:
    return f"{value:,.0f}"


def _plural_key(base: str, count: float) -> str:
    return f"{base}.one" if count == 1 else f"{base}.other"


# --- sentences per feature ----------------------------------------------------------------------

SentenceBuilder = Callable[[Any, Locale, ReasonContext], str | None]


def _channel(value: Any, locale: Locale, context: ReasonContext) -> str:
    if _is_missing(value):
        return translate("reason.channel_missing", locale)
    if str(value).strip().lower() in _REFERRAL_CHANNELS:
        return translate("reason.channel_referral", locale)
    return translate("reason.channel", locale, value=value)


def _contact_sentence(contacted: Any, hours: Any, locale: Locale, context: ReasonContext) -> str | None:
    """Describe first contact from ``contacted`` and ``hours_to_first_contact`` together.

    For a lead not contacted yet the hours are its wait so far, otherwise its response time.
    A missing wait counts as a breached SLA, because no rep has contacted the lead.
    """
    if _is_missing(contacted):
        return None
    sla = _format_number(context.sla_hours)
    waited = None if _is_missing(hours) else float(hours)
    if float(contacted) == 0.0:
        if waited is None or waited >= context.sla_hours:
            return translate("reason.not_contacted_within_sla", locale, sla=sla)
        return translate("reason.not_contacted_yet", locale, hours=_format_number(round(waited, 1)))
    if waited is None:
        return translate("reason.contacted", locale)
    if waited <= context.sla_hours:
        return translate("reason.contacted_within_sla", locale, sla=sla)
    return translate("reason.contacted_after_sla", locale, hours=_format_number(round(waited)))


def _stage(value: Any, locale: Locale, context: ReasonContext) -> str | None:
    stage = _STAGE_NAMES.get(str(value)) if not _is_missing(value) else None
    if stage is None:
        return None
    return translate("reason.stage", locale, stage=stage.code if locale == "en" else stage.name_zh)


def _furthest_stage(value: Any, locale: Locale, context: ReasonContext) -> str | None:
    stage = _STAGE_BY_ORDER.get(int(value)) if not _is_missing(value) else None
    if stage is None:
        return None
    return translate("reason.furthest_stage", locale, stage=stage.code if locale == "en" else stage.name_zh)


def _duration(days: float, locale: Locale) -> str:
    """Render a number of days as "less than a day", "1 day" or "N days" in the locale."""
    whole = round(days)
    if days < 1:
        return translate("duration.under_one_day", locale)
    if whole == 1:
        return translate("duration.one_day", locale)
    return translate("duration.days", locale, days=_format_number(whole))


def _days_in_stage(value: Any, locale: Locale, context: ReasonContext) -> str | None:
    if _is_missing(value):
        return None
    return translate("reason.days_in_stage", locale, duration=_duration(float(value), locale))


def _stage_changes(value: Any, locale: Locale, context: ReasonContext) -> str | None:
    if _is_missing(value):
        return None
    return translate("reason.stage_changes", locale, count=_format_number(float(value)))


def _last_activity(value: Any, locale: Locale, context: ReasonContext) -> str:
    if _is_missing(value):
        return translate("reason.no_activity", locale)
    return translate("reason.last_activity", locale, duration=_duration(float(value), locale))


def _last_inbound(value: Any, locale: Locale, context: ReasonContext) -> str:
    if _is_missing(value):
        return translate("reason.never_inbound", locale)
    return translate("reason.last_inbound", locale, duration=_duration(float(value), locale))


def _existing_customer(value: Any, locale: Locale, context: ReasonContext) -> str | None:
    if _is_missing(value):
        return None
    return translate("reason.existing_customer" if float(value) >= 1 else "reason.new_customer", locale)


def _order_count(value: Any, locale: Locale, context: ReasonContext) -> str | None:
    if _is_missing(value):
        return None
    return translate("reason.order_count", locale, count=_format_number(float(value)))


def _budget(value: Any, locale: Locale, context: ReasonContext) -> str:
    if _is_missing(value):
        return translate("reason.no_budget", locale)
    return translate("reason.budget", locale, amount=_format_amount(float(value)))


def _engagement(value: Any, locale: Locale, context: ReasonContext) -> str | None:
    if _is_missing(value):
        return None
    if float(value) > 0:
        return translate("reason.engagement_rising", locale)
    if float(value) < 0:
        return translate("reason.engagement_falling", locale)
    return translate("reason.engagement_steady", locale)


def _lead_age(value: Any, locale: Locale, context: ReasonContext) -> str | None:
    if _is_missing(value):
        return None
    return translate("reason.lead_age", locale, duration=_duration(float(value), locale))


def _created_hour(value: Any, locale: Locale, context: ReasonContext) -> str | None:
    if _is_missing(value):
        return None
    return translate("reason.created_hour", locale, hour=int(value))


def _created_weekday(value: Any, locale: Locale, context: ReasonContext) -> str | None:
    if _is_missing(value) or not 0 <= int(value) <= 6:
        return None
    names = _WEEKDAYS_EN if locale == "en" else _WEEKDAYS_ZH
    return translate("reason.created_weekday", locale, weekday=names[int(value)])


def _distinct_reps(value: Any, locale: Locale, context: ReasonContext) -> str | None:
    if _is_missing(value):
        return None
    return translate("reason.distinct_reps", locale, count=_format_number(float(value)))


_BUILDERS: dict[str, SentenceBuilder] = {
    "channel": _channel,
    "stage": _stage,
    "furthest_stage_order": _furthest_stage,
    "days_in_stage": _days_in_stage,
    "stage_changes_count": _stage_changes,
    "days_since_last_activity": _last_activity,
    "days_since_last_inbound": _last_inbound,
    "is_existing_customer": _existing_customer,
    "customer_order_count": _order_count,
    "declared_budget": _budget,
    "engagement_trend": _engagement,
    "lead_age_days": _lead_age,
    "created_hour_local": _created_hour,
    "created_weekday_local": _created_weekday,
    "distinct_reps": _distinct_reps,
}
_CONTACT_FEATURES = ("contacted", "hours_to_first_contact", "first_contact_sla_breached")


def _window_sentence(feature: str, value: Any, locale: Locale) -> str | None:
    match = _WINDOW_FEATURE.match(feature)
    if match is None or _is_missing(value):
        return None
    count = float(value)
    days = match["days"]
    group = match["group"]
    shown = _format_number(count)
    if group is None:
        return translate(_plural_key("reason.activity_count", count), locale, count=shown, days=days)
    if group == "inbound":
        return translate(_plural_key("reason.inbound_count", count), locale, count=shown, days=days)
    if group == "outbound":
        return translate(_plural_key("reason.outbound_count", count), locale, count=shown, days=days)
    if group in ACTIVITY_TYPE_LABELS:
        label_en, label_zh = ACTIVITY_TYPE_LABELS[group]
        return translate(
            "reason.activity_type_count",
            locale,
            count=shown,
            days=days,
            kind=label_en if locale == "en" else label_zh,
        )
    return None


def _generic_sentence(feature: str, value: Any, locale: Locale, context: ReasonContext) -> str:
    definition = context.definitions.get(feature)
    label = feature
    if definition is not None:
        label = definition.label_en if locale == "en" else definition.label_zh
    if _is_missing(value):
        return translate("reason.generic_missing", locale, label=label)
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return translate("reason.generic", locale, label=label, value=_format_number(float(value)))
    return translate("reason.generic", locale, label=label, value=value)


def sentence_inputs(feature: str) -> tuple[str, ...]:
    """Return the features whose values ``sentence`` reads to describe ``feature``."""
    if feature in _CONTACT_FEATURES:
        return (feature, "contacted", "hours_to_first_contact")
    return (feature,)


def sentence(feature: str, row: Mapping[str, Any], locale: Locale, context: ReasonContext) -> str:
    """Build the sentence for ``feature`` of one lead, given the lead's feature values in ``row``.

    ``row`` maps feature names to the values before encoding (so an unseen channel still reads
    as its name). Contact features read ``contacted`` and ``hours_to_first_contact`` together.
    """
    register_reason_messages()
    value = row.get(feature)
    text: str | None = None
    if feature in _CONTACT_FEATURES:
        text = _contact_sentence(row.get("contacted"), row.get("hours_to_first_contact"), locale, context)
    elif feature in _BUILDERS:
        text = _BUILDERS[feature](value, locale, context)
    else:
        text = _window_sentence(feature, value, locale)
    if text is None:
        text = _generic_sentence(feature, value, locale, context)
    return text


# --- contributions -> reasons -------------------------------------------------------------------


def shap_contributions(booster: lgb.Booster, matrix: pd.DataFrame) -> FloatArray:
    """Return LightGBM SHAP values: one column per feature in ``matrix`` order, then the bias column.

    Uses the booster's best iteration, as ``training.boosting.predict_booster`` does, so the
    contributions of a row add up to its raw score (log-odds).
    """
    iteration = booster.best_iteration if booster.best_iteration > 0 else None
    contributions = np.asarray(
        booster.predict(as_lightgbm_input(matrix), pred_contrib=True, num_iteration=iteration),
        dtype=np.float64,
    )
    expected = (len(matrix), matrix.shape[1] + 1)
    if contributions.shape != expected:
        raise ValueError(
            f"pred_contrib returned shape {contributions.shape}, expected {expected}; "
            "the matrix columns do not match the booster's features"
        )
    return contributions


def contribution_order(contributions: FloatArray) -> npt.NDArray[np.intp]:
    """Return, per row, the feature positions from the largest absolute contribution to the smallest.

    ``contributions`` contains feature columns only (no bias column), one row per lead or a
    single row. The sort is stable, so features with equal absolute contributions keep their matrix
    order. A 2-D input is sorted row by row in one call, with the same result per row as
    sorting each row alone.
    """
    return np.argsort(-np.abs(contributions), axis=-1, kind="stable")


def reasons_for_row(
    contributions: FloatArray,
    feature_names: Sequence[str],
    row: Mapping[str, Any],
    *,
    locale: Locale,
    context: ReasonContext,
    top: int,
    order: npt.NDArray[np.intp] | None = None,
    describe: Callable[[int], str] | None = None,
) -> tuple[list[Reason], list[Reason]]:
    """Return the ``top`` positive and ``top`` negative reasons of one lead, strongest first.

    ``contributions`` is one row of ``shap_contributions`` (the bias column is ignored). Two
    features that produce the same sentence (``contacted`` and ``hours_to_first_contact``)
    appear once, under the stronger contribution. ``order`` is the row's
    ``contribution_order`` and ``describe(index)`` the sentence of ``feature_names[index]``
    for ``row``; ``reasons_for_rows`` passes both, computed for many rows at once.
    """
    values = contributions[: len(feature_names)]
    if order is None:
        order = contribution_order(values)
    # Python floats and ints make the loop faster than NumPy scalars and hold the same values.
    floats: list[float] = values.tolist()
    positives: list[Reason] = []
    negatives: list[Reason] = []
    seen: set[str] = set()
    for index in order.tolist():
        contribution = floats[index]
        if abs(contribution) < MIN_CONTRIBUTION:
            break
        bucket = positives if contribution > 0 else negatives
        if len(bucket) >= top:
            if len(positives) >= top and len(negatives) >= top:
                break
            continue
        feature = feature_names[index]
        text = describe(index) if describe is not None else sentence(feature, row, locale, context)
        if text in seen:
            continue
        seen.add(text)
        direction: Direction = "positive" if contribution > 0 else "negative"
        bucket.append(Reason(feature, direction, round(contribution, 6), text))
    return positives, negatives


def reasons_for_rows(
    contributions: FloatArray,
    frame: pd.DataFrame,
    feature_names: Sequence[str],
    *,
    locale: Locale,
    context: ReasonContext,
    top: int,
) -> list[tuple[list[Reason], list[Reason]]]:
    """Return the reasons of every row of ``frame``, the same as ``reasons_for_row`` row by row.

    ``contributions`` is ``shap_contributions`` of the rows of ``frame``, in the same order.
    ``frame`` contains the feature values before encoding (``features.pipeline.build_features``),
    with a column per name of ``feature_names``.

    The candidates of all rows are picked with NumPy: per row, the first ``top`` positive and
    the first ``top`` negative contributions in ``contribution_order``, up to the first one
    below ``MIN_CONTRIBUTION``. Sentences are written only for them. When two candidates of a
    row share a sentence, ``reasons_for_row`` would skip the weaker one and take the next
    feature, so such a row goes through ``reasons_for_row`` itself.
    """
    if contributions.ndim != 2 or len(contributions) != len(frame):
        raise ValueError(
            f"contributions of shape {contributions.shape} for {len(frame)} feature rows; "
            "pass shap_contributions of the same rows"
        )
    values = contributions[:, : len(feature_names)]
    orders = contribution_order(values)
    ranked = np.take_along_axis(values, orders, axis=1)
    rows, ranks = np.nonzero(_candidates(ranked, top))
    indices = orders[rows, ranks].tolist()
    amounts = ranked[rows, ranks].tolist()
    starts = np.searchsorted(rows, np.arange(len(frame) + 1)).tolist()
    sentences = SentenceCache(frame, feature_names, locale, context)

    results: list[tuple[list[Reason], list[Reason]]] = []
    for position in range(len(frame)):
        items = range(starts[position], starts[position + 1])
        texts = [sentences.text(position, indices[item]) for item in items]
        if len(set(texts)) < len(texts):
            results.append(
                reasons_for_row(
                    contributions[position],
                    feature_names,
                    {},
                    locale=locale,
                    context=context,
                    top=top,
                    order=orders[position],
                    describe=functools.partial(sentences.text, position),
                )
            )
            continue
        positives: list[Reason] = []
        negatives: list[Reason] = []
        for item, text in zip(items, texts, strict=True):
            amount = amounts[item]
            direction: Direction = "positive" if amount > 0 else "negative"
            reason = Reason(feature_names[indices[item]], direction, round(amount, 6), text)
            (positives if amount > 0 else negatives).append(reason)
        results.append((positives, negatives))
    return results


def _candidates(ranked: FloatArray, top: int) -> npt.NDArray[np.bool_]:
    """Mark, per row of contributions in ranked order, the ones ``reasons_for_row`` would consider.

    Those are the first ``top`` positive and first ``top`` other values before the first
    value whose magnitude is below ``MIN_CONTRIBUTION``. A NaN counts as negative, as it does
    in ``reasons_for_row``.
    """
    strong = np.logical_and.accumulate(~(np.abs(ranked) < MIN_CONTRIBUTION), axis=1)
    positive = strong & (ranked > 0)
    negative = strong & ~(ranked > 0)
    first_positives = positive & (np.cumsum(positive, axis=1) <= top)
    first_negatives = negative & (np.cumsum(negative, axis=1) <= top)
    return np.asarray(first_positives | first_negatives, dtype=bool)


class SentenceCache:
    """Reason sentences for the rows of one feature frame, each built once per distinct input.

    A sentence depends only on the locale, the context and the values ``sentence_inputs``
    names, so rows with the same values share it. A row reads the frame's value of each name
    in ``feature_names`` as ``DataFrame.to_dict(orient="records")`` would give it, and any
    other name as missing, like the row mapping ``sentence`` takes.
    """

    def __init__(
        self, frame: pd.DataFrame, feature_names: Sequence[str], locale: Locale, context: ReasonContext
    ) -> None:
        absent = [name for name in feature_names if name not in frame.columns]
        if absent:
            raise ValueError(
                f"the feature frame has no column(s) {absent[:10]}; build it with build_features"
            )
        known = frozenset(feature_names)
        self._frame = frame
        self._names = tuple(feature_names)
        self._inputs = tuple(
            tuple(name for name in sentence_inputs(feature) if name in known) for feature in feature_names
        )
        self._locale = locale
        self._context = context
        self._columns: dict[str, list[Any]] = {}
        self._texts: dict[tuple[Any, ...], str] = {}

    def text(self, position: int, index: int) -> str:
        """Return the sentence of feature ``feature_names[index]`` for row ``position`` (both 0-based)."""
        names = self._inputs[index]
        values = [self._column(name)[position] for name in names]
        key = (index, *[_value_key(value) for value in values])
        try:
            cached = self._texts.get(key)
        except TypeError:  # an unhashable value: write the sentence without caching it
            return self._write(index, names, values)
        if cached is None:
            cached = self._write(index, names, values)
            self._texts[key] = cached
        return cached

    def _write(self, index: int, names: tuple[str, ...], values: list[Any]) -> str:
        row = dict(zip(names, values, strict=True))
        return sentence(self._names[index], row, self._locale, self._context)

    def _column(self, name: str) -> list[Any]:
        values = self._columns.get(name)
        if values is None:
            values = _python_values(self._frame[name])
            self._columns[name] = values
        return values


_MISSING_NUMBER = ("missing number",)


def _value_key(value: Any) -> tuple[Any, ...]:
    """Return a cache key that is equal only for values that ``sentence`` treats the same.

    The type is part of the key because 1, 1.0 and True are equal in Python but are written
    differently. Every float NaN reads as missing, and the sign of zero is kept because a
    budget of -0.0 is formatted as "-0".
    """
    if isinstance(value, float):
        if math.isnan(value):
            return _MISSING_NUMBER
        return (type(value), value, math.copysign(1.0, value))
    return (type(value), value)


def _python_values(column: pd.Series) -> list[Any]:
    """Return a column's values as Python objects, the way ``DataFrame.to_dict`` returns them.

    NumPy numbers and booleans become Python ones, and pandas' NA becomes None in masked
    columns. pandas 3.1 boxes values the same way in the list and the records form of
    ``to_dict``, and the list form is several times faster.
    """
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":
        values: list[Any] = column.to_numpy().tolist()
        return values
    name = column.name
    return column.to_frame().to_dict(orient="list")[name]
