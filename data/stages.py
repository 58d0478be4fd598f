"""The sales funnel: six ordered stages plus ``lost``, with their Chinese names.

Declared once here; importers, features, reports and the service all read this list.
"""

from __future__ import annotations

from dataclasses import dataclass

from leadscore.errors import DataValidationError


@dataclass(frozen=True)
class Stage:
    """One funnel stage: its English code, Chinese name and position (lost has none)."""

    code: str
    name_zh: str
    name_en: str
    order: int | None


FUNNEL: tuple[Stage, ...] = (
    Stage("lead", "线索获取", "Lead captured", 0),
    Stage("contacted", "初步沟通", "First contact", 1),
    Stage("qualified", "需求确认", "Needs confirmed", 2),
    Stage("proposal", "方案呈现", "Proposal presented", 3),
    Stage("negotiation", "成交准备", "Negotiation", 4),
    Stage("won", "签约执行", "Contract signed", 5),
)
LOST = Stage("lost", "输单", "Lost", None)
ALL_STAGES: tuple[Stage, ...] = (*FUNNEL, LOST)
STAGE_CODES: tuple[str, ...] = tuple(stage.code for stage in ALL_STAGES)
WON = "won"
TERMINAL_STAGES = frozenset({"won", "lost"})

# Spellings seen in CRM exports besides the canonical code and Chinese name.
_EXTRA_SPELLINGS: dict[str, str] = {
    "丢单": "lost",
    "流失": "lost",
    "输单": "lost",
    "已成交": "won",
    "赢单": "won",
    "成交": "won",
    "签约": "won",
    "closed won": "won",
    "closed lost": "lost",
    "new": "lead",
    "negotiating": "negotiation",
}


def _build_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}
    for stage in ALL_STAGES:
        lookup[stage.code] = stage.code
        lookup[stage.name_zh] = stage.code
        lookup[stage.name_en.lower()] = stage.code
    lookup.update(_EXTRA_SPELLINGS)
    return lookup


_LOOKUP = _build_lookup()


def normalize_stage(value: str) -> str | None:
    """Return the English stage code for a Chinese or English stage name, or None if unknown."""
    return _LOOKUP.get(value.strip().lower()) or _LOOKUP.get(value.strip())


def parse_stage(value: str) -> str:
    """Return the stage code for ``value`` or raise naming the accepted names."""
    code = normalize_stage(value)
    if code is None:
        accepted = ", ".join(f"{s.code}/{s.name_zh}" for s in ALL_STAGES)
        raise DataValidationError(f"unknown stage {value!r}; expected one of: {accepted}")
    return code


def stage_order(code: str) -> int | None:
    """Return the funnel position of a stage code (None for lost)."""
    for stage in ALL_STAGES:
        if stage.code == code:
            return stage.order
    raise DataValidationError(f"unknown stage code {code!r}; expected one of {STAGE_CODES}")
