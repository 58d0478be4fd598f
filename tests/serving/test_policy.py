"""The pure routing policy: segments, tiers, matching, balancing, fallback, shadow teams, config."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.schema import TIERS
from leadscore.errors import ConfigError, DataValidationError
from serving.policy import (
    Reason,
    RepState,
    RosterState,
    ScoredLead,
    apply_decision,
    classify_segment,
    decide,
)
from serving.policy_config import RoutingPolicy, Tier, load_policy, parse_policy

NOW = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)


def policy_dict(**overrides: Any) -> dict[str, Any]:
    """A small policy as a parsed TOML document; ``overrides`` replace top-level keys."""
    content: dict[str, Any] = {
        "segments": {
            "high_value": {
                "min_expected_value": 10000.0,
                "min_p_convert": 0.2,
                "tier": "senior",
                "fallback_tiers": ["regular"],
                "sla_hours": 4.0,
            },
            "standard": {
                "min_expected_value": 1000.0,
                "min_p_convert": 0.05,
                "tier": "regular",
                "fallback_tiers": ["senior", "newcomer"],
            },
            "nurture": {"tier": "newcomer", "fallback_tiers": ["regular"]},
        },
        "matching": {"region": "prefer", "skill": "prefer"},
    }
    content.update(overrides)
    return content


def make_policy(**overrides: Any) -> RoutingPolicy:
    return parse_policy(policy_dict(**overrides), source="test")


def lead(lead_id: str = "L1", *, p: float = 0.5, ltv: float = 40000.0, **fields: Any) -> ScoredLead:
    return ScoredLead(lead_id=lead_id, p_convert=p, ltv=ltv, expected_value=p * ltv, **fields)


def rep(rep_id: str, tier: str = "senior", capacity: int = 5, **fields: Any) -> RepState:
    return RepState(rep_id=rep_id, tier=tier, capacity=capacity, **fields)


def roster(*reps: RepState) -> RosterState:
    return RosterState(tuple(reps))


def codes(reasons: tuple[Reason, ...]) -> list[str]:
    return [reason.code for reason in reasons]


# --- segments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "ltv", "expected"),
    [
        (0.5, 40000.0, "high_value"),  # EV 20000, p 0.5
        (0.2, 50000.0, "high_value"),  # exactly on both high-value minimums
        (0.1, 200000.0, "standard"),  # EV high but p below the high-value minimum
        (0.05, 20000.0, "standard"),  # EV 1000 and p 0.05: exactly the standard minimums
        (0.04, 1000000.0, "nurture"),  # p below standard
        (0.9, 1000.0, "nurture"),  # EV 900 below standard
        (0.0, 0.0, "nurture"),
    ],
)
def test_segment_thresholds(p: float, ltv: float, expected: str) -> None:
    segment, reason = classify_segment(lead(p=p, ltv=ltv), make_policy())
    assert segment == expected
    assert reason.code == f"segment_{expected}"


def test_segment_recomputed_ignores_score_segment() -> None:
    segment, _ = classify_segment(lead(p=0.01, ltv=10.0, segment="high_value"), make_policy())
    assert segment == "nurture"


def test_segment_kept_when_recompute_off() -> None:
    content = policy_dict()
    content["segments"]["recompute"] = False
    policy = parse_policy(content, source="test")
    from_score, reason = classify_segment(lead(p=0.01, ltv=10.0, segment="high_value"), policy)
    assert from_score == "high_value"
    assert reason.code == "segment_from_score"
    missing, _ = classify_segment(lead(p=0.5, ltv=40000.0), policy)
    assert missing == "high_value"


# --- tiers, balancing, matching -------------------------------------------------------------


def test_tier_follows_segment() -> None:
    state = roster(rep("S1", "senior"), rep("R1", "regular"), rep("N1", "newcomer"))
    policy = make_policy()
    assert decide(lead(p=0.5, ltv=40000.0), state, policy, now=NOW).rep_id == "S1"
    assert decide(lead(p=0.1, ltv=20000.0), state, policy, now=NOW).rep_id == "R1"
    assert decide(lead(p=0.01, ltv=100.0), state, policy, now=NOW).rep_id == "N1"


def test_least_loaded_ratio_wins() -> None:
    state = roster(
        rep("S1", capacity=10, open_leads=5),  # 0.5
        rep("S2", capacity=4, open_leads=1),  # 0.25
        rep("S3", capacity=2, open_leads=1),  # 0.5
    )
    decision = decide(lead(), state, make_policy(), now=NOW)
    assert decision.rep_id == "S2"
    assert decision.reasons[-1].code == "least_loaded"
    assert decision.reasons[-1].params["open_leads"] == 1


def test_equal_load_prefers_less_expected_value() -> None:
    state = roster(
        rep("S1", open_leads=1, expected_value_window=30000.0),
        rep("S2", open_leads=1, expected_value_window=5000.0),
    )
    assert decide(lead(), state, make_policy(), now=NOW).rep_id == "S2"


def test_full_tie_breaks_by_rep_id() -> None:
    state = roster(rep("S9"), rep("S10"), rep("S2"))
    assert decide(lead(), state, make_policy(), now=NOW).rep_id == "S10"


def test_region_match_preferred_over_load() -> None:
    state = roster(
        rep("S1", open_leads=4, regions=frozenset({"华东"})),
        rep("S2", open_leads=0, regions=frozenset({"华南"})),
        rep("S3", open_leads=0),  # lists no regions: serves every region, ranks after a listed match
    )
    decision = decide(lead(region=" 华东 "), state, make_policy(), now=NOW)
    assert decision.rep_id == "S1"
    assert "region_match" in codes(decision.reasons)


def test_region_unrestricted_rep_beats_mismatch() -> None:
    state = roster(rep("S1", regions=frozenset({"华南"})), rep("S2", open_leads=3))
    decision = decide(lead(region="华东"), state, make_policy(), now=NOW)
    assert decision.rep_id == "S2"
    assert "region_unrestricted" in codes(decision.reasons)


def test_region_prefer_falls_back_to_mismatch() -> None:
    state = roster(rep("S1", regions=frozenset({"华南"})))
    decision = decide(lead(region="华东"), state, make_policy(), now=NOW)
    assert decision.rep_id == "S1"
    assert "region_mismatch" in codes(decision.reasons)


def test_region_require_skips_other_regions() -> None:
    policy = make_policy(matching={"region": "require", "skill": "ignore"})
    state = roster(rep("S1", regions=frozenset({"华南"})), rep("R1", "regular", regions=frozenset({"east"})))
    decision = decide(lead(region="East"), state, policy, now=NOW)
    assert decision.rep_id == "R1"
    assert decision.tier == "regular"
    assert "tier_no_match" in codes(decision.reasons)
    assert "fallback_tier" in codes(decision.reasons)


def test_region_require_queues_without_match() -> None:
    policy = make_policy(matching={"region": "require", "skill": "ignore"})
    state = roster(rep("S1", regions=frozenset({"华南"})))
    decision = decide(lead(region="华东"), state, policy, now=NOW)
    assert decision.rep_id is None
    assert decision.queue == "unassigned"


def test_lead_without_region_matches_everyone() -> None:
    policy = make_policy(matching={"region": "require", "skill": "require"})
    state = roster(rep("S1", regions=frozenset({"华南"}), skills=frozenset({"制造业"})))
    assert decide(lead(), state, policy, now=NOW).rep_id == "S1"


def test_skill_match_breaks_tie_after_region() -> None:
    state = roster(
        rep("S1", regions=frozenset({"华东"}), skills=frozenset({"教育"})),
        rep("S2", regions=frozenset({"华东"}), skills=frozenset({"制造业"}), open_leads=3),
        rep("S3", regions=frozenset({"华南"}), skills=frozenset({"制造业"})),
    )
    decision = decide(lead(region="华东", industry="制造业"), state, make_policy(), now=NOW)
    assert decision.rep_id == "S2"
    assert {"region_match", "skill_match"} <= set(codes(decision.reasons))


def test_match_ignore_uses_load_only() -> None:
    policy = make_policy(matching={"region": "ignore", "skill": "ignore"})
    state = roster(
        rep("S1", regions=frozenset({"华东"}), open_leads=2), rep("S2", regions=frozenset({"华南"}))
    )
    decision = decide(lead(region="华东"), state, policy, now=NOW)
    assert decision.rep_id == "S2"
    assert not {"region_match", "region_mismatch"} & set(codes(decision.reasons))


# --- capacity, fallback, queue --------------------------------------------------------------


def test_fallback_to_next_tier_then_queue() -> None:
    state = roster(rep("S1", capacity=1, open_leads=1), rep("R1", "regular", capacity=1))
    policy = make_policy()

    first = decide(lead("L1"), state, policy, now=NOW)
    assert first.rep_id == "R1"
    assert first.tier == "regular"
    assert codes(first.reasons)[:4] == [
        "segment_high_value",
        "tier_for_segment",
        "tier_full",
        "fallback_tier",
    ]

    second = decide(lead("L2"), apply_decision(state, first), policy, now=NOW)
    assert second.rep_id is None
    assert second.tier is None
    assert second.queue == "unassigned"
    assert second.sla_due_at is None
    assert codes(second.reasons)[-1] == "queued"


def test_fallback_order_is_configurable() -> None:
    content = policy_dict()
    content["segments"]["standard"]["fallback_tiers"] = ["newcomer", "senior"]
    policy = parse_policy(content, source="test")
    state = roster(rep("R1", "regular", capacity=0), rep("S1", "senior"), rep("N1", "newcomer"))
    assert decide(lead(p=0.1, ltv=20000.0), state, policy, now=NOW).rep_id == "N1"


def test_tier_without_fallback_queues() -> None:
    content = policy_dict()
    content["segments"]["high_value"]["fallback_tiers"] = []
    policy = parse_policy(content, source="test")
    state = roster(rep("S1", capacity=1, open_leads=1), rep("R1", "regular"))
    assert decide(lead(), state, policy, now=NOW).queue == "unassigned"


def test_inactive_and_zero_capacity_reps_skipped() -> None:
    state = roster(rep("S1", active=False), rep("S2", capacity=0), rep("S3", open_leads=4))
    assert decide(lead(), state, make_policy(), now=NOW).rep_id == "S3"


def test_over_capacity_rep_never_chosen() -> None:
    state = roster(rep("S1", capacity=2, open_leads=5))
    decision = decide(lead(), state, make_policy(), now=NOW)
    assert decision.rep_id is None
    assert "tier_full" in codes(decision.reasons)


def test_excluded_rep_not_chosen() -> None:
    state = roster(rep("S1"), rep("S2", open_leads=3))
    decision = decide(lead(), state, make_policy(), now=NOW, exclude_rep_ids=["S1"])
    assert decision.rep_id == "S2"


@settings(max_examples=60, deadline=None)
@given(
    capacities=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=6),
    tiers=st.lists(st.sampled_from(TIERS), min_size=6, max_size=6),
    values=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=40),
)
def test_sequential_decisions_never_exceed_capacity(
    capacities: list[int], tiers: list[str], values: list[float]
) -> None:
    state = roster(*(rep(f"R{index}", tiers[index], capacity) for index, capacity in enumerate(capacities)))
    policy = make_policy()
    assigned = 0
    for index, p in enumerate(values):
        decision = decide(lead(f"L{index}", p=p, ltv=50000.0), state, policy, now=NOW)
        state = apply_decision(state, decision)
        assigned += decision.rep_id is not None
        for current in state.reps:
            assert current.open_leads <= current.capacity
    assert assigned <= sum(capacities)


# --- SLA deadline, shadow teams, team scope ------------------------------------------------


def test_sla_due_at_per_segment() -> None:
    state = roster(rep("S1"), rep("R1", "regular"), rep("N1", "newcomer"))
    policy = make_policy()
    high = decide(lead(p=0.5, ltv=40000.0), state, policy, now=NOW)
    nurture = decide(lead(p=0.01, ltv=10.0), state, policy, now=NOW)
    assert high.sla_due_at == NOW + timedelta(hours=4)
    assert nurture.sla_due_at == NOW + timedelta(hours=48)


def test_shadow_team_decides_without_assigning() -> None:
    policy = make_policy(
        teams=[
            {"name": "east-pilot", "rep_ids": ["S1", "S2"], "regions": ["华东"], "mode": "shadow"},
            {"name": "rest", "rep_ids": ["S3"]},
        ]
    )
    state = roster(rep("S1", open_leads=2), rep("S2"), rep("S3"))
    shadow = decide(lead("L1", region="华东"), state, policy, now=NOW)
    assert shadow.shadow is True
    assert shadow.rep_id == "S2"
    assert shadow.team == "east-pilot"
    assert codes(shadow.reasons)[-1] == "shadow_team"
    after = apply_decision(state, shadow)
    assert after.rep("S2") == dataclasses.replace(state.reps[1], expected_value_window=shadow.expected_value)

    live = decide(lead("L2", region="华南"), state, policy, now=NOW)
    assert live.shadow is False
    assert live.rep_id == "S3"
    assert live.team == "rest"


def test_unteamed_reps_take_unclaimed_leads() -> None:
    policy = make_policy(teams=[{"name": "east", "rep_ids": ["S1"], "regions": ["华东"]}])
    state = roster(rep("S1"), rep("S2", open_leads=4))
    assert decide(lead("L1", region="华北"), state, policy, now=NOW).rep_id == "S2"
    assert decide(lead("L2"), state, policy, now=NOW).rep_id == "S2"
    assert decide(lead("L3", region="华东"), state, policy, now=NOW).rep_id == "S1"


def test_team_full_queues_not_spills() -> None:
    policy = make_policy(teams=[{"name": "east", "rep_ids": ["S1"], "regions": ["华东"]}])
    state = roster(rep("S1", capacity=1, open_leads=1), rep("S2"))
    decision = decide(lead(region="华东"), state, policy, now=NOW)
    assert decision.queue == "unassigned"
    assert decision.team == "east"


# --- reasons and lead validation ------------------------------------------------------------


def test_reasons_render_in_both_locales() -> None:
    state = roster(rep("S1", capacity=1, open_leads=1), rep("R1", "regular", regions=frozenset({"华东"})))
    decision = decide(lead(region="华东"), state, make_policy(), now=NOW)
    english = decision.reason_texts("en")
    chinese = decision.reason_texts("zh-CN")
    assert len(english) == len(chinese) == len(decision.reasons)
    assert english[0] == "High value: expected value 20,000 ≥ 10,000 and conversion probability 50% ≥ 20%."
    assert chinese[0] == "高价值线索：期望价值 20,000 ≥ 10,000，转化概率 50% ≥ 20%。"
    assert "由资深级顺延至普通级销售。" in chinese
    assert "Fell back from senior to regular reps." in english


def test_reason_round_trips_through_dict() -> None:
    reason = Reason("tier_full", {"tier": "senior", "count": 3})
    assert Reason.from_dict(reason.to_dict()) == reason


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"p_convert": 1.2}, r"lead 'L1': p_convert=1\.2 is out of range; expected between 0 and 1"),
        ({"ltv": -5.0}, r"lead 'L1': ltv=-5\.0 is out of range; expected at least 0"),
        ({"expected_value": float("nan")}, r"lead 'L1': expected_value must be a finite number, got nan"),
        (
            {"segment": "vip"},
            r"lead 'L1': unknown segment 'vip'; expected one of high_value, standard, nurture",
        ),
        ({"lead_id": " "}, r"score record has an empty lead_id"),
    ],
)
def test_invalid_score_record_rejected(fields: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"lead_id": "L1", "p_convert": 0.5, "ltv": 100.0, "expected_value": 50.0}
    values.update(fields)
    with pytest.raises(DataValidationError, match=message):
        ScoredLead(**values)


def test_decide_rejects_naive_now() -> None:
    with pytest.raises(DataValidationError, match="needs a tz-aware 'now'"):
        decide(lead(), roster(rep("S1")), make_policy(), now=datetime(2025, 1, 1))


def test_rep_state_rejects_bad_tier() -> None:
    with pytest.raises(DataValidationError, match="rep 'X1': unknown tier 'boss'"):
        rep("X1", "boss")


def test_roster_state_rejects_duplicate_rep() -> None:
    with pytest.raises(DataValidationError, match="lists rep 'S1' twice"):
        roster(rep("S1"), rep("S1"))


# --- policy file ----------------------------------------------------------------------------


def test_default_policy_loads() -> None:
    policy = load_policy()
    assert policy.segments.high_value.tier == "senior"
    assert policy.segments.standard.tier == "regular"
    assert policy.segments.nurture.tier == "newcomer"
    assert policy.sla_hours("high_value") == 4.0
    assert policy.sla_hours("standard") == 48.0
    assert len(policy.version) == 16


def test_tier_literal_matches_schema() -> None:
    assert set(get_args(Tier)) == set(TIERS)


def test_unknown_key_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    text = (Path(__file__).parents[2] / "serving" / "default_policy.toml").read_text("utf-8")
    path.write_text(text.replace("[matching]\n", "[matching]\nregoin = 'require'\n"), "utf-8")
    with pytest.raises(ConfigError, match=r"unknown key 'matching\.regoin'"):
        load_policy(path)


def test_unknown_top_level_key_rejected() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'shadow_mode'"):
        parse_policy(policy_dict(shadow_mode=True), source="test")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["segments"]["high_value"].update(tier="boss"), r"segments\.high_value\.tier"),
        (
            lambda c: c["segments"]["standard"].update(fallback_tiers=["regular"]),
            "repeat the primary tier 'regular'",
        ),
        (lambda c: c["segments"]["nurture"].update(min_p_convert=0.1), "segments.nurture takes every lead"),
        (lambda c: c["segments"]["high_value"].update(min_p_convert=1.5), r"min_p_convert"),
        (lambda c: c.update(sla={"contact_types": ["fax"]}), r"unknown activity type\(s\) \['fax'\]"),
        (
            lambda c: c.update(teams=[{"name": "a", "rep_ids": ["S1"]}, {"name": "b", "rep_ids": ["S1"]}]),
            "rep 'S1' is in both team 'a' and 'b'",
        ),
        (
            lambda c: c.update(
                teams=[
                    {"name": "a", "rep_ids": ["S1"], "regions": ["East"]},
                    {"name": "b", "rep_ids": ["S2"], "regions": ["east"]},
                ]
            ),
            "region 'east' is listed by both team 'a' and 'b'",
        ),
        (lambda c: c.update(teams=[{"name": "a", "rep_ids": ["S1"], "mode": "pilot"}]), r"teams\.0\.mode"),
    ],
)
def test_invalid_policy_rejected(change: Any, message: str) -> None:
    content = policy_dict()
    change(content)
    with pytest.raises(ConfigError, match=message):
        parse_policy(content, source="test")


def test_missing_policy_file_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"routing policy file .*nope\.toml not found"):
        load_policy(tmp_path / "nope.toml")


def test_invalid_toml_rejected(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[segments\n", "utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_policy(path)


def test_version_ignores_formatting_not_values(tmp_path: Path) -> None:
    shipped = (Path(__file__).parents[2] / "serving" / "default_policy.toml").read_text("utf-8")
    reformatted = tmp_path / "reformatted.toml"
    reformatted.write_text("# another comment\n\n" + shipped.replace(" = ", "="), "utf-8")
    changed = tmp_path / "changed.toml"
    changed.write_text(shipped.replace("sla_hours = 4.0", "sla_hours = 6.0"), "utf-8")

    base = load_policy()
    assert load_policy(reformatted).version == base.version
    assert load_policy(changed).version != base.version
    reordered = policy_dict()
    reordered["segments"] = dict(reversed(list(reordered["segments"].items())))
    assert parse_policy(reordered, source="a").version == make_policy().version
