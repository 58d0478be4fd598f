"""The routing policy as a pure function: ``decide(lead, roster, policy, now=...)``.

``decide`` reads no database and no clock, so the service, ``sla check`` and an offline
backtest all call it the same way. A backtest keeps a ``RosterState`` in memory and feeds
each decision back with ``apply_decision``. ``serving.routing`` instead builds the state
from the routing store inside a locked transaction.

How a lead is routed:

1. Segment: high_value when expected value and p_convert reach both high_value minimums,
   else standard when they reach both standard minimums, else nurture
   (``segments.recompute = false`` keeps the score record's segment).
2. Team: with teams in the policy, the lead goes to the team listing its region, else to
   the team without regions, else to reps in no team. A shadow team's decisions are logged
   and assign nothing.
3. Tier: the segment's tier, then its fallback tiers in order. Within a tier only active
   reps below capacity are eligible, and with ``require`` matching only reps serving the
   lead's region or skill (or listing none).
4. Rep: the first eligible rep by (region match, skill match, open leads / capacity,
   expected value received in the balancing window, rep_id).
5. Queue: when no tier has an eligible rep the lead goes to ``policy.queue``. No rep is
   ever chosen at or over capacity.

Every step adds a ``Reason`` (a code plus parameters) that renders in en and zh-CN.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from data.schema import TIERS
from leadscore.errors import DataValidationError
from leadscore.i18n import DEFAULT_LOCALE, Locale, register_messages, translate
from serving.policy_config import SEGMENTS, MatchMode, RoutingPolicy, Segment, Team, normalize_label

logger = logging.getLogger(__name__)

# Match ranks used in the sort key: lower is better.
_MATCH_LISTED = 0
_MATCH_UNRESTRICTED = 1
_MATCH_MISSING = 2

_REASON_TEXTS: dict[str, dict[str, str]] = {
    "segment_high_value": {
        "en": "High value: expected value {expected_value:,.0f} ≥ {min_expected_value:,.0f} and "
        "conversion probability {p_convert:.0%} ≥ {min_p_convert:.0%}.",
        "zh-CN": "高价值线索：期望价值 {expected_value:,.0f} ≥ {min_expected_value:,.0f}，"
        "转化概率 {p_convert:.0%} ≥ {min_p_convert:.0%}。",
    },
    "segment_standard": {
        "en": "Standard: expected value {expected_value:,.0f} ≥ {min_expected_value:,.0f} and "
        "conversion probability {p_convert:.0%} ≥ {min_p_convert:.0%}, below the high-value bar.",
        "zh-CN": "标准线索：期望价值 {expected_value:,.0f} ≥ {min_expected_value:,.0f}，"
        "转化概率 {p_convert:.0%} ≥ {min_p_convert:.0%}，未达高价值标准。",
    },
    "segment_nurture": {
        "en": "Nurture: expected value {expected_value:,.0f} or conversion probability {p_convert:.0%} "
        "is below the standard bar.",
        "zh-CN": "培育线索：期望价值 {expected_value:,.0f} 或转化概率 {p_convert:.0%} 未达标准线。",
    },
    "segment_from_score": {
        "en": "Segment {segment} taken from the score record.",
        "zh-CN": "沿用评分结果中的分层：{segment}。",
    },
    "team_scope": {
        "en": "Lead belongs to team {team}.",
        "zh-CN": "线索归属团队 {team}。",
    },
    "shadow_team": {
        "en": "Team {team} runs in shadow mode: decision logged, lead not assigned.",
        "zh-CN": "团队 {team} 处于影子模式：仅记录决策，不实际分配。",
    },
    "tier_for_segment": {
        "en": "Segment {segment} goes to {tier} reps first.",
        "zh-CN": "{segment}线索优先分配给{tier}级销售。",
    },
    "tier_empty": {
        "en": "No active {tier} rep can take this lead.",
        "zh-CN": "没有可接单的{tier}级销售。",
    },
    "tier_full": {
        "en": "All {count} active {tier} reps are at capacity.",
        "zh-CN": "{count} 名{tier}级销售均已满额。",
    },
    "tier_no_match": {
        "en": "No {tier} rep with free capacity serves region {region} / industry {industry}.",
        "zh-CN": "有空余容量的{tier}级销售均不负责区域 {region} / 行业 {industry}。",
    },
    "fallback_tier": {
        "en": "Fell back from {primary_tier} to {tier} reps.",
        "zh-CN": "由{primary_tier}级顺延至{tier}级销售。",
    },
    "region_match": {
        "en": "Rep serves region {region}.",
        "zh-CN": "销售负责区域 {region}。",
    },
    "region_unrestricted": {
        "en": "Rep lists no regions, so serves region {region}.",
        "zh-CN": "销售未限定区域，可负责 {region}。",
    },
    "region_mismatch": {
        "en": "No rep with free capacity serves region {region}; chose one from another region.",
        "zh-CN": "没有负责区域 {region} 且有空余容量的销售，已分配给其他区域的销售。",
    },
    "skill_match": {
        "en": "Rep knows industry {industry}.",
        "zh-CN": "销售擅长行业 {industry}。",
    },
    "skill_unrestricted": {
        "en": "Rep lists no skills, so takes industry {industry}.",
        "zh-CN": "销售未限定行业，可负责 {industry}。",
    },
    "skill_mismatch": {
        "en": "No rep with free capacity knows industry {industry}; chose one without that skill.",
        "zh-CN": "没有擅长行业 {industry} 且有空余容量的销售，已分配给其他销售。",
    },
    "least_loaded": {
        "en": "Least loaded eligible rep: {open_leads} of {capacity} open leads, "
        "{expected_value_window:,.0f} expected value received in the last {window_days:g} days.",
        "zh-CN": "负载最低的合格销售：在跟线索 {open_leads}/{capacity}，"
        "近 {window_days:g} 天已分配期望价值 {expected_value_window:,.0f}。",
    },
    "queued": {
        "en": "No eligible rep has free capacity; lead placed in queue {queue}.",
        "zh-CN": "没有有空余容量的合格销售，线索进入待分配队列 {queue}。",
    },
    "assigned_from_queue": {
        "en": "Taken from queue {queue} once a rep had free capacity.",
        "zh-CN": "有销售空出容量后，从队列 {queue} 中分配。",
    },
    "sla_overdue": {
        "en": "First contact was due at {sla_due_at} (UTC) and is {overdue_hours:.1f} hours late.",
        "zh-CN": "首次联系应于 {sla_due_at}（UTC）前完成，已超时 {overdue_hours:.1f} 小时。",
    },
    "sla_escalated": {
        "en": "Escalated to manager {manager_id} of rep {rep_id}.",
        "zh-CN": "已上报销售 {rep_id} 的经理 {manager_id}。",
    },
    "sla_escalated_no_manager": {
        "en": "Escalated; rep {rep_id} has no manager on file.",
        "zh-CN": "已上报；销售 {rep_id} 未登记经理。",
    },
    "reassigned_from": {
        "en": "Reassigned from rep {previous_rep_id}.",
        "zh-CN": "由销售 {previous_rep_id} 改派。",
    },
    "returned_to_queue": {
        "en": "Taken from rep {previous_rep_id} and returned to queue {queue}.",
        "zh-CN": "已从销售 {previous_rep_id} 收回，退回队列 {queue}。",
    },
    "stage_closed": {
        "en": "Lead reached stage {stage}; assignment closed and capacity freed.",
        "zh-CN": "线索进入阶段 {stage}，分配关闭并释放容量。",
    },
}


# Tier and segment codes shown in their zh-CN names; English texts keep the codes.
_LOCALIZED_CODES: dict[str, dict[str, str]] = {
    "zh-CN": {
        "senior": "资深",
        "regular": "普通",
        "newcomer": "新人",
        "high_value": "高价值",
        "standard": "标准",
        "nurture": "培育",
    }
}
_CODE_PARAMS = frozenset({"tier", "primary_tier", "segment"})


@cache
def _register_reason_texts() -> None:
    register_messages(_REASON_TEXTS)


@dataclass(frozen=True)
class Reason:
    """One reason code of a routing decision, with the parameters its texts are filled with."""

    code: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def text(self, locale: Locale = DEFAULT_LOCALE) -> str:
        """Render the reason for people in ``locale`` (en or zh-CN)."""
        _register_reason_texts()
        names = _LOCALIZED_CODES.get(locale, {})
        params = {
            key: names.get(value, value) if key in _CODE_PARAMS and isinstance(value, str) else value
            for key, value in self.params.items()
        }
        return translate(self.code, locale, **params)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form stored in the decision log."""
        return {"code": self.code, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Reason:
        """Rebuild a reason from its decision-log JSON form."""
        return cls(code=str(payload["code"]), params=dict(payload.get("params", {})))


@dataclass(frozen=True)
class ScoredLead:
    """The score record of one lead, as the scorer bundle produces it."""

    lead_id: str
    p_convert: float
    ltv: float
    expected_value: float
    model_version: str | None = None
    grade: str | None = None
    segment: str | None = None
    region: str | None = None
    industry: str | None = None

    def __post_init__(self) -> None:
        validate_scored_lead(self)


@dataclass(frozen=True)
class RepState:
    """One rep in the form routing uses: roster fields plus current load."""

    rep_id: str
    tier: str
    capacity: int
    open_leads: int = 0
    active: bool = True
    regions: frozenset[str] = frozenset()
    skills: frozenset[str] = frozenset()
    expected_value_window: float = 0.0
    manager_id: str | None = None

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise DataValidationError(
                f"rep {self.rep_id!r}: unknown tier {self.tier!r}; expected one of {', '.join(TIERS)}"
            )
        if self.capacity < 0 or self.open_leads < 0:
            raise DataValidationError(
                f"rep {self.rep_id!r}: capacity ({self.capacity}) and open_leads ({self.open_leads}) "
                "must be 0 or more"
            )
        # Matching compares normalized labels, so store them normalized once.
        object.__setattr__(self, "regions", frozenset(normalize_label(item) for item in self.regions))
        object.__setattr__(self, "skills", frozenset(normalize_label(item) for item in self.skills))

    @property
    def has_room(self) -> bool:
        return self.active and self.open_leads < self.capacity

    @property
    def load_ratio(self) -> float:
        return self.open_leads / self.capacity if self.capacity > 0 else math.inf


@dataclass(frozen=True)
class RosterState:
    """The roster with loads at one moment; ``reps`` in any order, rep ids unique."""

    reps: tuple[RepState, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for rep in self.reps:
            if rep.rep_id in seen:
                raise DataValidationError(
                    f"roster state lists rep {rep.rep_id!r} twice; rep ids must be unique"
                )
            seen.add(rep.rep_id)

    def rep(self, rep_id: str) -> RepState | None:
        """Return the rep with ``rep_id`` or None."""
        for rep in self.reps:
            if rep.rep_id == rep_id:
                return rep
        return None


@dataclass(frozen=True)
class RoutingDecision:
    """The outcome of ``decide`` for one lead.

    Exactly one of ``rep_id`` and ``queue`` is set. ``tier`` is the tier of the chosen rep
    (None when queued). ``sla_due_at`` is the first-contact deadline, set only when a rep
    is chosen. A shadow decision names the rep it would have chosen but assigns nothing.
    """

    lead_id: str
    rep_id: str | None
    queue: str | None
    tier: str | None
    segment: Segment
    reasons: tuple[Reason, ...]
    policy_version: str
    shadow: bool
    expected_value: float
    model_version: str | None = None
    team: str | None = None
    sla_due_at: datetime | None = None

    def reason_texts(self, locale: Locale = DEFAULT_LOCALE) -> list[str]:
        """Render every reason in ``locale``."""
        return [reason.text(locale) for reason in self.reasons]


def validate_scored_lead(lead: ScoredLead) -> None:
    """Raise DataValidationError naming the lead id and field when a score record is unusable."""
    if not isinstance(lead.lead_id, str) or not lead.lead_id.strip():
        raise DataValidationError(
            f"score record has an empty lead_id ({lead.lead_id!r}); send the CRM lead id"
        )
    checks: tuple[tuple[str, float, float, float], ...] = (
        ("p_convert", lead.p_convert, 0.0, 1.0),
        ("ltv", lead.ltv, 0.0, math.inf),
        ("expected_value", lead.expected_value, 0.0, math.inf),
    )
    for name, value, low, high in checks:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise DataValidationError(
                f"lead {lead.lead_id!r}: {name} must be a finite number, got {value!r}; rescore the lead"
            )
        if not low <= value <= high:
            allowed = f"between {low:g} and {high:g}" if math.isfinite(high) else f"at least {low:g}"
            raise DataValidationError(
                f"lead {lead.lead_id!r}: {name}={value!r} is out of range; expected {allowed}"
            )
    if lead.segment is not None and lead.segment not in SEGMENTS:
        raise DataValidationError(
            f"lead {lead.lead_id!r}: unknown segment {lead.segment!r}; expected one of {', '.join(SEGMENTS)}"
        )


def classify_segment(lead: ScoredLead, policy: RoutingPolicy) -> tuple[Segment, Reason]:
    """Return the lead's segment under ``policy`` and the reason explaining it."""
    segments = policy.segments
    if not segments.recompute and lead.segment is not None:
        segment = as_segment(lead.segment)
        return segment, Reason("segment_from_score", {"segment": segment})

    values = {"expected_value": lead.expected_value, "p_convert": lead.p_convert}
    ranked: tuple[Segment, ...] = ("high_value", "standard")
    for name in ranked:
        rule = segments.rule(name)
        if lead.expected_value >= rule.min_expected_value and lead.p_convert >= rule.min_p_convert:
            params = {
                **values,
                "min_expected_value": rule.min_expected_value,
                "min_p_convert": rule.min_p_convert,
            }
            return name, Reason(f"segment_{name}", params)
    return "nurture", Reason("segment_nurture", values)


def as_segment(value: str) -> Segment:
    """Return ``value`` as a segment name or raise DataValidationError naming the choices."""
    for segment in SEGMENTS:
        if segment == value:
            return segment
    raise DataValidationError(f"unknown segment {value!r}; expected one of {', '.join(SEGMENTS)}")


def resolve_team(lead: ScoredLead, policy: RoutingPolicy) -> Team | None:
    """Return the team that takes ``lead``, or None when it goes to reps in no team."""
    if not policy.teams:
        return None
    if lead.region:
        region = normalize_label(lead.region)
        for team in policy.teams:
            if any(normalize_label(listed) == region for listed in team.regions):
                return team
    for team in policy.teams:
        if not team.regions:
            return team
    return None


def _reps_in_scope(roster: RosterState, policy: RoutingPolicy, team: Team | None) -> list[RepState]:
    if team is not None:
        members = set(team.rep_ids)
        return [rep for rep in roster.reps if rep.rep_id in members]
    teamed = {rep_id for listed in policy.teams for rep_id in listed.rep_ids}
    return [rep for rep in roster.reps if rep.rep_id not in teamed]


def _match_rank(value: str | None, served: frozenset[str]) -> int:
    if not value or not served:
        return _MATCH_UNRESTRICTED
    return _MATCH_LISTED if normalize_label(value) in served else _MATCH_MISSING


def _passes(mode: MatchMode, rank: int) -> bool:
    return mode != "require" or rank != _MATCH_MISSING


def _sort_key(rep: RepState, lead: ScoredLead, policy: RoutingPolicy) -> tuple[int, int, float, float, str]:
    matching = policy.matching
    region_rank = _match_rank(lead.region, rep.regions) if matching.region != "ignore" else 0
    skill_rank = _match_rank(lead.industry, rep.skills) if matching.skill != "ignore" else 0
    return (region_rank, skill_rank, rep.load_ratio, rep.expected_value_window, rep.rep_id)


def _match_reasons(rep: RepState, lead: ScoredLead, policy: RoutingPolicy) -> list[Reason]:
    reasons: list[Reason] = []
    checks = (
        ("region", policy.matching.region, lead.region, rep.regions),
        ("skill", policy.matching.skill, lead.industry, rep.skills),
    )
    for kind, mode, value, served in checks:
        if mode == "ignore" or not value:
            continue
        rank = _match_rank(value, served)
        suffix = {_MATCH_LISTED: "match", _MATCH_UNRESTRICTED: "unrestricted", _MATCH_MISSING: "mismatch"}[
            rank
        ]
        key = "region" if kind == "region" else "industry"
        reasons.append(Reason(f"{kind}_{suffix}", {key: value}))
    return reasons


def _pick_in_tier(
    tier: str, candidates: list[RepState], lead: ScoredLead, policy: RoutingPolicy
) -> tuple[RepState | None, Reason | None]:
    """Return the best rep of ``tier`` or None with the reason the tier has none."""
    in_tier = [rep for rep in candidates if rep.tier == tier and rep.active and rep.capacity > 0]
    if not in_tier:
        return None, Reason("tier_empty", {"tier": tier})
    with_room = [rep for rep in in_tier if rep.has_room]
    if not with_room:
        return None, Reason("tier_full", {"tier": tier, "count": len(in_tier)})
    matching = policy.matching
    eligible = [
        rep
        for rep in with_room
        if _passes(matching.region, _match_rank(lead.region, rep.regions))
        and _passes(matching.skill, _match_rank(lead.industry, rep.skills))
    ]
    if not eligible:
        params = {"tier": tier, "region": lead.region or "-", "industry": lead.industry or "-"}
        return None, Reason("tier_no_match", params)
    return min(eligible, key=lambda rep: _sort_key(rep, lead, policy)), None


def decide(
    lead: ScoredLead,
    roster: RosterState,
    policy: RoutingPolicy,
    *,
    now: datetime,
    exclude_rep_ids: Iterable[str] = (),
) -> RoutingDecision:
    """Choose a rep or the queue for ``lead`` under ``policy``; read nothing but the arguments.

    ``now`` is the assignment time that the SLA deadline counts from and must be tz-aware.
    ``exclude_rep_ids`` removes reps from consideration, for example the current owner when
    an overdue lead is reassigned.
    """
    if now.tzinfo is None:
        raise DataValidationError(f"decide() needs a tz-aware 'now', got the naive time {now.isoformat()}")
    segment, segment_reason = classify_segment(lead, policy)
    rule = policy.segments.rule(segment)
    team = resolve_team(lead, policy)
    shadow = team is not None and team.mode == "shadow"

    reasons: list[Reason] = [segment_reason]
    if team is not None:
        reasons.append(Reason("team_scope", {"team": team.name}))
    reasons.append(Reason("tier_for_segment", {"segment": segment, "tier": rule.tier}))

    excluded = set(exclude_rep_ids)
    candidates = [rep for rep in _reps_in_scope(roster, policy, team) if rep.rep_id not in excluded]
    chosen: RepState | None = None
    for tier in (rule.tier, *rule.fallback_tiers):
        chosen, miss = _pick_in_tier(tier, candidates, lead, policy)
        if chosen is not None:
            break
        if miss is not None:
            reasons.append(miss)

    if chosen is not None:
        if chosen.tier != rule.tier:
            reasons.append(Reason("fallback_tier", {"primary_tier": rule.tier, "tier": chosen.tier}))
        reasons.extend(_match_reasons(chosen, lead, policy))
        reasons.append(
            Reason(
                "least_loaded",
                {
                    "open_leads": chosen.open_leads,
                    "capacity": chosen.capacity,
                    "expected_value_window": chosen.expected_value_window,
                    "window_days": policy.balancing.expected_value_window_days,
                },
            )
        )
    else:
        reasons.append(Reason("queued", {"queue": policy.queue}))
    if shadow and team is not None:
        reasons.append(Reason("shadow_team", {"team": team.name}))

    sla_due_at = now + timedelta(hours=policy.sla_hours(segment)) if chosen is not None else None
    return RoutingDecision(
        lead_id=lead.lead_id,
        rep_id=chosen.rep_id if chosen is not None else None,
        queue=None if chosen is not None else policy.queue,
        tier=chosen.tier if chosen is not None else None,
        segment=segment,
        reasons=tuple(reasons),
        policy_version=policy.version,
        shadow=shadow,
        expected_value=lead.expected_value,
        model_version=lead.model_version,
        team=team.name if team is not None else None,
        sla_due_at=sla_due_at,
    )


def apply_decision(roster: RosterState, decision: RoutingDecision) -> RosterState:
    """Return the roster after ``decision``: the chosen rep has one more open lead.

    Shadow and queued decisions leave the roster unchanged, as they do in the store, except
    that a shadow decision still adds to the rep's expected value in the balancing window.
    """
    if decision.rep_id is None:
        return roster
    updated: list[RepState] = []
    for rep in roster.reps:
        if rep.rep_id != decision.rep_id:
            updated.append(rep)
            continue
        updated.append(
            dataclasses.replace(
                rep,
                open_leads=rep.open_leads + (0 if decision.shadow else 1),
                expected_value_window=rep.expected_value_window + decision.expected_value,
            )
        )
    return RosterState(tuple(updated))
