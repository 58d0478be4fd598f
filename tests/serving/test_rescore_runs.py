"""Batch rescoring end to end: a model trained once per module, runs on the local and Dask engines.

The model is trained with ``training.train.train`` on a small synthetic history and registered
as champion in a temporary MLflow store, as ``leadscore train`` does. Crash tests stop a run at
chosen points through the fault hook (and once with ``kill -9`` of a real process), start it
again with the same arguments and compare the output with an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from data.folder import read_data_dir, write_attributes, write_table
from features.config import FeatureConfig
from features.spine import scoring_spine
from leadscore.cli.main import cli
from leadscore.errors import ConfigError, ConflictError
from serving.rescore import RescoreOptions, RescoreSummary, rescore
from serving.rescore.checkpoint import MANIFEST_FILE
from serving.rescore.chunk_scoring import (
    CLOSED_BEFORE_AS_OF,
    DUPLICATE_LEAD_ID,
    INVALID_NUMBER,
    MISSING_CREATED_AT,
    MISSING_EVENT_TIME,
    MISSING_LEAD_ID,
    STAGE_CHUNK_RECORDED,
    STAGE_CHUNK_WRITTEN,
    STAGE_SCORES_TEMP_WRITTEN,
    FaultHook,
)
from serving.rescore.run import STAGE_CHUNK_ROUTED
from tests.training.canonical_history import make_history
from tests.training.scorer_setup import empty_tracking_uri
from training.bundle import ScorerBundle
from training.scorer import score_tables
from training.train import TrainOptions, train

REPOSITORY = Path(__file__).resolve().parents[2]
AS_OF = pd.Timestamp("2024-12-01T00:00:00+08:00")
CHUNK_SIZE = 150
TABLES = ("leads", "activities", "stage_changes", "orders", "reps")
SPARK_RESULT_TYPE = "lead_id string, p_convert double, ltv double, expected_value double, grade string"


class SimulatedCrashError(Exception):
    """Raised by a fault hook to stop a run the way a crash would."""


@dataclass(frozen=True)
class Trained:
    """The history, the champion registered in MLflow and its bundle folder."""

    data_dir: Path
    tracking_uri: str
    bundle_dir: Path
    bundle: ScorerBundle


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("rescore-model")
    data_dir = root / "data"
    history = make_history(1500, seed=7)
    for table in TABLES:
        write_table(history.table(table), data_dir, table)
    write_attributes(data_dir, list(history.attributes))
    tracking_uri = empty_tracking_uri(root / "mlflow")
    result = train(
        TrainOptions(
            data_dir=data_dir,
            work_dir=root / "work",
            tracking_uri=tracking_uri,
            trials=0,
            seed=11,
            num_threads=1,
            feature_config=FeatureConfig(ltv_horizon_days=365),
        )
    )
    assert result.decision is not None and result.decision.promoted, result.decision
    return Trained(data_dir, tracking_uri, result.bundle_dir, result.bundle)


def options_for(
    trained: Trained, tmp_path: Path, name: str = "scores.parquet", **overrides: object
) -> RescoreOptions:
    values: dict[str, object] = {
        "data_dir": trained.data_dir,
        "as_of": AS_OF,
        "out": tmp_path / "out" / name,
        "model_uri": str(trained.bundle_dir),
        "tracking_uri": trained.tracking_uri,
        "work_dir": tmp_path / "work",
        "chunk_size": CHUNK_SIZE,
        "progress": "off",
    }
    values.update(overrides)
    return RescoreOptions.model_validate(values)


@pytest.fixture(scope="module")
def reference(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> tuple[RescoreSummary, Path]:
    """An uninterrupted local run that crash tests compare against."""
    folder = tmp_path_factory.mktemp("rescore-reference")
    options = options_for(trained, folder, keep_checkpoints=True)
    return rescore(options), folder / "out"


def read_outputs(out_dir: Path, stem: str = "scores") -> tuple[pd.DataFrame, pd.DataFrame]:
    scores = pd.read_parquet(out_dir / f"{stem}.parquet")
    rejects = pd.read_parquet(out_dir / f"{stem}.rejects.parquet")
    return scores, rejects


def assert_same_outputs(out_dir: Path, expected_dir: Path) -> None:
    scores, rejects = read_outputs(out_dir)
    expected_scores, expected_rejects = read_outputs(expected_dir)
    pd.testing.assert_frame_equal(scores, expected_scores)
    pd.testing.assert_frame_equal(rejects, expected_rejects)
    drift = json.loads((out_dir / "scores.parquet.drift.json").read_text("utf-8"))
    expected_drift = json.loads((expected_dir / "scores.parquet.drift.json").read_text("utf-8"))
    assert drift == expected_drift


# --- one run ---------------------------------------------------------------------------------------


def test_local_run_matches_direct_scoring(trained: Trained, reference: tuple[RescoreSummary, Path]) -> None:
    summary, out_dir = reference
    scores, rejects = read_outputs(out_dir)
    tables = read_data_dir(trained.data_dir)
    spine = scoring_spine(tables, AS_OF)
    direct = score_tables(trained.bundle, tables, spine).set_index("lead_id")

    assert summary.chunks == 10
    assert summary.leads_read == len(tables.leads)
    assert summary.scored == len(spine) == len(scores)
    assert summary.leads_read == summary.scored + summary.rejected
    assert set(scores["lead_id"]) == set(spine["lead_id"])
    assert scores["lead_id"].is_unique
    assert rejects["lead_id"].is_unique
    assert set(scores["lead_id"]).isdisjoint(rejects["lead_id"])
    assert set(scores["lead_id"]) | set(rejects["lead_id"]) == set(tables.leads["lead_id"])

    ordered = direct.loc[scores["lead_id"]]
    np.testing.assert_allclose(scores["p_convert"], ordered["p_convert"], rtol=1e-12)
    np.testing.assert_allclose(scores["expected_value"], ordered["expected_value"], rtol=1e-12)
    assert scores["grade"].tolist() == ordered["grade"].tolist()
    assert scores["segment"].tolist() == ordered["segment"].tolist()
    assert (scores["model_version"] == trained.bundle.bundle_version).all()
    for column in ("reasons_positive", "reasons_negative"):
        written = [[reason["text"] for reason in reasons] for reasons in scores[column]]
        expected = [[reason["text"] for reason in reasons] for reasons in ordered[column]]
        assert written == expected
        assert max(len(reasons) for reasons in written) == 3


def test_not_open_leads_are_rejects_with_reason(reference: tuple[RescoreSummary, Path]) -> None:
    summary, out_dir = reference
    _, rejects = read_outputs(out_dir)

    assert set(rejects["reason"]) <= {CLOSED_BEFORE_AS_OF, "created_at_or_after_as_of"}
    assert summary.rejects == rejects["reason"].value_counts().sort_index().to_dict()
    closed = rejects[rejects["reason"] == CLOSED_BEFORE_AS_OF]
    assert closed["detail"].str.contains("won or lost at").all()
    assert closed["reason_text"].str.contains("before the scoring time").all()


def test_second_start_of_finished_run_does_nothing(trained: Trained, tmp_path: Path) -> None:
    options = options_for(trained, tmp_path)
    first = rescore(options)
    written = (tmp_path / "out" / "scores.parquet").stat().st_mtime_ns

    second = rescore(options)

    assert not first.replayed
    assert second.replayed
    assert second.scored == first.scored
    assert (tmp_path / "out" / "scores.parquet").stat().st_mtime_ns == written


def test_invalid_leads_go_to_rejects(trained: Trained, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(trained.data_dir, data_dir)
    leads = pd.read_parquet(data_dir / "leads.parquet")
    activities = pd.read_parquet(data_dir / "activities.parquet")
    spine = scoring_spine(read_data_dir(trained.data_dir), AS_OF)
    open_ids = spine["lead_id"].tolist()
    duplicated = leads[leads["lead_id"] == open_ids[0]]
    leads.loc[leads["lead_id"] == open_ids[1], "created_at"] = pd.NaT
    without_id = leads[leads["lead_id"] == open_ids[2]].assign(lead_id=None)
    leads = pd.concat([leads, duplicated, without_id], ignore_index=True)
    untimed_lead = activities.loc[activities["lead_id"].isin(open_ids[3:]), "lead_id"].iloc[0]
    activities.loc[activities.index[activities["lead_id"] == untimed_lead][0], "occurred_at"] = pd.NaT
    infinite_lead, negative_lead = [lead for lead in open_ids[3:] if lead != untimed_lead][-2:]
    leads.loc[leads["lead_id"] == infinite_lead, "declared_budget"] = float("inf")
    leads.loc[leads["lead_id"] == negative_lead, "declared_budget"] = -5.0
    leads.to_parquet(data_dir / "leads.parquet", index=False)
    activities.to_parquet(data_dir / "activities.parquet", index=False)

    summary = rescore(options_for(trained, tmp_path, data_dir=data_dir))
    scores, rejects = read_outputs(tmp_path / "out")

    reasons = dict(zip(rejects["lead_id"].fillna("<none>"), rejects["reason"], strict=True))
    assert (rejects["reason"] == DUPLICATE_LEAD_ID).sum() == 2
    assert reasons[open_ids[0]] == DUPLICATE_LEAD_ID
    assert reasons[open_ids[1]] == MISSING_CREATED_AT
    assert reasons["<none>"] == MISSING_LEAD_ID
    assert reasons[untimed_lead] == MISSING_EVENT_TIME
    assert reasons[infinite_lead] == INVALID_NUMBER
    assert reasons[negative_lead] == INVALID_NUMBER
    details = dict(zip(rejects["lead_id"].fillna("<none>"), rejects["detail"], strict=True))
    assert details[infinite_lead].startswith("declared_budget is inf; give a finite number of at least 0")
    assert details[negative_lead].startswith("declared_budget is -5.0;")
    assert summary.leads_read == len(leads)
    assert summary.leads_read == summary.scored + summary.rejected
    assert summary.scored == len(open_ids) - 5
    assert not set(scores["lead_id"]) & {open_ids[0], open_ids[1], untimed_lead, infinite_lead, negative_lead}


def test_overlapping_run_on_same_out_fails(trained: Trained, tmp_path: Path) -> None:
    options = options_for(trained, tmp_path, top_reasons=0, chunk_size=500)
    other = options_for(trained, tmp_path, top_reasons=0, chunk_size=500, as_of=AS_OF - pd.Timedelta(days=30))
    conflicts: list[ConflictError] = []

    def start_other_run(chunk: int, stage: str) -> None:
        if stage == STAGE_CHUNK_RECORDED and not conflicts:
            with pytest.raises(ConflictError) as caught:
                rescore(other)
            conflicts.append(caught.value)

    summary = rescore(options, fault_hook=start_other_run)

    assert len(conflicts) == 1
    message = str(conflicts[0])
    assert f"--out {options.out} is being written by another rescoring run" in message
    assert f"--as-of {options.as_of.isoformat()}" in message
    assert "choose another --out" in message
    assert len(list((tmp_path / "work" / "rescore").iterdir())) == 1
    written = json.loads((tmp_path / "out" / "scores.parquet.summary.json").read_text("utf-8"))
    assert written["as_of"] == summary.as_of == options.as_of.isoformat()
    assert rescore(options).replayed


def test_csv_and_parquet_outputs_share_folder(trained: Trained, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    parquet_options = options_for(trained, tmp_path, top_reasons=0, chunk_size=500)
    parquet = rescore(parquet_options)
    csv = rescore(options_for(trained, tmp_path, "scores.csv", top_reasons=0, chunk_size=500))

    assert set(parquet.outputs.values()).isdisjoint(csv.outputs.values())
    assert parquet.outputs["summary"] == str(out_dir / "scores.parquet.summary.json")
    assert csv.outputs["summary"] == str(out_dir / "scores.csv.summary.json")
    assert csv.outputs["drift_json"] == str(out_dir / "scores.csv.drift.json")
    for summary in (parquet, csv):
        written = json.loads(Path(summary.outputs["summary"]).read_text("utf-8"))
        assert written["outputs"] == summary.outputs
        assert all(Path(path).is_file() for path in summary.outputs.values())
    assert rescore(parquet_options).replayed


# --- crashes and resumes ----------------------------------------------------------------------------


def crash_at(stage: str, chunk_count: int) -> FaultHook:
    """Return a fault hook that raises SimulatedCrashError at the ``chunk_count``-th ``stage``."""
    seen: list[int] = []

    def hook(chunk: int, reached: str) -> None:
        if reached == stage:
            seen.append(chunk)
            if len(seen) == chunk_count:
                raise SimulatedCrashError(f"{stage} of chunk {chunk}")

    return hook


def temporary_files(work_dir: Path) -> list[Path]:
    return [path for path in work_dir.rglob("*") if ".tmp-" in path.name]


def test_resume_after_crash_between_chunks(
    trained: Trained, tmp_path: Path, reference: tuple[RescoreSummary, Path]
) -> None:
    options = options_for(trained, tmp_path)
    with pytest.raises(SimulatedCrashError):
        rescore(options, fault_hook=crash_at(STAGE_CHUNK_RECORDED, 3))
    assert not (tmp_path / "out" / "scores.parquet").exists()

    summary = rescore(options)

    assert summary.chunks_resumed == 3
    assert summary.scored == reference[0].scored
    assert_same_outputs(tmp_path / "out", reference[1])


def test_resume_after_crash_while_writing_chunk(
    trained: Trained, tmp_path: Path, reference: tuple[RescoreSummary, Path]
) -> None:
    options = options_for(trained, tmp_path)
    with pytest.raises(SimulatedCrashError):
        rescore(options, fault_hook=crash_at(STAGE_SCORES_TEMP_WRITTEN, 5))
    assert len(temporary_files(tmp_path / "work")) == 1

    summary = rescore(options)

    assert summary.chunks_resumed == 4
    assert temporary_files(tmp_path / "work") == []
    assert_same_outputs(tmp_path / "out", reference[1])


def test_resume_after_crash_before_manifest_update(
    trained: Trained, tmp_path: Path, reference: tuple[RescoreSummary, Path]
) -> None:
    options = options_for(trained, tmp_path)
    with pytest.raises(SimulatedCrashError):
        rescore(options, fault_hook=crash_at(STAGE_CHUNK_WRITTEN, 2))

    summary = rescore(options)

    assert summary.chunks_resumed == 1
    assert_same_outputs(tmp_path / "out", reference[1])


def test_kill_9_and_resume(trained: Trained, tmp_path: Path, reference: tuple[RescoreSummary, Path]) -> None:
    work_dir = tmp_path / "work"
    command = [
        sys.executable,
        "-c",
        "from leadscore.cli.main import cli; cli()",
        "rescore",
        "--data",
        str(trained.data_dir),
        "--as-of",
        AS_OF.isoformat(),
        "--out",
        str(tmp_path / "out" / "scores.parquet"),
        "--model",
        str(trained.bundle_dir),
        "--work-dir",
        str(work_dir),
        "--chunk-size",
        str(CHUNK_SIZE // 3),
        "--progress",
        "log",
    ]
    environment = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    with (tmp_path / "killed-run.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=REPOSITORY, env=environment, stdout=log, stderr=log)
        try:
            recorded = wait_for_recorded_chunks(work_dir, at_least=2, process=process)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert 2 <= recorded < 30, "the run must be killed in the middle, not after its last chunk"
    assert not (tmp_path / "out" / "scores.parquet").exists()

    finished = subprocess.run(
        command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=300, check=False
    )

    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "resumed" in finished.stdout
    summary = json.loads((tmp_path / "out" / "scores.parquet.summary.json").read_text("utf-8"))
    assert summary["chunks_resumed"] >= 2
    scores, rejects = read_outputs(tmp_path / "out")
    expected_scores, expected_rejects = read_outputs(reference[1])
    assert sorted(scores["lead_id"]) == sorted(expected_scores["lead_id"])
    assert sorted(rejects["lead_id"].dropna()) == sorted(expected_rejects["lead_id"].dropna())
    merged = scores.merge(expected_scores, on="lead_id", suffixes=("", "_expected"))
    np.testing.assert_allclose(merged["p_convert"], merged["p_convert_expected"], rtol=1e-12)


def wait_for_recorded_chunks(work_dir: Path, *, at_least: int, process: subprocess.Popen[bytes]) -> int:
    """Poll the run's manifest until it lists ``at_least`` chunks; return how many it lists."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the run ended with status {process.returncode} before it was killed")
        for manifest in work_dir.glob(f"rescore/*/{MANIFEST_FILE}"):
            try:
                chunks = json.loads(manifest.read_text("utf-8"))["chunks"]
            except (json.JSONDecodeError, KeyError):
                continue
            if len(chunks) >= at_least:
                return len(chunks)
        time.sleep(0.01)
    raise AssertionError("the run recorded no chunk within 240 s")


# --- Dask ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    """A two-worker LocalCluster of threads in this process, started once for the module."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


def test_dask_engine_matches_local_engine(
    trained: Trained, tmp_path: Path, reference: tuple[RescoreSummary, Path], dask_scheduler: str
) -> None:
    summary = rescore(options_for(trained, tmp_path, engine="dask", scheduler=dask_scheduler))

    assert summary.engine == "dask"
    assert summary.scored == reference[0].scored
    assert summary.rejects == reference[0].rejects
    assert_same_outputs(tmp_path / "out", reference[1])


def test_local_crash_resumed_on_dask(
    trained: Trained, tmp_path: Path, reference: tuple[RescoreSummary, Path], dask_scheduler: str
) -> None:
    with pytest.raises(SimulatedCrashError):
        rescore(options_for(trained, tmp_path), fault_hook=crash_at(STAGE_CHUNK_RECORDED, 4))

    summary = rescore(options_for(trained, tmp_path, engine="dask", scheduler=dask_scheduler))

    assert summary.chunks_resumed == 4
    assert_same_outputs(tmp_path / "out", reference[1])


# --- drift --------------------------------------------------------------------------------------------


def test_drift_flags_shifted_feature_only(trained: Trained, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(trained.data_dir, data_dir)
    leads = pd.read_parquet(data_dir / "leads.parquet")
    leads["declared_budget"] = leads["declared_budget"] * 40.0
    leads.to_parquet(data_dir / "leads.parquet", index=False)

    summary = rescore(options_for(trained, tmp_path, data_dir=data_dir, drift_threshold=0.2))
    report = json.loads((tmp_path / "out" / "scores.parquet.drift.json").read_text("utf-8"))
    psi = {item["name"]: item["psi"] for item in report["features"]}

    assert psi["declared_budget"] > 1.0
    assert "declared_budget" in summary.drifted
    assert psi["channel"] < 0.1
    assert "channel" not in summary.drifted
    assert report["rows"] == summary.scored
    markdown = (tmp_path / "out" / "scores.parquet.drift.md").read_text("utf-8")
    assert "| declared_budget |" in markdown
    assert "漂移报告" in (tmp_path / "out" / "scores.parquet.drift.zh-CN.md").read_text("utf-8")


# --- routing ------------------------------------------------------------------------------------------


def test_route_survives_crash_without_double_assignment(trained: Trained, tmp_path: Path) -> None:
    from serving.roster import upsert_reps
    from serving.store import list_assignments, list_decisions, open_store

    db_url = f"sqlite:///{tmp_path / 'routing.db'}"
    store = open_store(db_url)
    now = pd.Timestamp("2024-12-01T00:00:00Z").to_pydatetime()
    reps = [
        {
            "rep_id": f"R{number}",
            "name": f"rep {number}",
            "tier": tier,
            "capacity": 40,
            "regions": [],
            "skills": [],
        }
        for number, tier in enumerate(("senior", "regular", "regular", "newcomer"), start=1)
    ]
    upsert_reps(store, reps, now=now)
    options = options_for(trained, tmp_path, route=True, db_url=db_url)

    with pytest.raises(SimulatedCrashError):
        rescore(options, fault_hook=crash_at(STAGE_CHUNK_ROUTED, 2))
    summary = rescore(options)

    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    assignments = list_assignments(store, active_only=False)
    decisions = list_decisions(store)
    store.dispose()
    assert summary.routing is not None
    assert summary.routing["assigned"] + summary.routing["queued"] == summary.scored
    assert 0 < summary.routing["assigned"] <= 160
    per_rep = pd.Series([assignment.rep_id for assignment in assignments if assignment.rep_id]).value_counts()
    assert per_rep.max() <= 40
    assert len(assignments) == summary.scored
    assert len({assignment.lead_id for assignment in assignments}) == summary.scored
    assert len(decisions) == summary.scored
    assert set(scores["route_status"]) <= {"assigned", "queued"}
    assert scores.loc[scores["route_status"] == "assigned", "rep_id"].notna().all()
    assert scores["routing_reasons"].str.len().gt(0).all()


def test_route_without_database_is_rejected(trained: Trained, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--route needs the routing database"):
        rescore(options_for(trained, tmp_path, route=True))


# --- CLI, MLflow model and CRM export ------------------------------------------------------------------


def test_cli_scores_champion_to_excel_csv(trained: Trained, tmp_path: Path) -> None:
    out = tmp_path / "crm" / "scores.csv"
    result = CliRunner().invoke(
        cli,
        [
            "rescore",
            "--data",
            str(trained.data_dir),
            "--as-of",
            "2024-12-01T00:00:00",
            "--out",
            str(out),
            "--tracking-uri",
            trained.tracking_uri,
            "--work-dir",
            str(tmp_path / "work"),
            "--chunk-size",
            "500",
            "--excel",
            "--header-locale",
            "zh-CN",
            "--locale",
            "zh-CN",
            "--progress",
            "off",
        ],
    )

    assert result.exit_code == 0, result.output
    assert "leads read" in result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    frame = pd.read_csv(out, encoding="utf-8-sig")
    assert list(frame.columns[:7]) == [
        "线索编号",
        "评分时点",
        "转化概率",
        "预计客户价值",
        "期望价值",
        "等级",
        "分层",
    ]
    assert {"加分原因1", "加分原因3", "减分原因1"} <= set(frame.columns)
    summary = json.loads((tmp_path / "crm" / "scores.csv.summary.json").read_text("utf-8"))
    assert summary["model_uri"] == "models:/lead-scorer@champion"
    assert summary["model_version"] == trained.bundle.bundle_version
    assert len(frame) == summary["scored"]
    rejects = pd.read_csv(tmp_path / "crm" / "scores.rejects.csv", encoding="utf-8-sig")
    assert list(rejects.columns) == ["线索编号", "原因代码", "原因", "详情"]
    assert rejects["原因"].str.contains("赢单或输单").any()


def test_cli_rejects_excel_with_parquet(trained: Trained, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "rescore",
            "--data",
            str(trained.data_dir),
            "--as-of",
            "2024-12-01",
            "--out",
            str(tmp_path / "scores.parquet"),
            "--model",
            str(trained.bundle_dir),
            "--excel",
        ],
    )

    assert result.exit_code == 2
    assert "--excel writes a CSV file" in result.output


# --- Spark --------------------------------------------------------------------------------------------


def test_spark_udf_scores_like_pyfunc(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    pyspark = pytest.importorskip(
        "pyspark",
        reason="pyspark is not installed; install it to check scoring through mlflow.pyfunc.spark_udf",
    )
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("pyspark is installed but Java is not; Spark needs Java 17 or newer on PATH or JAVA_HOME")
    # Spark's Python workers start the first python on PATH unless PYSPARK_PYTHON names this interpreter.
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
    import mlflow

    from training.pyfunc_model import records_from_input
    from training.tracking import active_tracking_uri

    tables = read_data_dir(trained.data_dir)
    spine = scoring_spine(tables, AS_OF).head(20)
    leads = tables.leads[tables.leads["lead_id"].isin(spine["lead_id"])]
    records = []
    for lead in leads.to_dict(orient="records"):
        activities = tables.activities[tables.activities["lead_id"] == lead["lead_id"]]
        records.append(
            {
                "lead_id": lead["lead_id"],
                "created_at": lead["created_at"].isoformat(),
                "channel": lead["channel"],
                "company_size": lead["company_size"],
                "activities": [
                    {
                        "occurred_at": row["occurred_at"].isoformat(),
                        "type": row["type"],
                        "direction": row["direction"],
                    }
                    for row in activities.to_dict(orient="records")
                ],
                "as_of": AS_OF.isoformat(),
            }
        )
    frame = pd.DataFrame(records_from_input(records))
    spark = pyspark.sql.SparkSession.builder.master("local[1]").getOrCreate()
    try:
        with active_tracking_uri(trained.tracking_uri):
            expected = mlflow.pyfunc.load_model("models:/lead-scorer@champion").predict(frame)
            udf = mlflow.pyfunc.spark_udf(
                spark,
                "models:/lead-scorer@champion",
                result_type=SPARK_RESULT_TYPE,
                env_manager="local",
            )
        columns = pyspark.sql.functions.struct(*frame.columns)
        scored = (
            spark.createDataFrame(frame)
            .withColumn("score", udf(columns))
            .select("lead_id", "score.p_convert")
            .toPandas()
        )
    finally:
        spark.stop()
    ordered = scored.set_index("lead_id").loc[expected["lead_id"]]
    np.testing.assert_allclose(ordered["p_convert"], expected["p_convert"], rtol=1e-9)
