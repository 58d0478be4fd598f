"""Checks of ``leadscore rescore`` that run before any lead is scored, and the output lock.

Each bad argument here must stop the run before the model is loaded. The model given is a
folder that does not exist, so a check that does not fire shows up as a model error instead.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from leadscore.cli.main import cli
from leadscore.errors import ConfigError, ConflictError
from serving.rescore import RescoreOptions, rescore
from serving.rescore.checkpoint import hold_output_lock, write_json_atomic, write_text_atomic
from serving.rescore.export import ExportSettings, OutputPaths, open_writer
from serving.rescore.options import input_fingerprint, is_scheduler_address

AS_OF = pd.Timestamp("2024-12-01T00:00:00+08:00")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    pd.DataFrame({"lead_id": ["L1"]}).to_parquet(folder / "leads.parquet", index=False)
    return folder


def options_for(data_dir: Path, tmp_path: Path, **overrides: object) -> RescoreOptions:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "as_of": AS_OF,
        "out": tmp_path / "out" / "scores.parquet",
        "model_uri": str(tmp_path / "no-such-model"),
        "work_dir": tmp_path / "work",
        "progress": "off",
    }
    values.update(overrides)
    return RescoreOptions.model_validate(values)


def snapshot(paths: OutputPaths) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in paths.all()}


def invoke(data_dir: Path, tmp_path: Path, *arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        [
            "rescore",
            "--data",
            str(data_dir),
            "--as-of",
            "2024-12-01",
            "--model",
            str(tmp_path / "no-such-model"),
            "--work-dir",
            str(tmp_path / "work"),
            "--progress",
            "off",
            *arguments,
        ],
    )
    return result.exit_code, result.output


# --- output lock and checksums ---------------------------------------------------------------------


def test_second_run_on_locked_out_fails(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "scores.parquet"
    paths = OutputPaths.beside(out)
    out.parent.mkdir()
    for path in paths.all():
        path.write_bytes(b"written by run A")
    before = snapshot(paths)
    other_as_of = pd.Timestamp("2024-11-01T00:00:00+08:00")

    with (
        hold_output_lock(paths.lock, out, "--as-of 2024-12-01, --data A"),
        pytest.raises(ConflictError) as caught,
    ):
        rescore(options_for(data_dir, tmp_path, as_of=other_as_of))

    message = str(caught.value)
    assert f"--out {out} is being written by another rescoring run" in message
    assert f"process {os.getpid()}, --as-of 2024-12-01, --data A" in message
    assert "wait for that run to finish or choose another --out" in message
    assert snapshot(paths) == before
    assert paths.lock.read_text("utf-8").endswith("--as-of 2024-12-01, --data A")


def test_output_lock_is_released_after_run(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    paths = OutputPaths.beside(out)

    with hold_output_lock(paths.lock, out, "first"):
        pass
    with hold_output_lock(paths.lock, out, "second"):
        assert paths.lock.read_text("utf-8") == f"process {os.getpid()}, second"


def test_json_and_text_digests_are_of_bytes_written(tmp_path: Path) -> None:
    payload = {"lead": "线索", "count": 3}
    json_digest = write_json_atomic(tmp_path / "a.json", payload)
    text_digest = write_text_atomic(tmp_path / "a.md", "漂移报告\n")

    assert json_digest == hashlib.sha256((tmp_path / "a.json").read_bytes()).hexdigest()
    assert text_digest == hashlib.sha256("漂移报告\n".encode()).hexdigest()


def test_table_writer_digest_is_of_committed_file(tmp_path: Path) -> None:
    settings = ExportSettings(
        fmt="csv", excel=True, header_locale="en", locale="en", top_reasons=0, with_routing=False
    )
    path = tmp_path / "scores.csv"
    table = pa.table({"lead_id": ["L1", "L2"]})

    with open_writer(path, settings, table) as writer:
        writer.write(table)

    assert writer.digest == hashlib.sha256(path.read_bytes()).hexdigest()


# --- side file names --------------------------------------------------------------------------------


def test_csv_and_parquet_side_files_differ() -> None:
    parquet = OutputPaths.beside(Path("/x/scores.parquet"))
    csv = OutputPaths.beside(Path("/x/scores.csv"))

    assert set(parquet.all()).isdisjoint(csv.all())
    assert parquet.lock != csv.lock
    assert parquet.summary == Path("/x/scores.parquet.summary.json")
    assert csv.drift_json == Path("/x/scores.csv.drift.json")
    assert csv.rejects == Path("/x/scores.rejects.csv")


# --- outputs inside the data folder ----------------------------------------------------------------


def test_out_overwriting_input_table_is_rejected(data_dir: Path, tmp_path: Path) -> None:
    before = (data_dir / "leads.parquet").read_bytes()

    with pytest.raises(ConfigError, match="inside the data folder") as caught:
        rescore(options_for(data_dir, tmp_path, out=data_dir / "leads.parquet"))

    assert "choose an --out outside --data" in str(caught.value)
    assert (data_dir / "leads.parquet").read_bytes() == before
    assert sorted(path.name for path in data_dir.iterdir()) == ["leads.parquet"]


def test_out_in_data_subfolder_is_rejected(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inside the data folder"):
        rescore(options_for(data_dir, tmp_path, out=data_dir / "out" / "scores.csv"))

    assert not (data_dir / "out").exists()


def test_out_through_symlink_into_data_is_rejected(data_dir: Path, tmp_path: Path) -> None:
    link = tmp_path / "crm"
    link.symlink_to(data_dir, target_is_directory=True)

    with pytest.raises(ConfigError, match=f"inside the data folder {data_dir.resolve()}"):
        rescore(options_for(data_dir, tmp_path, out=link / "scores.parquet"))


def test_cli_rejects_out_inside_data(data_dir: Path, tmp_path: Path) -> None:
    code, output = invoke(data_dir, tmp_path, "--out", str(data_dir / "leads.parquet"))

    assert code == 2
    assert "inside the data folder" in output
    assert "Traceback" not in output


def test_work_dir_inside_data_keeps_fingerprint(data_dir: Path) -> None:
    before = input_fingerprint(data_dir)
    run_folder = data_dir / "work" / "rescore" / "abc"
    (run_folder / "chunks").mkdir(parents=True)
    (run_folder / "manifest.json").write_text("{}", encoding="utf-8")
    (run_folder / "chunks" / "chunk-000000.scores.parquet").write_bytes(b"scores")

    assert input_fingerprint(data_dir) == before


# --- output folder ----------------------------------------------------------------------------------


def test_out_folder_under_a_file_is_rejected(data_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder", encoding="utf-8")

    with pytest.raises(ConfigError, match=f"cannot create the --out folder {blocker / 'out'}"):
        rescore(options_for(data_dir, tmp_path, out=blocker / "out" / "scores.parquet"))


def test_out_that_is_a_folder_is_rejected(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    out.mkdir()

    with pytest.raises(ConfigError, match="is a folder; give --out a file path"):
        rescore(options_for(data_dir, tmp_path, out=out))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a folder without write permission")
def test_read_only_out_folder_is_rejected(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match=f"cannot write to the --out folder {folder}"):
            rescore(options_for(data_dir, tmp_path, out=folder / "scores.parquet"))
    finally:
        folder.chmod(0o700)


def test_out_folder_is_created(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "nested" / "scores.parquet"

    with pytest.raises(ConfigError, match=r"^--model .* is neither a models:/ URI"):
        rescore(options_for(data_dir, tmp_path, out=out))

    assert out.parent.is_dir()
    assert [path.name for path in out.parent.iterdir()] == [".scores.parquet.lock"]


# --- routing database --------------------------------------------------------------------------------


def test_unreachable_postgres_is_rejected(data_dir: Path, tmp_path: Path) -> None:
    url = "postgresql+psycopg://leadscore:secret@127.0.0.1:1/test"

    with pytest.raises(ConfigError, match="cannot connect to the routing database") as caught:
        rescore(options_for(data_dir, tmp_path, route=True, db_url=url))

    message = str(caught.value)
    assert "127.0.0.1:1/test" in message
    assert "secret" not in message
    assert "pass another --db" in message
    assert not (tmp_path / "out" / "scores.parquet").exists()


def test_sqlite_under_a_file_is_rejected(data_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder", encoding="utf-8")
    url = f"sqlite:///{blocker / 'routing.db'}"

    code, output = invoke(
        data_dir, tmp_path, "--out", str(tmp_path / "out" / "scores.parquet"), "--route", "--db", url
    )

    assert code == 2
    assert f"cannot connect to the routing database --db {url}" in output
    assert "Traceback" not in output


# --- drift threshold and scheduler -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_cli_rejects_non_finite_drift_threshold(data_dir: Path, tmp_path: Path, value: str) -> None:
    code, output = invoke(
        data_dir, tmp_path, "--out", str(tmp_path / "scores.parquet"), "--drift-threshold", value
    )

    assert code == 2
    assert f"--drift-threshold {value} is invalid; give a finite PSI above 0" in output
    assert not (tmp_path / "scores.parquet").exists()


@pytest.mark.parametrize("value", [0.0, -0.1, float("inf"), float("-inf"), float("nan")])
def test_options_reject_bad_drift_threshold(data_dir: Path, tmp_path: Path, value: float) -> None:
    with pytest.raises(ConfigError, match=r"--drift-threshold .* is invalid"):
        options_for(data_dir, tmp_path, drift_threshold=value)


@pytest.mark.parametrize(
    "address",
    [
        "tcp://10.0.0.5:8786",
        "10.0.0.5:8786",
        "tls://scheduler.internal:8786",
        "tcp://[::1]:8786",
        "inproc://192.0.2.2/28086/1",
    ],
)
def test_scheduler_address_accepted(address: str) -> None:
    assert is_scheduler_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5",  # no port
        "http://10.0.0.5:8786",  # not a Dask protocol
        "tcp://:8786",  # no host
        "tcp://10.0.0.5:99999",  # port out of range
        "tcp://10.0.0.5:0",
        "tcp://10.0.0.5:8786/path",
        "scheduler.json",
        "inproc://192.0.2.2",  # no process and counter
        "",
    ],
)
def test_scheduler_address_rejected(data_dir: Path, tmp_path: Path, address: str) -> None:
    assert not is_scheduler_address(address)
    with pytest.raises(ConfigError, match="is not a Dask scheduler address"):
        options_for(data_dir, tmp_path, engine="dask", scheduler=address)


def test_cli_rejects_bad_scheduler(data_dir: Path, tmp_path: Path) -> None:
    code, output = invoke(
        data_dir,
        tmp_path,
        "--out",
        str(tmp_path / "scores.parquet"),
        "--engine",
        "dask",
        "--scheduler",
        "10.0.0.5",
    )

    assert code == 2
    assert "--scheduler '10.0.0.5' is not a Dask scheduler address" in output
    assert "tcp://10.0.0.5:8786" in output
