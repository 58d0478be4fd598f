"""The model card of a trained scorer: what it was trained on, how good it is, where it is weak.

The card is JSON-ready data (stored in the scorer bundle and logged to MLflow) and renders to
Markdown or HTML in ``en`` or ``zh-CN``. Known limits are stored as message keys with
parameters, so each rendering states them in its own language.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from leadscore.i18n import Locale, register_messages, translate

CARD_FORMAT_VERSION = 1

_MESSAGES: dict[str, dict[str, str]] = {
    "card.title": {"en": "Model card: {name} {version}", "zh-CN": "模型卡片：{name} {version}"},
    "card.created": {"en": "Trained at {created_at}.", "zh-CN": "训练时间：{created_at}。"},
    "card.insufficient_banner": {
        "en": "**Insufficient data:** this model was trained on little history. Every score carries the "
        "insufficient_data flag, and conversion probabilities are blended with the rule score.",
        "zh-CN": "**数据不足：** 本模型的训练历史较少。每条评分都带有 insufficient_data 标记，"
        "成交概率已与规则评分加权融合。",
    },
    "card.section.data": {"en": "Training data", "zh-CN": "训练数据"},
    "card.section.metrics": {"en": "Test metrics against baselines", "zh-CN": "测试集指标与基线对比"},
    "card.section.calibration": {"en": "Calibration", "zh-CN": "概率校准"},
    "card.section.leakage": {"en": "Leakage probe", "zh-CN": "数据泄漏检测"},
    "card.section.ltv": {"en": "Lifetime value model", "zh-CN": "客户终身价值模型"},
    "card.section.limits": {"en": "Known limits", "zh-CN": "已知局限"},
    "card.section.features": {"en": "Features", "zh-CN": "特征"},
    "card.data.window": {
        "en": "Leads created from {start} to {end}; snapshot cutoffs from {cutoff_start} to {cutoff_end}.",
        "zh-CN": "线索创建时间 {start} 至 {end}；快照截止时间 {cutoff_start} 至 {cutoff_end}。",
    },
    "card.data.horizons": {
        "en": "Conversion label window: {horizon} days after the cutoff. LTV window: {ltv_horizon} days.",
        "zh-CN": "成交标签窗口：截止时间后 {horizon} 天。终身价值窗口：{ltv_horizon} 天。",
    },
    "card.data.table_rows": {"en": "Rows per table", "zh-CN": "各表行数"},
    "card.data.fold_rows": {"en": "Snapshots per fold", "zh-CN": "各数据折的快照数"},
    "card.data.boundaries": {
        "en": "Fold start times: {boundaries}.",
        "zh-CN": "各数据折起始时间：{boundaries}。",
    },
    "card.data.positive_rate": {
        "en": "Conversion rate in the test fold: {rate}.",
        "zh-CN": "测试折中的成交率：{rate}。",
    },
    "card.column.name": {"en": "Name", "zh-CN": "名称"},
    "card.column.rows": {"en": "Rows", "zh-CN": "行数"},
    "card.column.model": {"en": "Model", "zh-CN": "模型"},
    "card.column.metric": {"en": "Metric", "zh-CN": "指标"},
    "card.column.value": {"en": "Value", "zh-CN": "数值"},
    "card.column.feature": {"en": "Feature", "zh-CN": "特征"},
    "card.column.reason": {"en": "Reason", "zh-CN": "原因"},
    "card.calibration.summary": {
        "en": "Method: {method}. ECE on the test fold: {ece_before} before calibration, {ece_after} after.",
        "zh-CN": "方法：{method}。测试折上的 ECE：校准前 {ece_before}，校准后 {ece_after}。",
    },
    "card.calibration.prior": {
        "en": "Rule-score prior weight in the final probability: {weight}.",
        "zh-CN": "最终概率中规则评分先验的权重：{weight}。",
    },
    "card.leakage.none": {
        "en": "{checked} features checked; none was excluded.",
        "zh-CN": "共检查 {checked} 个特征，没有特征被剔除。",
    },
    "card.leakage.excluded": {
        "en": "{checked} features checked; {count} excluded before training:",
        "zh-CN": "共检查 {checked} 个特征，训练前剔除 {count} 个：",
    },
    "card.ltv.summary": {
        "en": "Chosen model: {kind}, by validation score {selection}.",
        "zh-CN": "选用模型：{kind}，依据验证集得分 {selection}。",
    },
    "card.ltv.absent": {
        "en": "No LTV model ({note}). Every lead gets ltv {fallback}: the {basis}.",
        "zh-CN": "无终身价值模型（{note}）。所有线索的 ltv 取常数 {fallback}，依据：{basis}。",
    },
    "card.features.summary": {"en": "{count} features in the model.", "zh-CN": "模型使用 {count} 个特征。"},
    "card.limit.time_window": {
        "en": "Trained on leads created from {start} to {end}. Channels, campaigns or regions that appear "
        "later are flagged as unseen categories and scored as missing values.",
        "zh-CN": "训练数据为 {start} 至 {end} 创建的线索。之后出现的新渠道、活动或区域会被标记为未见类别，"
        "并按缺失值评分。",
    },
    "card.limit.insufficient_data": {
        "en": "Too little history ({reason}); treat scores as a rough ranking and retrain when more "
        "conversions are recorded.",
        "zh-CN": "历史数据不足（{reason}）；请把评分当作粗略排序，积累更多成交后重新训练。",
    },
    "card.limit.ltv_horizon": {
        "en": "LTV is the revenue expected within {days} days after conversion, not a lifetime total.",
        "zh-CN": "终身价值为成交后 {days} 天内的预期收入，并非全生命周期总额。",
    },
    "card.limit.no_ltv_model": {
        "en": "No LTV model was trained, so expected value ranks leads by conversion probability only.",
        "zh-CN": "未训练终身价值模型，因此预期价值仅按成交概率排序。",
    },
    "card.limit.below_baseline": {
        "en": "On the test fold the model is not better than the {baseline} baseline on {metric} "
        "({model_value} vs {baseline_value}).",
        "zh-CN": "在测试折上，模型的 {metric} 未优于基线 {baseline}（{model_value} 对 {baseline_value}）。",
    },
    "card.limit.calibration": {
        "en": "Calibration error on the test fold is {ece}, above the 0.02 target; read p_convert as a "
        "ranking more than as an exact probability.",
        "zh-CN": "测试折上的校准误差为 {ece}，高于 0.02 的目标；p_convert 更适合作为排序依据而非精确概率。",
    },
    "card.limit.leakage": {
        "en": "{count} features were excluded as leaking the outcome; if they matter in your CRM, record "
        "them before the first contact.",
        "zh-CN": "{count} 个特征因泄漏结果而被剔除；如这些信息重要，请在首次联系前记录。",
    },
    "card.limit.label_window": {
        "en": "Leads whose {horizon}-day label window had not ended by the data end were not used for "
        "training or testing.",
        "zh-CN": "截至数据末尾 {horizon} 天标签窗口尚未结束的线索，未用于训练或测试。",
    },
    "card.undefined": {"en": "n/a", "zh-CN": "无"},
}


def _register() -> None:
    register_messages(_MESSAGES)


@dataclass(frozen=True)
class KnownLimit:
    """A limit of the model as a message key and its parameters, rendered in the reader's locale."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self, locale: Locale) -> str:
        _register()
        return translate(self.key, locale, **self.params)


@dataclass(frozen=True)
class ModelCard:
    """Facts about one trained scorer, from data window to known limits.

    ``metrics`` maps a model label (``model`` first, then each baseline) to test-fold metrics.
    ``leakage`` contains ``checked`` (feature count) and ``excluded`` (list of feature and
    reason). ``calibration`` contains method, ece_before, ece_after and prior_weight.
    """

    name: str
    bundle_version: str
    created_at: str
    data_window: dict[str, str]
    horizons: dict[str, int]
    table_rows: dict[str, int]
    fold_rows: dict[str, int]
    fold_boundaries: dict[str, str]
    test_positive_rate: float | None
    metrics: dict[str, dict[str, float]]
    calibration: dict[str, Any]
    leakage: dict[str, Any]
    ltv: dict[str, Any]
    features: list[str]
    insufficient_data: bool
    data_sufficiency: dict[str, Any]
    known_limits: list[KnownLimit]
    tuning: dict[str, Any] = field(default_factory=dict)
    format_version: int = CARD_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> ModelCard:
        """Rebuild a card from ``to_dict`` output."""
        values = dict(payload)
        values["known_limits"] = [KnownLimit(**limit) for limit in values.get("known_limits", [])]
        return cls(**values)


def known_limits_for(
    *,
    data_window: Mapping[str, str],
    horizons: Mapping[str, int],
    metrics: Mapping[str, Mapping[str, float]],
    calibration: Mapping[str, Any],
    leakage: Mapping[str, Any],
    ltv: Mapping[str, Any],
    insufficient_reasons: Sequence[str],
    ece_target: float = 0.02,
) -> list[KnownLimit]:
    """Derive the known limits of a model from its training facts and test metrics."""
    limits = [
        KnownLimit("card.limit.time_window", {"start": data_window["start"], "end": data_window["end"]})
    ]
    limits.append(KnownLimit("card.limit.label_window", {"horizon": horizons["horizon_days"]}))
    if insufficient_reasons:
        limits.append(KnownLimit("card.limit.insufficient_data", {"reason": "; ".join(insufficient_reasons)}))
    if ltv.get("kind"):
        limits.append(KnownLimit("card.limit.ltv_horizon", {"days": horizons["ltv_horizon_days"]}))
    else:
        limits.append(KnownLimit("card.limit.no_ltv_model"))

    model_metrics = metrics.get("model", {})
    for baseline, baseline_metrics in metrics.items():
        if baseline == "model":
            continue
        for metric in ("conversion_auc", "ltv_gini"):
            if metric not in model_metrics or metric not in baseline_metrics:
                continue
            if model_metrics[metric] <= baseline_metrics[metric]:
                params = {
                    "baseline": baseline,
                    "metric": metric,
                    "model_value": f"{model_metrics[metric]:.4f}",
                    "baseline_value": f"{baseline_metrics[metric]:.4f}",
                }
                limits.append(KnownLimit("card.limit.below_baseline", params))

    ece_after = calibration.get("ece_after")
    if isinstance(ece_after, int | float) and math.isfinite(ece_after) and ece_after > ece_target:
        limits.append(KnownLimit("card.limit.calibration", {"ece": f"{ece_after:.4f}"}))
    excluded = leakage.get("excluded", [])
    if excluded:
        limits.append(KnownLimit("card.limit.leakage", {"count": len(excluded)}))
    return limits


# --- rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)


def _number(value: Any, locale: Locale, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return translate("card.undefined", locale)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _metric_table(card: ModelCard, locale: Locale) -> tuple[list[str], list[list[str]]]:
    names = sorted({name for values in card.metrics.values() for name in values})
    header = [translate("card.column.metric", locale), *card.metrics.keys()]
    rows = [
        [name, *(_number(values.get(name), locale) for values in card.metrics.values())] for name in names
    ]
    return header, rows


def _sections(card: ModelCard, locale: Locale) -> list[_Section]:
    _register()
    window = card.data_window
    data = _Section(
        translate("card.section.data", locale),
        paragraphs=[
            translate(
                "card.data.window",
                locale,
                start=window["start"],
                end=window["end"],
                cutoff_start=window.get("cutoff_start", "?"),
                cutoff_end=window.get("cutoff_end", "?"),
            ),
            translate(
                "card.data.horizons",
                locale,
                horizon=card.horizons["horizon_days"],
                ltv_horizon=card.horizons["ltv_horizon_days"],
            ),
            translate(
                "card.data.boundaries",
                locale,
                boundaries=", ".join(f"{name} {start}" for name, start in card.fold_boundaries.items()),
            ),
            translate("card.data.positive_rate", locale, rate=_number(card.test_positive_rate, locale)),
        ],
        tables=[
            (
                [translate("card.data.table_rows", locale), translate("card.column.rows", locale)],
                [[name, str(count)] for name, count in card.table_rows.items()],
            ),
            (
                [translate("card.data.fold_rows", locale), translate("card.column.rows", locale)],
                [[name, str(count)] for name, count in card.fold_rows.items()],
            ),
        ],
    )
    metrics_section = _Section(
        translate("card.section.metrics", locale), tables=[_metric_table(card, locale)]
    )

    calibration_paragraphs = [
        translate(
            "card.calibration.summary",
            locale,
            method=card.calibration.get("method", "?"),
            ece_before=_number(card.calibration.get("ece_before"), locale),
            ece_after=_number(card.calibration.get("ece_after"), locale),
        )
    ]
    if card.calibration.get("prior_weight"):
        calibration_paragraphs.append(
            translate(
                "card.calibration.prior", locale, weight=_number(card.calibration["prior_weight"], locale, 3)
            )
        )
    calibration = _Section(translate("card.section.calibration", locale), paragraphs=calibration_paragraphs)

    excluded = card.leakage.get("excluded", [])
    checked = card.leakage.get("checked", 0)
    if excluded:
        leakage = _Section(
            translate("card.section.leakage", locale),
            paragraphs=[translate("card.leakage.excluded", locale, checked=checked, count=len(excluded))],
            tables=[
                (
                    [translate("card.column.feature", locale), translate("card.column.reason", locale)],
                    [[str(item.get("feature")), str(item.get("reason"))] for item in excluded],
                )
            ],
        )
    else:
        leakage = _Section(
            translate("card.section.leakage", locale),
            paragraphs=[translate("card.leakage.none", locale, checked=checked)],
        )

    if card.ltv.get("kind"):
        selection = ", ".join(
            f"{name} {_number(score, locale)}" for name, score in card.ltv.get("selection", {}).items()
        )
        ltv_text = translate("card.ltv.summary", locale, kind=card.ltv["kind"], selection=selection or "-")
    else:
        ltv_text = translate(
            "card.ltv.absent",
            locale,
            note=card.ltv.get("note", "-"),
            fallback=_number(card.ltv.get("fallback"), locale, 2),
            basis=card.ltv.get("fallback_basis", "-"),
        )
    ltv = _Section(translate("card.section.ltv", locale), paragraphs=[ltv_text])

    features = _Section(
        translate("card.section.features", locale),
        paragraphs=[translate("card.features.summary", locale, count=len(card.features))],
        items=[f"`{name}`" for name in card.features],
    )
    limits = _Section(
        translate("card.section.limits", locale), items=[limit.text(locale) for limit in card.known_limits]
    )
    return [data, metrics_section, calibration, leakage, ltv, features, limits]


def render_markdown(card: ModelCard, locale: Locale = "en") -> str:
    """Render the card as Markdown in ``locale``."""
    _register()
    lines = [f"# {translate('card.title', locale, name=card.name, version=card.bundle_version)}", ""]
    lines.append(translate("card.created", locale, created_at=card.created_at))
    lines.append("")
    if card.insufficient_data:
        lines += [translate("card.insufficient_banner", locale), ""]
    for section in _sections(card, locale):
        lines += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        for header, rows in section.tables:
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
        if section.items:
            lines += [f"- {item}" for item in section.items]
            lines.append("")
    return "\n".join(lines)


def render_html(card: ModelCard, locale: Locale = "en") -> str:
    """Render the card as a standalone HTML page in ``locale``; every value is HTML-escaped."""
    _register()
    escape = html.escape
    title = translate("card.title", locale, name=card.name, version=card.bundle_version)
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{escape(locale)}"><head><meta charset="utf-8"><title>{escape(title)}</title>',
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}"
        "table{border-collapse:collapse;margin:0.5rem 0}td,th{border:1px solid #ccc;padding:0.2rem 0.5rem}"
        ".warning{background:#fff3cd;padding:0.5rem}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{escape(translate('card.created', locale, created_at=card.created_at))}</p>",
    ]
    if card.insufficient_data:
        banner = translate("card.insufficient_banner", locale).replace("**", "")
        parts.append(f'<p class="warning">{escape(banner)}</p>')
    for section in _sections(card, locale):
        parts.append(f"<h2>{escape(section.title)}</h2>")
        parts += [f"<p>{escape(paragraph)}</p>" for paragraph in section.paragraphs]
        for header, rows in section.tables:
            parts.append("<table><tr>" + "".join(f"<th>{escape(cell)}</th>" for cell in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows]
            parts.append("</table>")
        if section.items:
            parts.append(
                "<ul>" + "".join(f"<li>{escape(item.strip('`'))}</li>" for item in section.items) + "</ul>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
