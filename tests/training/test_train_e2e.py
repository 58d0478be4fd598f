"""End to end: ``leadscore train`` on a small synthetic history, the gate, ``promote --force``, listing.

One module-scoped store contains the whole story: the first model becomes champion, a model fitted
on shuffled labels is kept out by the gate, and ``promote --force`` overrides the gate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from data.folder import write_table
from leadscore.cli.main import cli
from leadscore.errors import ConfigError
from tests.training import scorer_setup
from tests.training.canonical_history import make_history
from training.ltv_fit import fallback_ltv, ltv_window_hint
from training.model_card import KnownLimit, ModelCard, render_html, render_markdown
from training.plots import PLOT_FILES
from training.registry import CHALLENGER, CHAMPION, MODEL_NAME, TAG_DECISION, version_by_alias
from training.tracking import active_tracking_uri, tracking_client
from training.train import (
    TrainOptions,
    TrainResult,
    calibration_share,
    drop_excluded,
    shuffle_labels_outside,
    split_snapshots,
    train,
)


@dataclass
class Story:
    data_dir: Path
    work_dir: Path
    tracking_uri: str
    first_output: str
    second: TrainResult


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    root = tmp_path_factory.mktemp("e2e")
    data_dir = root / "data"
    tables = make_history(1500, seed=21)
    for name in ("leads", "activities", "stage_changes", "orders"):
        write_table(tables.table(name), data_dir, name)
    work_dir = root / "work"
    tracking_uri = scorer_setup.empty_tracking_uri(root / "store")

    first = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(data_dir),
            "--work-dir",
            str(work_dir),
            "--tracking-uri",
            tracking_uri,
            "--trials",
            "2",
            "--seed",
            "5",
            "--ltv-horizon-days",
            "365",
        ],
    )
    assert first.exit_code == 0, first.output

    second = train(
        TrainOptions(
            data_dir=data_dir,
            work_dir=work_dir,
            tracking_uri=tracking_uri,
            trials=0,
            seed=5,
            feature_config=scorer_setup.FEATURE_CONFIG,
            shuffle_training_labels=True,
        )
    )
    return Story(data_dir, work_dir, tracking_uri, first.output, second)


@pytest.mark.slow
def test_train_cli_registers_first_champion(story: Story) -> None:
    client = tracking_client(story.tracking_uri)

    assert "registered: lead-scorer version 1 (alias challenger)" in story.first_output
    assert "gate: promoted version 1 - no champion yet" in story.first_output
    assert "conversion_auc" in story.first_output
    assert client.get_model_version(MODEL_NAME, "1").tags[TAG_DECISION] == "promoted"


@pytest.mark.slow
def test_run_logs_metrics_plots_and_card(story: Story, tmp_path: Path) -> None:
    client = tracking_client(story.tracking_uri)
    run_id = client.get_model_version(MODEL_NAME, "1").run_id
    assert run_id is not None
    run = client.get_run(run_id)
    with active_tracking_uri(story.tracking_uri):
        artifacts = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path)))

    for name in ("conversion_auc", "conversion_ece", "ltv_gini"):
        assert f"test.model.{name}" in run.data.metrics
    assert "test.logistic.conversion_auc" in run.data.metrics
    assert "test.rules.conversion_auc" in run.data.metrics
    assert run.data.params["trials"] == "2"
    assert run.data.params["feature_config.ltv_horizon_days"] == "365"
    for file_name in PLOT_FILES.values():
        assert (artifacts / "plots" / file_name).stat().st_size > 1000
    for file_name in ("model_card.en.md", "model_card.zh-CN.md", "model_card.en.html", "feature_spec.json"):
        assert (artifacts / "report" / file_name).is_file()
    assert (artifacts / "holdout" / "holdout.parquet").is_file()

    card = json.loads((artifacts / "report" / "model_card.json").read_text(encoding="utf-8"))
    assert card["insufficient_data"] is True
    assert set(card["data_window"]) >= {"start", "end", "cutoff_start", "cutoff_end"}
    assert card["table_rows"]["leads"] == 1500
    assert set(card["metrics"]) >= {"model", "logistic", "rules"}
    assert card["leakage"]["checked"] > 40
    assert card["calibration"]["method"] in {"platt", "isotonic"}
    assert any(limit["key"] == "card.limit.insufficient_data" for limit in card["known_limits"])
    english = (artifacts / "report" / "model_card.en.md").read_text(encoding="utf-8")
    chinese = (artifacts / "report" / "model_card.zh-CN.md").read_text(encoding="utf-8")
    assert "## Test metrics against baselines" in english
    assert "## Leakage probe" in english
    assert "## 已知局限" in chinese
    assert "**数据不足：**" in chinese


@pytest.mark.slow
def test_champion_scores_carry_insufficient_data(story: Story) -> None:
    with active_tracking_uri(story.tracking_uri):
        model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION}")

    scores = model.predict([scorer_setup.open_lead()], params={"as_of": scorer_setup.AS_OF})

    assert scores.loc[0, "flags"]["insufficient_data"] is True
    assert 0.0 < scores.loc[0, "p_convert"] < 1.0


@pytest.mark.slow
def test_gate_keeps_shuffled_model_out(story: Story) -> None:
    client = tracking_client(story.tracking_uri)
    decision = story.second.decision

    assert story.second.model_version == "2"
    assert decision is not None
    assert decision.outcome == "rejected"
    assert decision.champion_version == "1"
    assert "conversion_auc" in decision.reason
    assert decision.challenger_metrics["conversion_auc"] < decision.champion_metrics["conversion_auc"]
    champion = version_by_alias(client, CHAMPION)
    challenger = version_by_alias(client, CHALLENGER)
    assert champion is not None
    assert challenger is not None
    assert str(champion.version) == "1"
    assert str(challenger.version) == "2"
    assert client.get_model_version(MODEL_NAME, "2").tags[TAG_DECISION] == "rejected"


@pytest.mark.slow
def test_promote_force_then_list(story: Story) -> None:
    runner = CliRunner()

    promoted = runner.invoke(
        cli, ["promote", "--force", "--tracking-uri", story.tracking_uri, "--work-dir", str(story.work_dir)]
    )
    listed = runner.invoke(cli, ["models", "list", "--tracking-uri", story.tracking_uri])

    assert promoted.exit_code == 0, promoted.output
    assert "gate: forced version 2" in promoted.output
    assert "FAIL" in promoted.output
    champion = version_by_alias(tracking_client(story.tracking_uri), CHAMPION)
    assert champion is not None
    assert str(champion.version) == "2"
    lines = listed.output.splitlines()
    assert lines[1].split()[:3] == ["2", "challenger,champion", lines[1].split()[2]]
    assert "forced" in lines[1]
    assert lines[2].split()[:2] == ["1", "-"]


# --- units of the orchestration -------------------------------------------------------------------


def test_drop_excluded_checks_names() -> None:
    definitions = scorer_setup.fitted().kept

    kept = drop_excluded(definitions, definitions, ("channel", "lead_age_days"))

    assert [definition.name for definition in kept] == [
        definition.name for definition in definitions if definition.name not in {"channel", "lead_age_days"}
    ]
    with pytest.raises(ConfigError, match=r"exclude_features names unknown feature\(s\) \['chanel'\]"):
        drop_excluded(definitions, definitions, ("chanel",))


def test_fallback_ltv_prefers_complete_windows() -> None:
    frame = pd.DataFrame(
        {
            "converted": [1, 1, 1, 0],
            "value": [100.0, 300.0, 50.0, 999.0],
            "value_complete": [True, True, False, True],
        }
    )

    complete, complete_basis = fallback_ltv(frame)
    observed, observed_basis = fallback_ltv(frame.assign(value_complete=False))
    unit, unit_basis = fallback_ltv(frame.assign(value=0.0))

    assert complete == 200.0
    assert "complete window" in complete_basis
    assert observed == 150.0
    assert "underestimates" in observed_basis
    assert unit == 1.0
    assert "expected value equals p_convert" in unit_basis


def test_shuffle_keeps_test_rows() -> None:
    frame = pd.DataFrame(
        {
            "converted": np.arange(10) % 2,
            "value": np.arange(10, dtype=np.float64),
            "label_complete": True,
            "value_complete": True,
        }
    )
    keep = np.array([7, 8, 9])

    shuffled = shuffle_labels_outside(frame, keep, seed=3)

    assert shuffled["value"].iloc[7:].tolist() == [7.0, 8.0, 9.0]
    assert sorted(shuffled["value"].iloc[:7].tolist()) == [float(i) for i in range(7)]
    assert shuffled["value"].iloc[:7].tolist() != [float(i) for i in range(7)]
    assert (shuffled["converted"] == (shuffled["value"] % 2)).all()


def _card(feature: str) -> ModelCard:
    return ModelCard(
        name="lead-scorer",
        bundle_version="v1",
        created_at="2025-01-01T00:00:00+00:00",
        data_window={"start": "2023-01-01", "end": "2024-12-31", "cutoff_start": "a", "cutoff_end": "b"},
        horizons={"horizon_days": 90, "ltv_horizon_days": 365},
        table_rows={"leads": 10},
        fold_rows={"train": 6, "test": 2},
        fold_boundaries={"test": "2024-10-01"},
        test_positive_rate=0.25,
        metrics={"model": {"conversion_auc": 0.8}, "logistic": {"conversion_auc": 0.7}},
        calibration={"method": "platt", "ece_before": 0.05, "ece_after": 0.03, "prior_weight": 0.2},
        leakage={"checked": 3, "excluded": [{"feature": feature, "reason": "AUC 0.99"}]},
        ltv={"note": "no buyers", "fallback": 1.0, "fallback_basis": "no revenue recorded"},
        features=[feature, "channel"],
        insufficient_data=True,
        data_sufficiency={"level": "insufficient_data"},
        known_limits=[
            KnownLimit("card.limit.calibration", {"ece": "0.0300"}),
            KnownLimit("card.limit.no_ltv_model"),
        ],
    )


def test_model_card_renders_both_locales() -> None:
    card = _card("<script>alert(1)</script>")

    english = render_markdown(card, "en")
    chinese = render_markdown(card, "zh-CN")
    page = render_html(card, "zh-CN")

    assert english.startswith("# Model card: lead-scorer v1")
    assert "**Insufficient data:**" in english
    assert "| conversion_auc | 0.8000 | 0.7000 |" in english
    assert "above the 0.02 target" in english
    assert "No LTV model (no buyers). Every lead gets ltv 1.00: the no revenue recorded." in english
    assert "# 模型卡片：lead-scorer v1" in chinese
    assert "高于 0.02 的目标" in chinese
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert ModelCard.from_dict(card.to_dict()) == card


def test_train_cli_errors_name_the_fix(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    tables = make_history(150, seed=2)
    for name in ("leads", "activities", "stage_changes", "orders"):
        write_table(tables.table(name), data_dir, name)
    work = ["--work-dir", str(tmp_path / "work")]
    runner = CliRunner()

    too_little = runner.invoke(cli, ["train", "--data", str(data_dir), "--trials", "0", *work])
    bad_metric = runner.invoke(cli, ["train", "--data", str(data_dir), "--gate-metric", "accuracy", *work])
    no_model = runner.invoke(cli, ["promote", *work])

    assert too_little.exit_code == 2
    assert "error: not enough history to train a conversion model" in too_little.output
    assert "at least 200 are needed" in too_little.output
    assert bad_metric.exit_code == 2
    assert "error: invalid gate settings: unknown gate metric(s) ['accuracy']" in bad_metric.output
    assert no_model.exit_code == 2
    assert "has no 'challenger' version in this tracking store; run 'leadscore train --data DIR' first" in (
        no_model.output
    )


def _cutoffs_over(days: int) -> pd.DataFrame:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    middle = start + pd.Timedelta(days=days / 2)
    return pd.DataFrame({"cutoff": [start, middle, start + pd.Timedelta(days=days)]})


def test_ltv_hint_names_fitting_window() -> None:
    short = ltv_window_hint(_cutoffs_over(456), 365)
    tiny = ltv_window_hint(_cutoffs_over(60), 365)
    fits = ltv_window_hint(_cutoffs_over(3000), 365)

    assert "spans 456 days" in short
    assert "--ltv-horizon-days 120" in short
    assert "--ltv-horizon-days" not in tiny
    assert "longer history" in tiny
    assert "--ltv-horizon-days" not in fits


def _snapshot_frame(rows: int) -> pd.DataFrame:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    return pd.DataFrame(
        {
            "lead_id": [f"L{index}" for index in range(rows)],
            "cutoff": [start + pd.Timedelta(hours=12 * index) for index in range(rows)],
            "converted": [index % 7 == 0 for index in range(rows)],
        }
    )


def test_calibration_rows_size_the_fold(tmp_path: Path) -> None:
    frame = _snapshot_frame(4000)
    options = TrainOptions(data_dir=tmp_path, calibration_rows=200)

    split = split_snapshots(options, frame)

    assert calibration_share(options, len(frame)) == pytest.approx(0.05)
    assert len(split.calibration) == 200
    assert frame["cutoff"].iloc[split.calibration].min() > frame["cutoff"].iloc[split.valid].max()
    assert frame["cutoff"].iloc[split.calibration].max() < frame["cutoff"].iloc[split.test].min()


def test_calibration_rows_too_many_rejected(tmp_path: Path) -> None:
    options = TrainOptions(data_dir=tmp_path, calibration_rows=3000)

    with pytest.raises(ConfigError, match="calibration_rows 3000 is 75% of the 4000 snapshot rows"):
        calibration_share(options, 4000)
