"""The routing backtest report: Markdown in en or zh-CN, and a JSON form of the same numbers."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import pandas as pd

from data.schema import TIERS
from leadscore.i18n import Locale, register_messages, translate
from serving.backtest import (
    BASELINE_STRATEGY,
    HIGH_VALUE_SHARE,
    LOW_VALUE_SHARE,
    MIN_FAIRNESS_DAYS,
    BacktestResult,
    ReportNote,
    StrategyResult,
    table_records,
)
from serving.backtest_policies import RULES_HIGH_VALUE_POINTS, RULES_STANDARD_POINTS

_PREFIX = "backtest_report."
_TEXTS: dict[str, dict[str, str]] = {
    "title": {"en": "Routing backtest", "zh-CN": "路由回测"},
    "command": {"en": "Command:", "zh-CN": "命令："},
    "history_command": {
        "en": "History: `{command}` (DIR is the data folder above).",
        "zh-CN": "历史数据生成命令：`{command}`（DIR 即上文的数据目录）。",
    },
    "setup": {"en": "Setup", "zh-CN": "设置"},
    "data": {
        "en": "Data: `{data_dir}`; {replayed:,} leads replayed, {evaluated:,} of them evaluated; "
        "{reps} reps.",
        "zh-CN": "数据：`{data_dir}`；回放 {replayed:,} 条线索，"
        "其中 {evaluated:,} 条计入评估；销售 {reps} 名。",
    },
    "window": {
        "en": "Replay from {replay_start} ({warmup} days of warm-up, not evaluated); evaluation from "
        "{evaluation_start} to {evaluation_end} (UTC). Seed {seed}.",
        "zh-CN": "自 {replay_start} 开始回放（前 {warmup} 天为预热期，不计入评估）；"
        "评估区间 {evaluation_start} 至 {evaluation_end}（UTC）。随机种子 {seed}。",
    },
    "policy": {
        "en": "Policy: {name} (version {version}).",
        "zh-CN": "路由策略：{name}（版本 {version}）。",
    },
    "scorer": {
        "en": "Scores for the leadscore policy: {scorer}.",
        "zh-CN": "leadscore 策略所用评分：{scorer}。",
    },
    "scorer_fallback": {
        "en": "the rule-score fallback (no trained model given)",
        "zh-CN": "规则评分后备模型（未提供训练好的模型）",
    },
    "scorer_model": {"en": "model {model} (bundle {bundle})", "zh-CN": "模型 {model}（模型包 {bundle}）"},
    "fallback_fit": {
        "en": "The rule-score fallback maps the points table to p_convert with a sigmoid fitted on {leads:,} "
        "leads ({converted:,} converted within {horizon_days} days) that arrived before {before} UTC. Its "
        "ltv is the mean net revenue per company size band of {ltv_leads:,} won leads over {ltv_days} days "
        "after the win.",
        "zh-CN": "规则评分后备模型用 sigmoid 把打分表映射为转化概率，拟合数据为 {before}（UTC）之前进线的 "
        "{leads:,} 条线索（其中 {converted:,} 条在 {horizon_days} 天内成交）；其 LTV 为 {ltv_leads:,} "
        "条赢单线索按公司规模分组、赢单后 {ltv_days} 天内的平均净收入。",
    },
    "model_window_unknown": {
        "en": "The model card does not state until when the model saw history; check that it predates the "
        "replay.",
        "zh-CN": "模型卡未注明模型训练数据的截止时间；请确认其早于回放开始时间。",
    },
    "model_window_after": {
        "en": "The model saw history until {until} UTC, after the replay start, so its results are "
        "optimistic. Train on history before the replay for a fair test.",
        "zh-CN": "模型训练数据截至 {until}（UTC），晚于回放开始时间，因此结果偏乐观。"
        "公平比较需用回放开始前的历史训练模型。",
    },
    "model_window_before": {
        "en": "The model saw history until {until} UTC, before the replay start.",
        "zh-CN": "模型训练数据截至 {until}（UTC），早于回放开始时间。",
    },
    "model_without_ltv": {
        "en": "The model has no LTV model, so every lead gets ltv {ltv:,.0f} and expected value ranks leads "
        "by p_convert alone (every expected value is 0 when that ltv is 0).",
        "zh-CN": "该模型没有 LTV 子模型，所有线索的 LTV 均为 {ltv:,.0f}，期望价值只按转化概率排序"
        "（LTV 为 0 时所有期望价值都为 0）。",
    },
    "shadow_replayed": {
        "en": "{strategy}: {count:,} decisions of shadow teams were replayed as live.",
        "zh-CN": "{strategy}：影子模式团队的 {count:,} 条决策在回测中按正式分配处理。",
    },
    "value_poisson_regression": {
        "en": "Poisson regression of the 24-month order value of converted leads on declared budget, "
        "company size, industry and latent quality, applied to every lead",
        "zh-CN": "以已成交线索 24 个月内的订单金额为目标，对声明预算、公司规模、行业和潜在质量做泊松回归，"
        "再用于估计每条线索",
    },
    "revenue": {"en": "Expected won revenue", "zh-CN": "预期赢单收入"},
    "load": {"en": "Load per tier", "zh-CN": "各层级负载"},
    "fairness": {"en": "Fairness", "zh-CN": "公平性"},
    "segments": {"en": "Segments and tiers", "zh-CN": "线索分层与销售层级"},
    "per_rep": {"en": "Per rep", "zh-CN": "每位销售"},
    "method": {"en": "Method", "zh-CN": "方法说明"},
    "col_strategy": {"en": "Strategy", "zh-CN": "分配方式"},
    "col_revenue": {"en": "Expected won revenue (CNY)", "zh-CN": "预期赢单收入（元）"},
    "col_ratio": {"en": "vs round-robin", "zh-CN": "相对轮询"},
    "col_conversions": {"en": "Expected conversions", "zh-CN": "预期成交数"},
    "col_queued": {"en": "Queued on arrival", "zh-CN": "到达时排队"},
    "col_still_queued": {"en": "Still queued at end", "zh-CN": "结束时仍在排队"},
    "col_wait": {"en": "Mean / max queue wait (h)", "zh-CN": "平均 / 最长排队时长（小时）"},
    "col_tier": {"en": "Tier", "zh-CN": "层级"},
    "col_reps": {"en": "Reps", "zh-CN": "人数"},
    "col_capacity": {"en": "Capacity (mean)", "zh-CN": "容量（均值）"},
    "col_leads": {"en": "Leads per rep (mean)", "zh-CN": "人均线索数"},
    "col_mean_open": {"en": "Open leads (time-weighted mean)", "zh-CN": "在跟线索（时间加权均值）"},
    "col_max_open": {"en": "Max open leads", "zh-CN": "最多在跟线索"},
    "col_max_util": {"en": "Max utilization", "zh-CN": "最高占用率"},
    "col_gini_leads": {"en": "Gini of leads per day", "zh-CN": "日均线索基尼系数"},
    "col_gini_revenue": {"en": "Gini of expected revenue per day", "zh-CN": "日均预期收入基尼系数"},
    "col_high_to_senior": {"en": "High-value leads to seniors", "zh-CN": "高价值线索分给资深销售"},
    "col_low_to_newcomer": {"en": "Low-value leads to newcomers", "zh-CN": "低价值线索分给新人"},
    "col_newcomer_low": {"en": "Low-value share of newcomers' leads", "zh-CN": "新人线索中低价值占比"},
    "col_region": {"en": "Rep serves region", "zh-CN": "销售负责该区域"},
    "col_skill": {"en": "Rep knows industry", "zh-CN": "销售擅长该行业"},
    "col_segment_shares": {
        "en": "Segments (high value / standard / nurture)",
        "zh-CN": "分层（高价值 / 标准 / 培育）",
    },
    "col_tier_shares": {
        "en": "Leads by tier (senior / regular / newcomer)",
        "zh-CN": "按层级分配（资深 / 普通 / 新人）",
    },
    "col_rep": {"en": "Rep", "zh-CN": "销售"},
    "col_rep_capacity": {"en": "Capacity", "zh-CN": "容量"},
    "per_rep_intro": {
        "en": "Leads received in the evaluation window / max open leads, per strategy.",
        "zh-CN": "评估区间内收到的线索数 / 最多在跟线索数，按分配方式列出。",
    },
    "fairness_intro": {
        "en": "Gini coefficients (0 = even) compare reps of one tier employed for at least {days:g} days of "
        "the window, per day employed. High-value leads are the top {high:.0%} and low-value leads the "
        "bottom {low:.0%} of true expected value (ground-truth conversion probability with an average "
        "regular rep x won value).",
        "zh-CN": "基尼系数（0 表示完全均衡）只比较同一层级、在评估区间内在职至少 {days:g} 天的销售，"
        "按在职天数折算。高价值线索指真实期望价值（普通销售的真实转化概率 × 赢单价值）"
        "最高的 {high:.0%}，低价值线索指最低的 {low:.0%}。",
    },
    "note_duration": {
        "en": "A lead occupies its rep from assignment for the time from its arrival to its first won "
        "or lost stage change in the tables, at most {days} days; leads that never close in the export "
        "are held {days} days. The close time is the one observed with the historical owner.",
        "zh-CN": "线索从分配起占用销售容量，时长为表中从创建到首次赢单或输单的时间，最长 {days} 天；"
        "导出时仍未关闭的线索按 {days} 天计。关闭时间取自历史上实际负责人的记录。",
    },
    "note_queue": {
        "en": "A lead no eligible rep has room for waits in the queue; the queue is worked oldest first "
        "({attempts} leads per pass) whenever a rep frees capacity or starts. The wait lowers its conversion "
        "through the generator's first-contact speed penalty. A lead still queued at the end earns nothing.",
        "zh-CN": "没有可接单的合格销售时，线索进入队列；每当有销售释放容量或入职，"
        "按先到先分的顺序处理队列（每次最多 {attempts} 条）。排队时间按生成器的首次联系速度惩罚"
        "降低转化率。评估结束时仍在排队的线索收入计为 0。",
    },
    "note_outcome": {
        "en": "Expected won revenue = P(convert | lead, assigned rep) x won value. P comes from the ground "
        "truth: the lead's true conversion probability with an average rep of the assigned tier, shifted by "
        "the rep's own effect and the skill-match effect. Strategies never see the ground truth.",
        "zh-CN": "预期赢单收入 = P(转化 | 线索, 所分配销售) × 赢单价值。P 取自真实值："
        "线索在所分配层级平均销售下的真实转化概率，再叠加该销售自身效应和行业匹配效应。"
        "各分配方式在决策时都看不到真实值。",
    },
    "note_value": {"en": "Won value: {source}.", "zh-CN": "赢单价值：{source}。"},
    "note_strategies": {
        "en": "Round-robin: the next rep with room in a fixed, seeded rotation. Rules only: the policy's "
        "tiers, matching and balancing with the segment from the hand-made points table at intake "
        "(>= {high:g} points high value, >= {standard:g} standard). leadscore: the policy on score "
        "records at arrival.",
        "zh-CN": "轮询：按固定（由随机种子决定）的顺序分给下一位有空余容量的销售。"
        "仅规则：沿用策略的层级、匹配和均衡规则，分层由进线时的人工打分表决定"
        "（≥ {high:g} 分为高价值，≥ {standard:g} 分为标准）。leadscore：按进线时的评分执行路由策略。",
    },
    "note_capacity": {
        "en": "Every strategy assigns only to reps below capacity, so max utilization never exceeds 1.",
        "zh-CN": "所有分配方式都只把线索分给未满额的销售，因此最高占用率不会超过 1。",
    },
    "strategy_round_robin": {"en": "Round-robin", "zh-CN": "轮询"},
    "strategy_rules_only": {"en": "Rules only", "zh-CN": "仅规则"},
    "strategy_leadscore": {"en": "leadscore policy", "zh-CN": "leadscore 策略"},
    "strategy_leadscore_rule_score": {
        "en": "leadscore policy on rule scores",
        "zh-CN": "基于规则评分的 leadscore 策略",
    },
    "tier_senior": {"en": "senior", "zh-CN": "资深"},
    "tier_regular": {"en": "regular", "zh-CN": "普通"},
    "tier_newcomer": {"en": "newcomer", "zh-CN": "新人"},
}


@cache
def _register_texts() -> None:
    register_messages({_PREFIX + key: texts for key, texts in _TEXTS.items()})


def _t(key: str, locale: Locale, **params: object) -> str:
    _register_texts()
    return translate(_PREFIX + key, locale, **params)


def render_report(result: BacktestResult, *, locale: Locale, command: str) -> str:
    """Return the backtest report as Markdown in ``locale``; ``command`` is shown as run."""
    lines = [f"# {_t('title', locale)}", "", _t("command", locale), "", "```bash", command, "```", ""]
    lines += _setup_section(result, locale)
    lines += _revenue_section(result, locale)
    lines += _load_section(result, locale)
    lines += _fairness_section(result, locale)
    lines += _segment_section(result, locale)
    lines += _method_section(result, locale)
    lines += _per_rep_section(result, locale)
    return "\n".join(lines).rstrip() + "\n"


def _note(note: ReportNote, locale: Locale) -> str:
    return _t(note.code, locale, **note.params)


def _value_source(source: str, locale: Locale) -> str:
    key = f"value_{source}"
    return _t(key, locale) if key in _TEXTS else source


def _strategy_label(name: str, locale: Locale) -> str:
    key = f"strategy_{name}"
    return _t(key, locale) if key in _TEXTS else name


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _number(value: float, digits: int = 0) -> str:
    return "–" if not math.isfinite(value) else f"{value:,.{digits}f}"


def _percent(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.1%}"


def _setup_section(result: BacktestResult, locale: Locale) -> list[str]:
    window = result.window
    evaluated = result.strategies[0].evaluated_leads if result.strategies else 0
    bullets = [
        _t(
            "data",
            locale,
            data_dir=result.data_dir,
            replayed=result.replayed_leads,
            evaluated=evaluated,
            reps=result.reps,
        ),
        _t(
            "window",
            locale,
            replay_start=_day(window.replay_start),
            warmup=result.settings.warmup_days,
            evaluation_start=_day(window.evaluation_start),
            evaluation_end=_day(window.evaluation_end),
            seed=result.settings.seed,
        ),
        *(
            [_t("history_command", locale, command=result.generate_command)]
            if result.generate_command
            else []
        ),
        _t("policy", locale, name=result.policy_name, version=result.policy_version),
        _t("scorer", locale, scorer=_note(result.scorer, locale)),
        *(_note(note, locale) for note in result.notes),
    ]
    return [f"## {_t('setup', locale)}", "", *(f"- {bullet}" for bullet in bullets), ""]


def _day(moment: object) -> str:
    return pd.Timestamp(moment).strftime("%Y-%m-%d %H:%M")  # type: ignore[arg-type]


def _revenue_section(result: BacktestResult, locale: Locale) -> list[str]:
    header = [
        _t(key, locale)
        for key in (
            "col_strategy",
            "col_revenue",
            "col_ratio",
            "col_conversions",
            "col_queued",
            "col_still_queued",
            "col_wait",
        )
    ]
    rows = [
        [
            _strategy_label(item.strategy, locale),
            _number(item.expected_revenue),
            f"{result.revenue_ratio(item.strategy):.3f}",
            _number(item.expected_conversions, 1),
            f"{item.queued_on_arrival:,}",
            f"{item.still_queued:,}",
            f"{_number(item.mean_wait_hours, 1)} / {_number(item.max_wait_hours, 1)}",
        ]
        for item in result.strategies
    ]
    return [f"## {_t('revenue', locale)}", "", *_table(header, rows)]


def _load_section(result: BacktestResult, locale: Locale) -> list[str]:
    header = [
        _t(key, locale)
        for key in (
            "col_strategy",
            "col_tier",
            "col_reps",
            "col_capacity",
            "col_leads",
            "col_mean_open",
            "col_max_open",
            "col_max_util",
        )
    ]
    rows = []
    for item in result.strategies:
        for tier in TIERS:
            members = item.reps[(item.reps["tier"] == tier) & (item.reps["available_days"] > 0)]
            if members.empty:
                continue
            rows.append(
                [
                    _strategy_label(item.strategy, locale),
                    _t(f"tier_{tier}", locale),
                    str(len(members)),
                    _number(float(members["capacity"].mean()), 1),
                    _number(float(members["leads"].mean()), 1),
                    _number(float(members["mean_open_leads"].mean()), 1),
                    str(int(members["max_open_leads"].max())),
                    f"{float(members['max_utilization'].max()):.2f}",
                ]
            )
    return [f"## {_t('load', locale)}", "", *_table(header, rows)]


def _fairness_section(result: BacktestResult, locale: Locale) -> list[str]:
    tiers = " / ".join(_t(f"tier_{tier}", locale) for tier in TIERS)
    header = [
        _t("col_strategy", locale),
        f"{_t('col_gini_leads', locale)} ({tiers})",
        f"{_t('col_gini_revenue', locale)} ({tiers})",
        _t("col_high_to_senior", locale),
        _t("col_low_to_newcomer", locale),
        _t("col_newcomer_low", locale),
        _t("col_region", locale),
        _t("col_skill", locale),
    ]
    rows = []
    for item in result.strategies:
        fairness: dict[str, dict[str, Any]] = {str(row["tier"]): row for row in table_records(item.fairness)}
        rows.append(
            [
                _strategy_label(item.strategy, locale),
                " / ".join(_number(float(fairness[tier]["gini_leads"]), 3) for tier in TIERS),
                " / ".join(_number(float(fairness[tier]["gini_revenue"]), 3) for tier in TIERS),
                _percent(item.high_value_to_senior),
                _percent(item.low_value_to_newcomer),
                _percent(item.newcomer_low_value_share),
                _percent(item.region_served),
                _percent(item.skill_matched),
            ]
        )
    intro = _t("fairness_intro", locale, days=MIN_FAIRNESS_DAYS, high=HIGH_VALUE_SHARE, low=LOW_VALUE_SHARE)
    return [f"## {_t('fairness', locale)}", "", intro, "", *_table(header, rows)]


def _segment_section(result: BacktestResult, locale: Locale) -> list[str]:
    header = [_t(key, locale) for key in ("col_strategy", "col_segment_shares", "col_tier_shares")]
    rows = []
    for item in result.strategies:
        segments = (
            " / ".join(
                _percent(item.segment_shares.get(name, 0.0)) for name in ("high_value", "standard", "nurture")
            )
            if item.segment_shares
            else "–"
        )
        tiers = " / ".join(_percent(item.tier_shares.get(tier, float("nan"))) for tier in TIERS)
        rows.append([_strategy_label(item.strategy, locale), segments, tiers])
    return [f"## {_t('segments', locale)}", "", *_table(header, rows)]


def _method_section(result: BacktestResult, locale: Locale) -> list[str]:
    bullets = [
        _t("note_outcome", locale),
        _t("note_value", locale, source=_value_source(result.value_source, locale)),
        _t("note_duration", locale, days=result.settings.max_open_days),
        _t("note_queue", locale, attempts=result.settings.queue_attempts),
        _t("note_strategies", locale, high=RULES_HIGH_VALUE_POINTS, standard=RULES_STANDARD_POINTS),
        _t("note_capacity", locale),
    ]
    return [f"## {_t('method', locale)}", "", *(f"- {bullet}" for bullet in bullets), ""]


def _per_rep_section(result: BacktestResult, locale: Locale) -> list[str]:
    if not result.strategies:
        return []
    header = [_t("col_rep", locale), _t("col_tier", locale), _t("col_rep_capacity", locale)]
    header += [_strategy_label(item.strategy, locale) for item in result.strategies]
    by_strategy: list[dict[str, dict[str, Any]]] = [
        {str(row["rep_id"]): row for row in table_records(item.reps)} for item in result.strategies
    ]
    rows = []
    for rep in table_records(result.strategies[0].reps):
        if float(rep["available_days"]) <= 0:
            continue
        rep_id = str(rep["rep_id"])
        cells = [rep_id, _t(f"tier_{rep['tier']}", locale), str(rep["capacity"])]
        for table in by_strategy:
            cells.append(f"{int(table[rep_id]['leads'])} / {int(table[rep_id]['max_open_leads'])}")
        rows.append(cells)
    return [f"## {_t('per_rep', locale)}", "", _t("per_rep_intro", locale), "", *_table(header, rows)]


def result_to_dict(result: BacktestResult) -> dict[str, Any]:
    """Return the backtest numbers as JSON-ready data (per-rep rows included)."""
    return {
        "data_dir": result.data_dir,
        "window": {
            "replay_start": result.window.replay_start.isoformat(),
            "evaluation_start": result.window.evaluation_start.isoformat(),
            "evaluation_end": result.window.evaluation_end.isoformat(),
        },
        "settings": {
            "warmup_days": result.settings.warmup_days,
            "max_open_days": result.settings.max_open_days,
            "queue_attempts": result.settings.queue_attempts,
            "seed": result.settings.seed,
        },
        "policy": {"name": result.policy_name, "version": result.policy_version},
        "scorer": _note_to_dict(result.scorer),
        "notes": [_note_to_dict(note) for note in result.notes],
        "replayed_leads": result.replayed_leads,
        "reps": result.reps,
        "value_source": result.value_source,
        "generate_command": result.generate_command,
        "baseline": BASELINE_STRATEGY,
        "strategies": [_strategy_to_dict(result, item) for item in result.strategies],
    }


def _note_to_dict(note: ReportNote) -> dict[str, Any]:
    return {"code": note.code, "params": dict(note.params), "text": _note(note, "en")}


def _strategy_to_dict(result: BacktestResult, item: StrategyResult) -> dict[str, Any]:
    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return {
        "strategy": item.strategy,
        "evaluated_leads": item.evaluated_leads,
        "expected_revenue": item.expected_revenue,
        "revenue_ratio_to_baseline": finite(result.revenue_ratio(item.strategy)),
        "expected_conversions": item.expected_conversions,
        "queued_on_arrival": item.queued_on_arrival,
        "still_queued": item.still_queued,
        "mean_wait_hours": item.mean_wait_hours,
        "max_wait_hours": item.max_wait_hours,
        "max_utilization": item.max_utilization,
        "high_value_to_senior": finite(item.high_value_to_senior),
        "low_value_to_newcomer": finite(item.low_value_to_newcomer),
        "newcomer_low_value_share": finite(item.newcomer_low_value_share),
        "region_served": finite(item.region_served),
        "skill_matched": finite(item.skill_matched),
        "tier_shares": {key: finite(value) for key, value in item.tier_shares.items()},
        "segment_shares": dict(item.segment_shares),
        "fairness": [
            {key: (finite(value) if isinstance(value, float) else value) for key, value in row.items()}
            for row in item.fairness.to_dict(orient="records")
        ],
        "reps": item.reps.to_dict(orient="records"),
    }
