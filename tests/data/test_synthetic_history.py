"""End-to-end tests of the synthetic CRM history: contract, determinism, realism and signal."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from data.folder import CanonicalTables, read_data_dir
from data.stages import FUNNEL
from data.synthetic import GeneratorConfig, generate_history
from data.synthetic.tables import TRUTH_COLUMNS
from data.validate import empty_table, validate_tables
from leadscore.cli.main import cli
from leadscore.errors import ConfigError

LOCAL = "Asia/Shanghai"
FUNNEL_ORDER = {stage.code: stage.order for stage in FUNNEL}


@dataclass
class History:
    """A generated folder with its tables, ground truth and config."""

    folder: Path
    config: GeneratorConfig
    tables: CanonicalTables
    truth: pd.DataFrame
    rep_truth: pd.DataFrame
    generator: dict[str, object]

    @property
    def end(self) -> pd.Timestamp:
        return pd.Timestamp(str(self.generator["history"]["end"]))  # type: ignore[index]

    def leads_with_truth(self) -> pd.DataFrame:
        return self.tables.leads.merge(self.truth, on="lead_id", validate="one_to_one")


def _generate(folder: Path, **settings: object) -> History:
    config = GeneratorConfig.model_validate(settings)
    generate_history(config, folder)
    return History(
        folder=folder,
        config=config,
        tables=read_data_dir(folder),
        truth=pd.read_parquet(folder / "ground_truth" / "leads.parquet"),
        rep_truth=pd.read_parquet(folder / "ground_truth" / "reps.parquet"),
        generator=json.loads((folder / "ground_truth" / "generator.json").read_text("utf-8")),
    )


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """8,000 leads over the default 18 months, generated in chunks of 3,000."""
    return _generate(tmp_path_factory.mktemp("synthetic") / "history", leads=8000, seed=42, chunk_size=3000)


@pytest.fixture(scope="module")
def large_history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """40,000 leads, enough for conversion-rate comparisons between segments."""
    return _generate(tmp_path_factory.mktemp("synthetic") / "large", leads=40_000, seed=7)


def _digests(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_output_passes_validation(history: History) -> None:
    reports = validate_tables(history.tables)
    for name, report in reports.items():
        assert report.ok, report.format()
        assert report.rows == len(history.tables.table(name))
    assert len(history.tables.leads) == 8000
    assert len(history.tables.reps) == history.config.team_size


def test_tables_have_storage_dtypes(history: History) -> None:
    for name in ("leads", "activities", "stage_changes", "orders", "reps"):
        expected = empty_table(name).dtypes
        actual = history.tables.table(name).dtypes
        for column, dtype in expected.items():
            assert str(actual[column]) == str(dtype), f"{name}.{column}"


def test_declared_attributes(history: History) -> None:
    attributes = {attribute.name: attribute for attribute in history.tables.attributes}
    assert set(attributes) == {"contact_title", "lead_rating"}
    assert attributes["lead_rating"].post_contact
    assert not attributes["contact_title"].post_contact
    assert set(history.tables.leads["lead_rating"].dropna().unique()) == {"A", "B", "C", "D"}


def test_ground_truth_kept_apart(history: History) -> None:
    truth_only = set(TRUTH_COLUMNS) - {"lead_id"}
    for name in ("leads", "activities", "stage_changes", "orders", "reps"):
        assert not truth_only & set(history.tables.table(name).columns), name
    assert list(history.truth.columns) == list(TRUTH_COLUMNS)
    assert history.truth["lead_id"].tolist() == history.tables.leads["lead_id"].tolist()
    assert set(history.rep_truth["rep_id"]) == set(history.tables.reps["rep_id"])
    assert history.generator["seed"] == 42
    config = history.generator["config"]
    assert isinstance(config, dict)
    assert config["leads"] == 8000
    assert set(history.generator["drift"]) >= {"start", "full_at", "conversion_shift"}  # type: ignore[arg-type]


def test_same_seed_byte_identical(tmp_path: Path) -> None:
    generate_history(GeneratorConfig(leads=1500, seed=3, chunk_size=700), tmp_path / "first")
    generate_history(GeneratorConfig(leads=1500, seed=3, chunk_size=700), tmp_path / "second")
    first, second = _digests(tmp_path / "first"), _digests(tmp_path / "second")
    assert "leads.parquet" in first
    assert "ground_truth/generator.json" in first
    assert first == second


def test_other_seed_differs(tmp_path: Path) -> None:
    generate_history(GeneratorConfig(leads=500, seed=1), tmp_path / "one")
    generate_history(GeneratorConfig(leads=500, seed=2), tmp_path / "two")
    one = pd.read_parquet(tmp_path / "one" / "leads.parquet")
    two = pd.read_parquet(tmp_path / "two" / "leads.parquet")
    assert not one["channel"].equals(two["channel"])


def test_chunk_size_changes_nothing(tmp_path: Path) -> None:
    generate_history(GeneratorConfig(leads=2000, seed=5, chunk_size=2000), tmp_path / "whole")
    generate_history(GeneratorConfig(leads=2000, seed=5, chunk_size=333), tmp_path / "pieces")
    for name in ("leads", "activities", "stage_changes", "orders", "reps"):
        whole = pd.read_parquet(tmp_path / "whole" / f"{name}.parquet")
        pieces = pd.read_parquet(tmp_path / "pieces" / f"{name}.parquet")
        pd.testing.assert_frame_equal(whole, pieces, obj=name)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "whole" / "ground_truth" / "leads.parquet"),
        pd.read_parquet(tmp_path / "pieces" / "ground_truth" / "leads.parquet"),
    )


def test_refuses_folder_with_tables(tmp_path: Path) -> None:
    generate_history(GeneratorConfig(leads=50, seed=1), tmp_path)
    with pytest.raises(ConfigError, match=r"already contains leads\.parquet.*pass overwrite=True"):
        generate_history(GeneratorConfig(leads=50, seed=1), tmp_path)
    generate_history(GeneratorConfig(leads=60, seed=1), tmp_path, overwrite=True)
    assert len(pd.read_parquet(tmp_path / "leads.parquet")) == 60


def test_realistic_headline_numbers(large_history: History) -> None:
    leads = large_history.tables.leads
    won = large_history.tables.stage_changes.query("stage == 'won'")
    conversion = won["lead_id"].nunique() / len(leads)
    assert 0.05 <= conversion <= 0.12
    activities_per_lead = len(large_history.tables.activities) / len(leads)
    assert 8.0 <= activities_per_lead <= 12.0
    assert set(leads["channel"].unique()) == set(large_history.config.channels)
    assert set(leads["region"].unique()) == set(large_history.config.regions)
    assert set(leads["company_size"].dropna().unique()) == set(large_history.config.sizes)


def test_first_contact_delay_fat_tail(large_history: History) -> None:
    delays = large_history.truth["first_contact_delay_hours"].dropna()
    assert 1.0 <= delays.median() <= 24.0
    assert 0.05 <= (delays > 48).mean() <= 0.2
    assert (delays > 120).mean() >= 0.02
    assert (delays >= 0).all()


def test_first_contact_matches_activities(history: History) -> None:
    activities = history.tables.activities
    outbound = activities[activities["direction"] == "outbound"]
    first_outbound = outbound.groupby("lead_id")["occurred_at"].min()
    merged = history.leads_with_truth().set_index("lead_id")
    contacted = merged[merged["first_contact_delay_hours"].notna()]
    delay = (first_outbound.reindex(contacted.index) - contacted["created_at"]).dt.total_seconds() / 3600
    in_window = delay.notna()
    assert in_window.mean() > 0.99
    np.testing.assert_allclose(
        delay[in_window], contacted.loc[in_window, "first_contact_delay_hours"], atol=1e-3
    )


def test_conversion_follows_latent_quality(large_history: History) -> None:
    truth = large_history.truth
    deciles = pd.qcut(truth["latent_quality"], 5, labels=False)
    rates = truth.groupby(deciles)["converted"].mean()
    assert rates.is_monotonic_increasing
    assert rates.iloc[-1] > 4 * rates.iloc[0]


def test_channel_and_size_carry_signal(large_history: History) -> None:
    merged = large_history.leads_with_truth()
    by_channel = merged.groupby("channel")["converted"].mean()
    assert by_channel["转介绍"] > 2 * by_channel["抖音"]
    by_size = merged.groupby("company_size")["converted"].mean()
    assert by_size["500+"] > 1.8 * by_size["1-20"]


def test_slow_first_contact_lowers_conversion(large_history: History) -> None:
    truth = large_history.truth
    fast = truth[truth["first_contact_delay_hours"] <= 4]
    slow = truth[truth["first_contact_delay_hours"] > 48]
    assert len(slow) > 1000
    assert fast["converted"].mean() > 1.4 * slow["converted"].mean()
    assert fast["p_convert_true"].mean() > slow["p_convert_true"].mean()
    never = truth[~truth["contacted"]]
    assert len(never) > 0
    assert not never["converted"].any()


def test_senior_advantage_grows_with_value(large_history: History) -> None:
    truth = large_history.truth
    gap = truth["p_convert_senior"] - truth["p_convert_newcomer"]
    high = gap[truth["value_index"] > 0.7].mean()
    low = gap[truth["value_index"] < 0.2].mean()
    assert high > 0.04
    assert abs(low) < 0.015
    assert high > 4 * abs(low)


def test_owner_tier_changes_outcomes(large_history: History) -> None:
    truth = large_history.truth
    high_value = truth[truth["value_index"] > 0.6]
    by_tier = high_value.groupby("owner_tier")["converted"].mean()
    assert by_tier["senior"] > by_tier["newcomer"]


def test_drift_shifts_channels_and_conversion(large_history: History) -> None:
    merged = large_history.leads_with_truth()
    before = merged[merged["drift_weight"] == 0]
    after = merged[merged["drift_weight"] == 1]
    assert len(after) > 3000
    douyin_before = (before["channel"] == "抖音").mean()
    douyin_after = (after["channel"] == "抖音").mean()
    assert douyin_after > douyin_before + 0.08
    assert after["p_convert_true"].mean() < 0.85 * before["p_convert_true"].mean()
    start = pd.Timestamp(str(large_history.generator["drift"]["start"]))  # type: ignore[index]
    assert (merged.loc[merged["created_at"] < start, "drift_weight"] == 0).all()


def test_drift_can_be_switched_off(tmp_path: Path) -> None:
    history = _generate(tmp_path / "still", leads=1000, seed=1, drift={"enabled": False})
    assert (history.truth["drift_weight"] == 0).all()


def test_stage_paths_are_coherent(history: History) -> None:
    stages = history.tables.stage_changes
    leads = history.tables.leads.set_index("lead_id")
    firsts = stages.groupby("lead_id", sort=False).head(1).set_index("lead_id")
    assert (firsts["stage"] == "lead").all()
    assert firsts["changed_at"].equals(leads.loc[firsts.index, "created_at"].rename("changed_at"))
    assert set(stages["lead_id"]) == set(leads.index)

    for lead_id, group in stages.groupby("lead_id", sort=False):
        assert group["changed_at"].is_monotonic_increasing, lead_id
        codes = group["stage"].tolist()
        assert not ({"won", "lost"} <= set(codes)), lead_id
        funnel = [code for code in codes if code != "lost"]
        orders = [FUNNEL_ORDER[code] for code in funnel]
        assert orders == list(range(len(orders))), lead_id
        if "lost" in codes:
            assert codes[-1] == "lost", lead_id


def test_nothing_after_history_end(history: History) -> None:
    end = history.end.tz_localize("UTC") if history.end.tzinfo is None else history.end
    assert (history.tables.leads["created_at"] < end).all()
    assert (history.tables.stage_changes["changed_at"] < end).all()
    assert (history.tables.activities["occurred_at"] < end).all()
    assert (history.tables.orders["ordered_at"] < end).all()
    late_wins = history.truth["converted"] & (history.truth["won_at"] >= end)
    assert late_wins.any()
    won_ids = set(history.tables.stage_changes.query("stage == 'won'")["lead_id"])
    assert not won_ids & set(history.truth.loc[late_wins, "lead_id"])


def test_activities_realistic(history: History) -> None:
    activities = history.tables.activities
    leads = history.tables.leads.set_index("lead_id")
    created = leads.loc[activities["lead_id"], "created_at"].to_numpy()
    assert (activities["occurred_at"].to_numpy() >= created).all()
    intake = activities.groupby("lead_id").head(1)
    assert (intake["occurred_at"].to_numpy() == leads.loc[intake["lead_id"], "created_at"].to_numpy()).all()
    assert (intake["direction"] == "inbound").all()
    assert set(activities["type"]) == {"call", "wechat", "email", "visit", "demo", "quote", "form", "other"}

    outbound = activities[activities["direction"] == "outbound"]
    local = outbound["occurred_at"].dt.tz_convert(LOCAL)
    assert local.dt.hour.between(9, 19).all()
    assert (local.dt.day_of_week != 6).all()
    assert outbound["rep_id"].notna().all()
    owners = leads.loc[outbound["lead_id"], "owner_rep_id"].to_numpy()
    assert (outbound["rep_id"].to_numpy() == owners).all()
    forms = activities[(activities["type"] == "form") & (activities["direction"] == "inbound")]
    assert forms["rep_id"].isna().all()


def test_orders_link_to_leads(history: History) -> None:
    orders = history.tables.orders
    leads = history.tables.leads
    assert set(orders["customer_id"]) <= set(leads["customer_id"].dropna())
    assert (orders["currency"] == "CNY").all()
    assert (orders["amount"] < 0).any()
    positive = orders.loc[orders["amount"] > 0, "amount"]
    assert positive.max() > 20 * positive.median()

    first_order = orders.groupby("customer_id")["ordered_at"].min().rename("first_order")
    customers = leads.dropna(subset=["customer_id"]).set_index("customer_id")[["lead_id", "created_at"]]
    frame = customers.join(first_order, how="inner")
    frame = frame.join(history.truth.set_index("lead_id")["won_at"], on="lead_id")
    existing = frame["first_order"] < frame["created_at"]
    assert existing.sum() > 100
    new = frame[~existing]
    assert len(new) > 100
    assert new["won_at"].notna().all()
    assert (new["first_order"] >= new["won_at"]).all()


def test_refunds_follow_their_order(history: History) -> None:
    orders = history.tables.orders
    for customer, group in orders.groupby("customer_id"):
        refunds = group[group["amount"] < 0]
        if refunds.empty:
            continue
        assert group["amount"].sum() >= -1e-6, customer
        assert group.loc[group["amount"] > 0, "ordered_at"].min() < refunds["ordered_at"].min(), customer


def test_reps_roster(history: History) -> None:
    reps = history.tables.reps.set_index("rep_id")
    assert set(reps["tier"]) == {"senior", "regular", "newcomer"}
    assert (reps["capacity"] > 0).all()
    assert reps["regions"].map(len).min() >= 1
    assert reps["skills"].map(len).between(1, 3).all()
    assert (~reps["active"]).any()
    heads = reps[reps["manager_id"].isna()]
    assert len(heads) == 1
    assert heads["tier"].iloc[0] == "senior"
    leads = history.tables.leads
    owner_hired = reps.loc[leads["owner_rep_id"], "hired_at"].to_numpy()
    assert (owner_hired <= leads["created_at"].to_numpy()).all()
    left = history.rep_truth.set_index("rep_id")["left_at"]
    owner_left = left.loc[leads["owner_rep_id"]].to_numpy()
    assert (pd.isna(owner_left) | (owner_left > leads["created_at"].to_numpy())).all()


def test_cli_generate(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["data", "generate", "--leads", "300", "--seed", "4", "--out", str(tmp_path), "--months", "6",
         "--start", "2025-03-01", "--chunk-size", "100"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "wrote 300 leads" in result.output
    generator = json.loads((tmp_path / "ground_truth" / "generator.json").read_text("utf-8"))
    assert generator["config"]["start"] == "2025-03-01"
    assert generator["history"]["end"].startswith("2025-08-31T16:00")

    again = runner.invoke(cli, ["data", "generate", "--leads", "300", "--out", str(tmp_path)])
    assert again.exit_code == 2
    assert "already contains" in again.output

    bad = runner.invoke(
        cli, ["data", "generate", "--leads", "10", "--months", "0", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2
    assert "--months" in bad.output
