"""Routing backtest: replay roster, strategies, ground-truth evaluation, folder run and CLI."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from data.folder import read_data_dir
from data.synthetic import GeneratorConfig, generate_history
from data.synthetic.tables import TRUTH_COLUMNS
from leadscore.cli.main import cli
from leadscore.errors import ConfigError, DataValidationError, InputFileError
from serving.backtest import (
    BacktestResult,
    BacktestSettings,
    BacktestWindow,
    ReplayOutcome,
    evaluate_assignments,
    gini,
    plan_backtest,
    replay,
    replay_plan,
    resolve_window,
    run_backtest,
)
from serving.backtest_policies import (
    ArrivingLead,
    Assigner,
    PolicyAssigner,
    ReplayRep,
    ReplayRoster,
    RoundRobinAssigner,
    RulesOnlyAssigner,
    rule_segment,
)
from serving.backtest_report import render_report, result_to_dict
from serving.backtest_scores import load_bundle
from serving.backtest_truth import GroundTruth, read_ground_truth
from serving.policy import ScoredLead
from serving.policy_config import RoutingPolicy, load_policy, parse_policy

T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def make_rep(rep_id: str, tier: str = "regular", capacity: int = 5, **fields: Any) -> ReplayRep:
    return ReplayRep(rep_id=rep_id, tier=tier, capacity=capacity, **fields)


def make_lead(number: int, *, minutes: float, open_hours: float = 1000.0, **fields: Any) -> ArrivingLead:
    return ArrivingLead(
        lead_id=f"L{number:04d}",
        created_at=T0 + timedelta(minutes=minutes),
        open_duration=timedelta(hours=open_hours),
        **fields,
    )


def window(days: float = 60.0, *, evaluate_from: datetime = T0) -> BacktestWindow:
    return BacktestWindow(T0, evaluate_from, T0 + timedelta(days=days))


def small_policy(**overrides: Any) -> RoutingPolicy:
    content: dict[str, Any] = {
        "segments": {
            "high_value": {
                "min_expected_value": 10000.0,
                "min_p_convert": 0.2,
                "tier": "senior",
                "fallback_tiers": ["regular"],
            },
            "standard": {
                "min_expected_value": 1000.0,
                "min_p_convert": 0.05,
                "tier": "regular",
                "fallback_tiers": ["senior", "newcomer"],
            },
            "nurture": {"tier": "newcomer", "fallback_tiers": ["regular"]},
        },
    }
    content.update(overrides)
    return parse_policy(content, source="test")


def scored(lead: ArrivingLead, p: float, ltv: float) -> ScoredLead:
    return ScoredLead(
        lead_id=lead.lead_id,
        p_convert=p,
        ltv=ltv,
        expected_value=p * ltv,
        region=lead.region,
        industry=lead.industry,
    )


def run(
    assigner: Assigner,
    reps: list[ReplayRep],
    leads: list[ArrivingLead],
    span: BacktestWindow | None = None,
) -> ReplayOutcome:
    return replay(assigner, reps, leads, span or window(), balancing_window=WEEK)


def counts_by_rep(outcome: ReplayOutcome) -> dict[str, int]:
    return {str(key): int(value) for key, value in outcome.assignments["rep_id"].value_counts().items()}


def max_concurrent(outcome: ReplayOutcome, leads: list[ArrivingLead]) -> dict[str, int]:
    """Rebuild each rep's open leads from the assignment log alone and return the maximum."""
    durations = {lead.lead_id: lead.open_duration for lead in leads}
    events: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    assigned = outcome.assignments.dropna(subset=["rep_id"])
    for lead_id, rep_id, assigned_at in zip(
        assigned["lead_id"], assigned["rep_id"], assigned["assigned_at"], strict=True
    ):
        start = pd.Timestamp(assigned_at).to_pydatetime()
        events[str(rep_id)].append((start, +1))
        events[str(rep_id)].append((start + durations[str(lead_id)], -1))
    peaks: dict[str, int] = {}
    for rep_id, items in events.items():
        open_leads = peak = 0
        for _, change in sorted(items):  # a release sorts before an assignment at the same time
            open_leads += change
            peak = max(peak, open_leads)
        peaks[rep_id] = peak
    return peaks


# --- replay roster and round-robin ------------------------------------------------------------


def test_round_robin_spreads_leads_evenly() -> None:
    reps = [make_rep(f"R{number}", capacity=100) for number in range(4)]
    leads = [make_lead(number, minutes=number) for number in range(40)]

    outcome = run(RoundRobinAssigner([rep.rep_id for rep in reps], seed=3), reps, leads)

    assert counts_by_rep(outcome) == {"R0": 10, "R1": 10, "R2": 10, "R3": 10}
    assert not outcome.assignments["queued"].any()


def test_round_robin_rotation_depends_on_seed() -> None:
    reps = [make_rep(f"R{number}", capacity=100) for number in range(6)]
    leads = [make_lead(number, minutes=number) for number in range(6)]

    orders = {
        seed: tuple(
            run(RoundRobinAssigner([rep.rep_id for rep in reps], seed=seed), reps, leads).assignments[
                "rep_id"
            ]
        )
        for seed in range(5)
    }

    assert all(sorted(order) == [rep.rep_id for rep in reps] for order in orders.values())
    assert len(set(orders.values())) > 1
    again = run(RoundRobinAssigner([rep.rep_id for rep in reps], seed=2), reps, leads)
    assert tuple(again.assignments["rep_id"]) == orders[2]


def test_round_robin_skips_full_reps_and_queues() -> None:
    reps = [make_rep("R1", capacity=1), make_rep("R2", capacity=3)]
    leads = [make_lead(number, minutes=number) for number in range(5)]

    outcome = run(RoundRobinAssigner(["R1", "R2"], seed=0), reps, leads, window(days=10))

    assert counts_by_rep(outcome) == {"R1": 1, "R2": 3}
    assert int(outcome.assignments["queued"].sum()) == 1
    assert outcome.assignments["rep_id"].isna().sum() == 1


def random_scenario(
    seed: int,
) -> tuple[list[ReplayRep], list[ArrivingLead], dict[str, ScoredLead], dict[str, float]]:
    """Twelve reps with small capacities and 400 leads that outrun them, for capacity checks."""
    generator = np.random.default_rng(seed)
    tiers = ["senior", "regular", "newcomer"]
    regions = ["east", "south", "north"]
    reps = [
        make_rep(
            f"R{number:02d}",
            tier=tiers[number % 3],
            capacity=int(generator.integers(1, 5)),
            regions=frozenset({regions[number % 3]}),
            hired_at=T0 + timedelta(days=10) if number == 11 else None,
        )
        for number in range(12)
    ]
    leads = [
        make_lead(
            number,
            minutes=20.0 * number,
            open_hours=float(generator.uniform(1.0, 96.0)),
            region=regions[int(generator.integers(0, 3))],
            industry="retail",
        )
        for number in range(400)
    ]
    scores = {
        lead.lead_id: scored(lead, float(generator.uniform(0.01, 0.6)), float(generator.uniform(500, 80000)))
        for lead in leads
    }
    points = {lead.lead_id: float(generator.choice([0, 10, 20, 30, 40])) for lead in leads}
    return reps, leads, scores, points


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("strategy", ["round_robin", "rules_only", "leadscore"])
def test_no_strategy_exceeds_capacity(strategy: str, seed: int) -> None:
    reps, leads, scores, points = random_scenario(seed)
    policy = small_policy()
    assigners: dict[str, Assigner] = {
        "round_robin": RoundRobinAssigner([rep.rep_id for rep in reps], seed=seed),
        "rules_only": RulesOnlyAssigner(policy, points),
        "leadscore": PolicyAssigner("leadscore", policy, scores),
    }

    outcome = run(assigners[strategy], reps, leads, window(days=6.0))

    capacity = {rep.rep_id: rep.capacity for rep in reps}
    assert int(outcome.assignments["queued"].sum()) > 0, "the scenario must make capacity bind"
    for rep_id, peak in max_concurrent(outcome, leads).items():
        assert peak <= capacity[rep_id], f"{rep_id} held {peak} leads with capacity {capacity[rep_id]}"
    for load in outcome.loads:
        assert load.max_open_leads <= load.capacity
        assert load.max_utilization <= 1.0
    late_rep = outcome.assignments[outcome.assignments["rep_id"] == "R11"]
    assert (late_rep["assigned_at"] >= pd.Timestamp(T0 + timedelta(days=10))).all()


def test_roster_rejects_assignment_at_capacity() -> None:
    roster = ReplayRoster(
        [make_rep("R1", capacity=1)], balancing_window=WEEK, window_start=T0, window_end=T0 + WEEK
    )
    roster.advance(T0)
    roster.assign("R1", at=T0, open_for=timedelta(hours=5), expected_value=0.0)

    with pytest.raises(DataValidationError, match=r"'R1' .* 1 of 1 open leads.*only below capacity"):
        roster.assign("R1", at=T0, open_for=timedelta(hours=5), expected_value=0.0)


def test_roster_releases_and_integrates_load() -> None:
    roster = ReplayRoster(
        [make_rep("R1", capacity=2)],
        balancing_window=WEEK,
        window_start=T0,
        window_end=T0 + timedelta(days=10),
    )
    roster.advance(T0)
    roster.assign("R1", at=T0, open_for=timedelta(days=10), expected_value=100.0)
    roster.assign("R1", at=T0, open_for=timedelta(days=5), expected_value=50.0)
    assert roster.rep("R1").open_leads == 2
    assert roster.rep("R1").expected_value_window == pytest.approx(150.0)

    roster.advance(T0 + timedelta(days=8))

    assert roster.rep("R1").open_leads == 1
    assert roster.rep("R1").expected_value_window == 0.0
    (summary,) = roster.summaries()
    assert summary.mean_open_leads == pytest.approx(1.5)
    assert summary.max_open_leads == 2
    assert summary.max_utilization == 1.0


def test_roster_clock_cannot_go_back() -> None:
    roster = ReplayRoster([make_rep("R1")], balancing_window=WEEK, window_start=T0, window_end=T0 + WEEK)
    roster.advance(T0 + timedelta(hours=2))

    with pytest.raises(DataValidationError, match="cannot go back"):
        roster.advance(T0)


def test_replay_rejects_leads_outside_window() -> None:
    early = ArrivingLead("L1", T0 - timedelta(days=1), timedelta(hours=1))

    with pytest.raises(DataValidationError, match=r"1 lead.*outside the replay window.*'L1'"):
        run(RoundRobinAssigner(["R1"], seed=0), [make_rep("R1")], [early])


def test_policy_assigner_requires_every_score() -> None:
    lead = make_lead(1, minutes=0)

    with pytest.raises(DataValidationError, match="no score record for lead 'L0001'"):
        run(PolicyAssigner("leadscore", small_policy(), {}), [make_rep("R1")], [lead])


@pytest.mark.parametrize(
    ("points", "segment"),
    [(0.0, "nurture"), (9.9, "nurture"), (10.0, "standard"), (29.0, "standard"), (30.0, "high_value")],
)
def test_rule_segment_cuts(points: float, segment: str) -> None:
    assert rule_segment(points) == segment


def test_rules_only_sends_high_points_to_seniors() -> None:
    reps = [make_rep("S1", tier="senior"), make_rep("N1", tier="newcomer")]
    leads = [make_lead(1, minutes=0), make_lead(2, minutes=1)]
    points = {"L0001": 45.0, "L0002": 0.0}

    outcome = run(RulesOnlyAssigner(small_policy(), points), reps, leads)

    assert list(outcome.assignments["rep_id"]) == ["S1", "N1"]
    assert list(outcome.assignments["segment"]) == ["high_value", "nurture"]


# --- ground truth and evaluation -------------------------------------------------------------


def hand_truth(rows: dict[str, tuple[float, float, float, float]], **fields: Any) -> GroundTruth:
    """Ground truth from lead_id -> (p_senior, p_regular, p_newcomer, won value), delay 1 hour."""
    frame = pd.DataFrame.from_dict(
        rows,
        orient="index",
        columns=["p_convert_senior", "p_convert_regular", "p_convert_newcomer", "won_value"],
    )
    frame["first_contact_delay_hours"] = 1.0
    settings: dict[str, Any] = {"rep_effects": {}, "speed_penalty": 0.22, "skill_match_effect": 0.0}
    settings.update(fields)
    return GroundTruth(leads=frame, value_source="hand-made", **settings)


def test_conversion_probability_adds_effects_and_wait() -> None:
    truth = hand_truth({"A": (0.5, 0.3, 0.1, 1.0), "B": (0.0, 0.0, 0.0, 1.0)}, rep_effects={"R2": 0.5})

    def probability(lead: str, tier: str, rep_id: str, wait: float) -> float:
        values = truth.conversion_probability(
            pd.Series([lead]), pd.Series([tier]), pd.Series([rep_id]), pd.Series([False]), pd.Series([wait])
        )
        return float(values[0])

    assert probability("A", "senior", "R1", 0.0) == pytest.approx(0.5)
    assert probability("A", "newcomer", "R1", 0.0) == pytest.approx(0.1)
    assert probability("A", "senior", "R2", 0.0) > 0.5
    assert probability("A", "senior", "R1", 48.0) < 0.5
    assert probability("B", "senior", "R2", 0.0) == 0.0


def test_ground_truth_rejects_missing_columns() -> None:
    with pytest.raises(Exception, match=r"lacks column\(s\) \['won_value'\]"):
        GroundTruth(
            leads=pd.DataFrame(
                {
                    "p_convert_senior": [0.1],
                    "p_convert_regular": [0.1],
                    "p_convert_newcomer": [0.1],
                    "first_contact_delay_hours": [1.0],
                }
            ),
            rep_effects={},
            speed_penalty=0.2,
            skill_match_effect=0.0,
            value_source="test",
        )


def test_policy_beats_round_robin_on_hand_made_truth() -> None:
    reps = [make_rep(f"S{number}", tier="senior", capacity=20) for number in range(2)]
    reps += [make_rep(f"N{number}", tier="newcomer", capacity=20) for number in range(4)]
    leads = [make_lead(number, minutes=30 * number, open_hours=24) for number in range(120)]
    high = {lead.lead_id for number, lead in enumerate(leads) if number % 4 == 0}
    truth = hand_truth(
        {
            lead.lead_id: (0.6, 0.3, 0.05, 200_000.0) if lead.lead_id in high else (0.1, 0.1, 0.1, 5_000.0)
            for lead in leads
        }
    )
    scores = {
        lead.lead_id: scored(lead, 0.4, 150_000.0) if lead.lead_id in high else scored(lead, 0.08, 4_000.0)
        for lead in leads
    }
    span = window(days=10)

    results = {}
    for assigner in (
        RoundRobinAssigner([rep.rep_id for rep in reps], seed=0),
        PolicyAssigner("leadscore", small_policy(), scores),
    ):
        outcome = run(assigner, reps, leads, span)
        results[assigner.name] = evaluate_assignments(outcome, leads, reps, truth, span)

    policy, round_robin = results["leadscore"], results["round_robin"]
    assert policy.expected_revenue > 1.5 * round_robin.expected_revenue
    assert policy.high_value_to_senior == 1.0
    assert round_robin.high_value_to_senior < 0.5
    assert policy.max_utilization <= 1.0


def test_queue_wait_and_unserved_leads() -> None:
    reps = [make_rep("R1", capacity=1)]
    leads = [
        make_lead(1, minutes=0, open_hours=10),
        make_lead(2, minutes=1, open_hours=10),
        make_lead(3, minutes=2, open_hours=10),
    ]
    span = window(days=0.75)
    truth = hand_truth({lead.lead_id: (0.3, 0.3, 0.3, 1000.0) for lead in leads})

    outcome = run(RoundRobinAssigner(["R1"], seed=0), reps, leads, span)
    result = evaluate_assignments(outcome, leads, reps, truth, span)

    rows = outcome.assignments.set_index("lead_id")
    assert rows.loc["L0002", "assigned_at"] == pd.Timestamp(T0 + timedelta(hours=10))
    assert rows.loc["L0002", "wait_hours"] == pytest.approx(10 - 1 / 60)
    assert rows["rep_id"].isna().tolist() == [False, False, True]
    assert result.queued_on_arrival == 2
    assert result.still_queued == 1
    assert result.max_wait_hours == pytest.approx(10 - 1 / 60)
    first_only = 0.3 * 1000.0
    assert first_only < result.expected_revenue < 2 * first_only


def test_gini_values() -> None:
    assert gini(np.array([2.0, 2.0, 2.0])) == 0.0
    assert gini(np.array([0.0, 0.0, 3.0])) == pytest.approx(2 / 3)
    assert gini(np.array([0.0, 0.0])) == 0.0
    assert np.isnan(gini(np.array([5.0])))
    with pytest.raises(DataValidationError, match="0 or more"):
        gini(np.array([1.0, -1.0]))


# --- folder backtest --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("backtest") / "history"
    generate_history(GeneratorConfig(leads=2500, seed=5), folder)
    return folder


@pytest.fixture(scope="module")
def folder_result(history_dir: Path) -> BacktestResult:
    return run_backtest(history_dir, load_policy(), BacktestSettings(seed=4))


def test_folder_backtest_reports_three_strategies(folder_result: BacktestResult) -> None:
    names = [item.strategy for item in folder_result.strategies]
    assert names == ["round_robin", "rules_only", "leadscore"]
    assert folder_result.revenue_ratio("round_robin") == 1.0
    evaluated = {item.evaluated_leads for item in folder_result.strategies}
    assert len(evaluated) == 1
    assert evaluated.pop() > 0
    for item in folder_result.strategies:
        assert item.expected_revenue > 0
        assert item.max_utilization <= 1.0
        assert set(item.fairness["tier"]) == {"senior", "regular", "newcomer"}


def test_folder_decisions_do_not_need_ground_truth(history_dir: Path, tmp_path: Path) -> None:
    stripped = tmp_path / "no-truth"
    shutil.copytree(history_dir, stripped, ignore=shutil.ignore_patterns("ground_truth"))
    tables = read_data_dir(stripped)
    settings = BacktestSettings(seed=4)

    plan = plan_backtest(tables, load_policy(), settings)
    outcomes = replay_plan(plan, settings)

    truth_only = set(TRUTH_COLUMNS) - {"lead_id"}
    assert not truth_only & {field.name for field in fields(ArrivingLead)}
    assert not truth_only & {field.name for field in fields(ScoredLead)}
    assert not truth_only & set(tables.leads.columns)
    assert [outcome.strategy for outcome in outcomes] == ["round_robin", "rules_only", "leadscore"]
    assert all(outcome.assignments["rep_id"].notna().any() for outcome in outcomes)


def test_changing_ground_truth_changes_outcomes_not_decisions(
    history_dir: Path, tmp_path: Path, folder_result: BacktestResult
) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(history_dir, changed)
    truth_path = changed / "ground_truth" / "leads.parquet"
    truth = pd.read_parquet(truth_path)
    for tier in ("senior", "regular", "newcomer"):
        truth[f"p_convert_{tier}"] = truth[f"p_convert_{tier}"] / 2
    truth.to_parquet(truth_path, index=False)

    result = run_backtest(changed, load_policy(), BacktestSettings(seed=4))

    for before, after in zip(folder_result.strategies, result.strategies, strict=True):
        pd.testing.assert_series_equal(before.reps["leads"], after.reps["leads"])
        pd.testing.assert_series_equal(before.reps["max_open_leads"], after.reps["max_open_leads"])
        assert after.expected_revenue < before.expected_revenue


def test_report_renders_both_locales(folder_result: BacktestResult) -> None:
    english = render_report(folder_result, locale="en", command="leadscore route backtest --data X")
    chinese = render_report(folder_result, locale="zh-CN", command="leadscore route backtest --data X")

    assert english.startswith("# Routing backtest\n")
    assert "leadscore route backtest --data X" in english
    assert "| Round-robin | " in english
    assert "| Rules only | " in english
    assert chinese.startswith("# 路由回测\n")
    assert "预期赢单收入" in chinese
    assert "| 轮询 | " in chinese
    payload = json.loads(json.dumps(result_to_dict(folder_result), default=str))
    assert [item["strategy"] for item in payload["strategies"]] == ["round_robin", "rules_only", "leadscore"]


def test_read_ground_truth_requires_folder(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"ground_truth.*not found.*leadscore data generate"):
        read_ground_truth(tmp_path, pd.DataFrame({"lead_id": []}))


def test_window_must_start_after_first_lead() -> None:
    settings = BacktestSettings(evaluation_start=pd.Timestamp("2023-01-01", tz="UTC"))

    with pytest.raises(ConfigError, match="not after the first lead"):
        resolve_window(pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2024-01-01", tz="UTC"), settings)


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ConfigError, match="max_open_days must be at least 1; got 0"):
        BacktestSettings(max_open_days=0)
    with pytest.raises(ConfigError, match="warmup_days must be 0 or more"):
        BacktestSettings(warmup_days=-1)


def test_load_bundle_rejects_unknown_uri(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported model URI 'runs:/abc/model'"):
        load_bundle("runs:/abc/model", "sqlite:///x.db", None, tmp_path)
    with pytest.raises(ConfigError, match="needs --tracking-uri"):
        load_bundle("models:/lead-scorer@champion", None, None, tmp_path)


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_writes_reports_deterministically(
    history_dir: Path, tmp_path: Path, folder_result: BacktestResult
) -> None:
    report = tmp_path / "results" / "routing-backtest.md"
    arguments = ["route", "backtest", "--data", str(history_dir), "--seed", "4", "--out", str(report)]

    result = CliRunner().invoke(cli, arguments)

    assert result.exit_code == 0, result.output
    text = report.read_text("utf-8")
    assert sorted(path.name for path in report.parent.iterdir()) == [
        "routing-backtest.json",
        "routing-backtest.md",
        "routing-backtest.zh-CN.md",
    ]
    assert "round_robin" in result.output
    assert "1.000 x round-robin" in result.output
    assert "leadscore data generate --leads 2500 --seed 5 --months 18" in text
    assert f"leadscore route backtest --data {history_dir} --seed 4 --out {report}" in text
    assert report.with_name("routing-backtest.zh-CN.md").read_text("utf-8").startswith("# 路由回测")
    payload = json.loads(report.with_name("routing-backtest.json").read_text("utf-8"))
    assert payload.pop("command").startswith("leadscore route backtest")
    assert payload == json.loads(json.dumps(result_to_dict(folder_result), default=str))
    assert all(item["max_utilization"] <= 1.0 for item in payload["strategies"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--from", "next week"], "invalid --from 'next week'"),
        (["--model-uri", "models:/lead-scorer@champion", "--bundle", "."], "exclude each other"),
        (["--from", "2025-01-01", "--holdout-months", "3"], "exclude each other"),
    ],
)
def test_cli_rejects_bad_options(history_dir: Path, extra: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["route", "backtest", "--data", str(history_dir), *extra])

    assert result.exit_code == 2
    assert message in result.output


def test_folder_backtest_with_model_bundle(history_dir: Path) -> None:
    from tests.training.scorer_setup import bundle as fitted_bundle

    bundle = fitted_bundle()

    result = run_backtest(history_dir, load_policy(), BacktestSettings(seed=4), bundle=bundle)

    names = [item.strategy for item in result.strategies]
    assert names == ["round_robin", "rules_only", "leadscore", "leadscore_rule_score"]
    assert result.scorer.params["bundle"] == bundle.bundle_version
    # This bundle comes from fit_scorer without a model card, so the training window is unknown.
    assert "model_window_unknown" in [note.code for note in result.notes]
    english = render_report(result, locale="en", command="leadscore route backtest")
    assert "does not state until when the model saw history" in english
    assert all(item.max_utilization <= 1.0 for item in result.strategies)
    assert result.result("leadscore").segment_shares
