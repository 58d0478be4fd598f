"""Model registry and promotion gate: challenger and champion aliases, decisions, listing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner

from leadscore.cli.main import cli
from leadscore.errors import ConfigError, ModelNotFoundError
from tests.conftest import postgres_url_or_skip
from tests.training import scorer_setup
from training.bundle import ScorerBundle
from training.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    TAG_BUNDLE_VERSION,
    TAG_DECISION,
    GateConfig,
    compare_metrics,
    decide,
    gate_metrics,
    list_versions,
    register_challenger,
    require_version_by_alias,
    run_gate,
    version_by_alias,
)
from training.scorer import EXAMPLE_LEAD
from training.tracking import (
    active_tracking_uri,
    default_artifact_location,
    ensure_experiment,
    log_scorer_model,
    normalize_tracking_uri,
    tracking_client,
)

# --- the decision rule ----------------------------------------------------------------------------


def test_gate_passes_within_tolerance() -> None:
    config = GateConfig(tolerance=0.01)
    challenger = {"conversion_auc": 0.795, "conversion_ece": 0.028, "ltv_gini": 0.60}
    champion = {"conversion_auc": 0.800, "conversion_ece": 0.020, "ltv_gini": 0.59}

    comparisons = compare_metrics(challenger, champion, config)

    assert [comparison.passed for comparison in comparisons] == [True, True, True]


def test_gate_fails_on_each_direction() -> None:
    config = GateConfig(tolerance=0.005)
    champion = {"conversion_auc": 0.80, "conversion_ece": 0.02, "ltv_gini": 0.60}

    lower_auc = compare_metrics({**champion, "conversion_auc": 0.79}, champion, config)
    higher_ece = compare_metrics({**champion, "conversion_ece": 0.03}, champion, config)

    assert [comparison.passed for comparison in lower_auc] == [False, True, True]
    assert [comparison.passed for comparison in higher_ece] == [True, False, True]


def test_gate_handles_undefined_metrics() -> None:
    config = GateConfig()
    comparisons = compare_metrics(
        {"conversion_auc": 0.8, "conversion_ece": 0.02}, {"conversion_auc": 0.8}, config
    )
    missing_for_challenger = compare_metrics({}, {"conversion_auc": 0.8}, config)

    by_name = {comparison.name: comparison for comparison in comparisons}
    assert by_name["conversion_ece"].passed
    assert by_name["conversion_ece"].note == "undefined for the champion"
    assert by_name["ltv_gini"].passed
    assert by_name["ltv_gini"].note == "undefined for both models on this holdout"
    assert not missing_for_challenger[0].passed


def test_decide_first_model_and_forced() -> None:
    config = GateConfig()
    worse = {"conversion_auc": 0.5, "conversion_ece": 0.2, "ltv_gini": 0.0}
    better = {"conversion_auc": 0.8, "conversion_ece": 0.02, "ltv_gini": 0.5}

    first = decide("1", None, worse, {}, config)
    rejected = decide("2", "1", worse, better, config)
    forced = decide("2", "1", worse, better, config, force=True)

    assert first.promoted
    assert first.outcome == "promoted"
    assert "first version becomes champion" in first.reason
    assert not rejected.promoted
    assert rejected.outcome == "rejected"
    assert "conversion_auc (0.5000 vs 0.8000, tolerance 0.005)" in rejected.reason
    assert forced.promoted
    assert forced.outcome == "forced"
    assert "forced by the operator" in forced.reason
    assert forced.to_dict()["champion_metrics"] == better


def test_gate_config_rejects_unknown_metric() -> None:
    with pytest.raises(ValueError, match=r"unknown gate metric\(s\) \['accuracy'\]"):
        GateConfig(metrics=("conversion_auc", "accuracy"))
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        GateConfig(tolerance=-0.1)
    assert GateConfig(tolerances={"ltv_gini": 0.05}).tolerance_for("ltv_gini") == 0.05


def test_gate_metrics_use_marked_rows() -> None:
    holdout = pd.DataFrame(
        {
            "converted": [1, 0, 1, 0, 1, 1, 0],
            "value": [100.0, 0.0, 50.0, 0.0, 500.0, 20.0, 0.0],
            "label_complete": [True] * 7,
            "value_complete": [True, True, True, True, True, True, False],
            "conversion_test": [True, True, True, True, False, False, False],
            "ltv_test": [False, False, False, False, True, True, True],
        }
    )
    scores = pd.DataFrame(
        {
            "p_convert": [0.9, 0.1, 0.6, 0.4, 0.5, 0.5, 0.5],
            "ltv": [1.0, 1.0, 1.0, 1.0, 900.0, 10.0, 5.0],
        }
    )
    scores["expected_value"] = scores["p_convert"] * scores["ltv"]

    result = gate_metrics(scores, holdout)

    assert result["conversion_auc"] == 1.0
    assert result["ltv_gini"] == pytest.approx(1.0)
    assert "conversion_ece" in result
    with pytest.raises(ConfigError, match="3 score rows but 7 holdout rows"):
        gate_metrics(scores.head(3), holdout)


# --- tracking URIs --------------------------------------------------------------------------------


def test_tracking_uri_normalization(tmp_path: Path) -> None:
    assert normalize_tracking_uri("postgresql://postgres@127.0.0.1:5432/mlflow") == (
        "postgresql+psycopg://postgres@127.0.0.1:5432/mlflow"
    )
    assert normalize_tracking_uri("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"
    with pytest.raises(ConfigError, match="unsupported tracking URI 'ftp://host/x'"):
        normalize_tracking_uri("ftp://host/x")
    with pytest.raises(ConfigError, match="has no database file"):
        normalize_tracking_uri("sqlite://")
    location = default_artifact_location(f"sqlite:///{tmp_path}/store/mlflow.db", tmp_path / "work")
    assert location == (tmp_path / "store" / "mlartifacts").as_uri()
    assert default_artifact_location("http://127.0.0.1:5000", tmp_path) is None


# --- registry against real stores -----------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def tracking_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty MLflow store: a SQLite file, or a throwaway database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield scorer_setup.empty_tracking_uri(tmp_path / "store")
        return

    import sqlalchemy as sa

    base_url = sa.engine.make_url(postgres_url_or_skip())
    database = f"mlflow_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    yield base_url.set(drivername="postgresql+psycopg", database=database).render_as_string(
        hide_password=False
    )
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE "{database}" WITH (FORCE)'))
    admin.dispose()


def _log_and_register(uri: str, bundle: ScorerBundle, folder: Path) -> str:
    client = tracking_client(uri)
    experiment_id = ensure_experiment(client, "registry-test", default_artifact_location(uri, folder))
    bundle_dir = bundle.save(folder / f"bundle-{uuid.uuid4().hex[:8]}")
    with active_tracking_uri(uri), mlflow.start_run(experiment_id=experiment_id) as run:
        info = log_scorer_model(bundle_dir, EXAMPLE_LEAD)
    version = register_challenger(
        client, info.model_uri, run.info.run_id, tags={TAG_BUNDLE_VERSION: bundle.bundle_version}
    )
    return str(version.version)


def test_gate_keeps_worse_challenger_out(
    tracking_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = tracking_client(tracking_uri)
    tables = scorer_setup.history()
    holdout = scorer_setup.holdout(shuffled=True)
    good = scorer_setup.bundle()
    worse = scorer_setup.bundle(shuffled=True)

    first = _log_and_register(tracking_uri, good, tmp_path)
    first_decision = run_gate(
        tracking_uri,
        challenger_version=first,
        tables=tables,
        holdout=holdout,
        config=GateConfig(),
        workspace=tmp_path / "g1",
    )
    second = _log_and_register(tracking_uri, worse, tmp_path)
    with caplog.at_level("INFO", logger="training.registry"):
        second_decision = run_gate(
            tracking_uri,
            challenger_version=second,
            tables=tables,
            holdout=holdout,
            config=GateConfig(),
            workspace=tmp_path / "g2",
        )

    assert first_decision.promoted
    assert first_decision.champion_version is None
    assert not second_decision.promoted
    assert second_decision.champion_version == first
    assert (
        second_decision.challenger_metrics["conversion_auc"]
        < second_decision.champion_metrics["conversion_auc"] - 0.05
    )
    assert str(require_version_by_alias(client, CHAMPION).version) == first
    assert str(require_version_by_alias(client, CHALLENGER).version) == second

    tags = client.get_model_version(MODEL_NAME, second).tags
    assert tags[TAG_DECISION] == "rejected"
    assert tags["gate.champion_version"] == first
    assert tags["gate.metric.conversion_auc.passed"] == "false"
    assert float(tags["gate.metric.conversion_auc.champion"]) == pytest.approx(
        second_decision.champion_metrics["conversion_auc"], abs=1e-6
    )
    assert client.get_model_version(MODEL_NAME, first).tags[TAG_DECISION] == "promoted"
    assert any("promotion gate: rejected version " + second in record.message for record in caplog.records)

    forced = run_gate(
        tracking_uri,
        challenger_version=second,
        tables=tables,
        holdout=holdout,
        config=GateConfig(),
        force=True,
        workspace=tmp_path / "g3",
    )
    assert forced.outcome == "forced"
    assert str(require_version_by_alias(client, CHAMPION).version) == second
    assert client.get_model_version(MODEL_NAME, second).tags[TAG_DECISION] == "forced"

    listed = list_versions(client)
    assert [summary.version for summary in listed] == [second, first]
    assert listed[0].aliases == (CHALLENGER, CHAMPION)
    assert listed[1].aliases == ()
    assert listed[0].bundle_version == worse.bundle_version


def test_models_list_shows_versions_and_aliases(tmp_path: Path) -> None:
    uri = scorer_setup.empty_tracking_uri(tmp_path / "store")
    runner = CliRunner()

    empty = runner.invoke(cli, ["models", "list", "--tracking-uri", uri])
    first = _log_and_register(uri, scorer_setup.bundle(), tmp_path)
    run_gate(
        uri,
        challenger_version=first,
        tables=scorer_setup.history(),
        holdout=scorer_setup.holdout(),
        config=GateConfig(),
        workspace=tmp_path / "gate",
    )
    second = _log_and_register(uri, scorer_setup.bundle(shuffled=True), tmp_path)
    listed = runner.invoke(cli, ["models", "list", "--tracking-uri", uri])

    assert empty.exit_code == 0, empty.output
    assert "no lead-scorer versions" in empty.output
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split()[:3] == ["version", "aliases", "created"]
    assert lines[1].split()[:2] == [second, "challenger"]
    assert lines[2].split()[:2] == [first, "champion"]
    assert "promoted" in lines[2]
    assert scorer_setup.bundle().bundle_version in lines[2]
    assert "conversion_auc=" in lines[2]


def test_missing_alias_names_the_fix(tmp_path: Path) -> None:
    client = tracking_client(scorer_setup.empty_tracking_uri(tmp_path / "store"))

    assert version_by_alias(client, CHAMPION) is None
    with pytest.raises(
        ModelNotFoundError, match=r"has no 'champion' version .* run 'leadscore train --data DIR' first"
    ):
        require_version_by_alias(client, CHAMPION)


def test_holdout_has_both_classes() -> None:
    holdout = scorer_setup.holdout()

    assert holdout["conversion_test"].any()
    assert holdout["ltv_test"].any()
    assert holdout["converted"].nunique() == 2
    assert not holdout.duplicated(["lead_id", "cutoff"]).any()
    assert set(holdout.columns) == {
        "lead_id",
        "cutoff",
        "converted",
        "value",
        "label_complete",
        "value_complete",
        "conversion_test",
        "ltv_test",
    }
