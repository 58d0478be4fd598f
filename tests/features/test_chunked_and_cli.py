"""Chunked builds from a data folder and ``leadscore features build``."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from data.folder import write_attributes, write_table
from features.chunked import build_features_chunked
from features.config import FeatureConfig
from features.labels import attach_labels
from features.pipeline import build_features
from features.spine import scoring_spine, training_spine
from leadscore.cli.main import cli
from tests.features.builders import random_history, tables_of

AS_OF = pd.Timestamp("2024-03-01 00:00", tz="UTC")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("history")
    tables = tables_of(random_history(seed=11, lead_count=45))
    for name in ("leads", "activities", "stage_changes", "orders"):
        write_table(tables.table(name), folder, name)
    write_attributes(folder, [])
    return folder


@pytest.fixture(scope="module")
def in_memory(data_dir: Path) -> pd.DataFrame:
    tables = tables_of(random_history(seed=11, lead_count=45))
    config = FeatureConfig()
    spine = training_spine(tables, config)
    labelled = attach_labels(spine, tables, config)
    return pd.concat(
        [labelled, build_features(spine, tables, config).drop(columns=["lead_id", "cutoff"])], axis=1
    )


def test_chunks_equal_one_batch(data_dir: Path, in_memory: pd.DataFrame, tmp_path: Path) -> None:
    frames = list(build_features_chunked(data_dir, FeatureConfig(), leads_per_chunk=7, temp_dir=tmp_path))

    assert len(frames) == 7
    pd.testing.assert_frame_equal(pd.concat(frames), in_memory, check_exact=True)
    assert list(tmp_path.iterdir()) == []  # temporary partitions are removed


def test_chunks_as_of_equal_scoring_spine(data_dir: Path) -> None:
    tables = tables_of(random_history(seed=11, lead_count=45))
    expected = build_features(scoring_spine(tables, AS_OF), tables, FeatureConfig())

    frames = list(build_features_chunked(data_dir, FeatureConfig(), as_of=AS_OF, leads_per_chunk=10))

    observed = pd.concat(frames)
    pd.testing.assert_frame_equal(observed, expected, check_exact=True)
    assert "converted" not in observed.columns


def test_empty_spine_still_gives_columns(data_dir: Path) -> None:
    frames = list(
        build_features_chunked(data_dir, FeatureConfig(), as_of=pd.Timestamp("2000-01-01", tz="UTC"))
    )

    assert len(frames) == 1
    assert frames[0].empty
    assert "activities_7d" in frames[0].columns


def test_activities_of_unknown_leads_are_reported(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "data"
    for name in ("leads", "activities"):
        frame = pd.read_parquet(data_dir / f"{name}.parquet")
        if name == "activities":
            frame.loc[frame.index[:3], "lead_id"] = "ghost"
        write_table(frame, folder, name)

    with caplog.at_level(logging.WARNING, logger="features.chunked"):
        list(build_features_chunked(folder, FeatureConfig(), as_of=AS_OF))

    assert "3 activities name leads that are not in leads.parquet and are skipped" in caplog.text


def test_cli_training_frame_to_parquet(
    data_dir: Path, in_memory: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out" / "features.parquet"

    result = CliRunner().invoke(
        cli, ["features", "build", "--data", str(data_dir), "--out", str(out), "--leads-per-chunk", "8"]
    )

    assert result.exit_code == 0, result.output
    assert f"wrote {len(in_memory)} rows (training spine with labels)" in result.output
    written = pd.read_parquet(out)
    pd.testing.assert_frame_equal(written, in_memory.reset_index(drop=True), check_exact=True)


def test_cli_as_of_naive_time_is_shanghai(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tables = tables_of(random_history(seed=11, lead_count=45))
    expected = build_features(scoring_spine(tables, AS_OF), tables, FeatureConfig())
    out = tmp_path / "open.csv"

    result = CliRunner().invoke(
        cli, ["features", "build", "--data", str(data_dir), "--out", str(out), "--as-of", "2024-03-01T08:00"]
    )

    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert len(written) == len(expected)
    assert written["lead_id"].tolist() == expected["lead_id"].tolist()
    assert set(written["cutoff"]) == {"2024-03-01 00:00:00+00:00"}
    assert written["activities_30d"].tolist() == expected["activities_30d"].tolist()


def test_cli_rejects_bad_as_of(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(
        cli, ["features", "build", "--data", str(data_dir), "--out", "x.parquet", "--as-of", "03/01/2024"]
    )

    assert result.exit_code == 2
    assert "--as-of '03/01/2024' is not an ISO 8601 time" in result.output
    assert not (tmp_path / "x.parquet").exists()


def test_cli_missing_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(cli, ["features", "build", "--data", "nowhere", "--out", "x.parquet"])

    assert result.exit_code == 2
    assert "data folder nowhere not found" in result.output
