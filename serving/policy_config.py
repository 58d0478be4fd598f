"""The routing policy file: a strict pydantic model of the TOML that configures ``serving.policy``.

The shipped default is ``serving/default_policy.toml``; a team points ``--policy FILE`` (or the
``policy_file`` setting) at its own copy. Unknown keys are rejected so that a misspelt key
never falls back to a default silently. ``RoutingPolicy.version`` is a hash of the normalized
content: comments, key order and formatting do not change it, while any changed value does.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data.schema import ACTIVITY_TYPES
from leadscore.errors import ConfigError

Segment = Literal["high_value", "standard", "nurture"]
SEGMENTS: tuple[Segment, ...] = ("high_value", "standard", "nurture")
Tier = Literal["senior", "regular", "newcomer"]
MatchMode = Literal["ignore", "prefer", "require"]
TeamMode = Literal["live", "shadow"]

DEFAULT_POLICY_RESOURCE = "default_policy.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SegmentRule(_Strict):
    """Rules of one segment: entry thresholds, the tiers that take its leads, its first-contact deadline."""

    min_expected_value: float = Field(
        default=0.0,
        ge=0.0,
        description=(
            "Minimum expected value (p_convert x LTV, in the currency of the orders) for a lead to "
            "enter this segment. Not allowed for nurture, which takes every remaining lead."
        ),
    )
    min_p_convert: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description=(
            "Minimum calibrated conversion probability for a lead to enter this segment; both "
            "minimums must hold. Not allowed for nurture."
        ),
    )
    tier: Tier = Field(description="Rep tier that takes leads of this segment first.")
    fallback_tiers: tuple[Tier, ...] = Field(
        default=(),
        description=(
            "Tiers tried in this order when every rep of ``tier`` is full or ineligible; after "
            "them the lead goes to the unassigned queue."
        ),
    )
    sla_hours: float | None = Field(
        default=None,
        gt=0.0,
        description="First-contact deadline in hours after assignment; None means ``sla.default_hours``.",
    )

    @model_validator(mode="after")
    def _fallbacks_differ_from_tier(self) -> SegmentRule:
        if self.tier in self.fallback_tiers:
            raise ValueError(
                f"fallback_tiers {list(self.fallback_tiers)} repeat the primary tier {self.tier!r}"
            )
        if len(set(self.fallback_tiers)) != len(self.fallback_tiers):
            raise ValueError(f"fallback_tiers {list(self.fallback_tiers)} contain a tier twice")
        return self


class Segments(_Strict):
    """The three segments, checked in the order high_value, standard, nurture."""

    recompute: bool = Field(
        default=True,
        description=(
            "Classify each lead with the thresholds below. False keeps the segment of the score "
            "record and classifies only records that have none."
        ),
    )
    high_value: SegmentRule = Field(description="Leads worth a senior rep's time.")
    standard: SegmentRule = Field(description="Leads above the nurture floor.")
    nurture: SegmentRule = Field(description="Every other lead; it takes no thresholds.")

    @model_validator(mode="after")
    def _nurture_has_no_thresholds(self) -> Segments:
        if self.nurture.min_expected_value or self.nurture.min_p_convert:
            raise ValueError(
                "segments.nurture takes every lead below standard, so it cannot set "
                "min_expected_value or min_p_convert; remove them"
            )
        return self

    def rule(self, segment: Segment) -> SegmentRule:
        """Return the rule of ``segment``."""
        rule: SegmentRule = getattr(self, segment)
        return rule


class Matching(_Strict):
    """Matching of a lead's region and industry against a rep's regions and skills."""

    region: MatchMode = Field(
        default="prefer",
        description=(
            "ignore: region plays no part. prefer: reps serving the lead's region come first, then "
            "reps with no regions listed, then the rest. require: only reps serving the region or "
            "listing no regions are eligible. A lead without a region matches every rep."
        ),
    )
    skill: MatchMode = Field(
        default="prefer",
        description="Same modes as ``region``, comparing the lead's industry with the rep's skills.",
    )


class Balancing(_Strict):
    """Tie-breaking between equally loaded reps of one tier."""

    expected_value_window_days: float = Field(
        default=7.0,
        gt=0.0,
        description=(
            "Length of the rolling window, in days, over which the expected value each rep "
            "received is summed. Among reps with the same load ratio the one that received the "
            "least expected value wins, then the smallest rep_id."
        ),
    )


class SlaRules(_Strict):
    """First-contact SLA: the deadline and what counts as a first contact."""

    # NOTE: deadlines count wall-clock hours; nights, weekends and holidays are not skipped.

    default_hours: float = Field(
        default=48.0, gt=0.0, description="Deadline in hours for segments that do not set ``sla_hours``."
    )
    contact_types: tuple[str, ...] = Field(
        default=("call", "wechat", "email", "visit", "demo", "quote"),
        min_length=1,
        description=(
            "Activity types that count as a first contact when their direction is outbound. A "
            "stage change to contacted or beyond also counts."
        ),
    )

    @field_validator("contact_types")
    @classmethod
    def _known_activity_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [item for item in value if item not in ACTIVITY_TYPES]
        if unknown:
            raise ValueError(f"unknown activity type(s) {unknown}; expected some of {list(ACTIVITY_TYPES)}")
        return value


class Team(_Strict):
    """A named group of reps that takes the leads of its regions, live or in shadow mode."""

    name: str = Field(min_length=1, description="Team name, written to the decision log.")
    rep_ids: tuple[str, ...] = Field(min_length=1, description="Rep ids of the team members.")
    regions: tuple[str, ...] = Field(
        default=(),
        description=(
            "Lead regions this team takes (compared case-insensitively). An empty list makes the "
            "team take every lead whose region no other team lists; at most one team may do so."
        ),
    )
    mode: TeamMode = Field(
        default="live",
        description=(
            "live: decisions assign leads. shadow: decisions are logged with shadow=true and "
            "assign nothing, for piloting a team before roll-out."
        ),
    )


class RoutingPolicy(_Strict):
    """The whole routing policy: segments, matching, balancing, SLA, queue and teams."""

    name: str = Field(default="default", min_length=1, description="Human-readable policy name.")
    queue: str = Field(
        default="unassigned",
        min_length=1,
        description="Name of the queue that takes leads no eligible rep has room for.",
    )
    segments: Segments = Field(description="Segment thresholds, tiers, fallbacks and SLA per segment.")
    matching: Matching = Field(default=Matching(), description="Region and skill matching.")
    balancing: Balancing = Field(default=Balancing(), description="Tie-breaking within a tier.")
    sla: SlaRules = Field(default=SlaRules(), description="First-contact SLA rules.")
    teams: tuple[Team, ...] = Field(
        default=(),
        description=(
            "Teams that split the roster. Without teams every rep can take every lead. With "
            "teams, a lead goes to the team listing its region, else to the team without "
            "regions, else to the reps who belong to no team."
        ),
    )

    @model_validator(mode="after")
    def _teams_do_not_overlap(self) -> RoutingPolicy:
        seen_names: set[str] = set()
        rep_team: dict[str, str] = {}
        region_team: dict[str, str] = {}
        catch_all: list[str] = []
        for team in self.teams:
            if team.name in seen_names:
                raise ValueError(f"team name {team.name!r} is used twice")
            seen_names.add(team.name)
            for rep_id in team.rep_ids:
                if rep_id in rep_team:
                    raise ValueError(f"rep {rep_id!r} is in both team {rep_team[rep_id]!r} and {team.name!r}")
                rep_team[rep_id] = team.name
            for region in team.regions:
                key = normalize_label(region)
                if key in region_team:
                    raise ValueError(
                        f"region {region!r} is listed by both team {region_team[key]!r} and {team.name!r}"
                    )
                region_team[key] = team.name
            if not team.regions:
                catch_all.append(team.name)
        if len(catch_all) > 1:
            raise ValueError(f"teams {catch_all} all list no regions; at most one team may take the rest")
        return self

    @cached_property
    def version(self) -> str:
        """Hash of the normalized policy content: 16 hex digits of SHA-256 over canonical JSON."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def sla_hours(self, segment: Segment) -> float:
        """Return the first-contact deadline of ``segment`` in hours."""
        hours = self.segments.rule(segment).sla_hours
        return hours if hours is not None else self.sla.default_hours


def normalize_label(value: str) -> str:
    """Return a region, skill or industry label in the form used for matching (trimmed, case-folded)."""
    return value.strip().casefold()


def parse_policy(content: dict[str, Any], *, source: str) -> RoutingPolicy:
    """Validate a parsed policy document, raising ConfigError that names each bad key and ``source``."""
    try:
        return RoutingPolicy.model_validate(content)
    except ValidationError as error:
        problems = "; ".join(_describe_problem(item) for item in error.errors())
        raise ConfigError(f"invalid routing policy {source}: {problems}") from None


def _describe_problem(item: Any) -> str:
    where = ".".join(str(part) for part in item["loc"]) or "(top level)"
    if item["type"] == "extra_forbidden":
        return f"unknown key {where!r}; remove it or fix its spelling (see serving/policy_config.py)"
    return f"{where}: {item['msg']}"


def load_policy(path: Path | None = None) -> RoutingPolicy:
    """Read a routing policy TOML file; None reads the default shipped with leadscore."""
    if path is None:
        text = resources.files("serving").joinpath(DEFAULT_POLICY_RESOURCE).read_text("utf-8")
        source = f"(shipped {DEFAULT_POLICY_RESOURCE})"
    else:
        try:
            text = Path(path).read_text("utf-8")
        except FileNotFoundError:
            raise ConfigError(f"routing policy file {path} not found") from None
        source = str(path)
    try:
        content = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"routing policy {source} is not valid TOML: {error}") from None
    return parse_policy(content, source=source)
