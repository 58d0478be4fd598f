"""``leadscore rescore`` inputs that once failed with a traceback or scored nothing.

``--as-of`` now has the year range and daylight-saving checks of the data layer. A data folder
without ``leads.attributes.json`` (a CSV import without a mapping) is read with the model's
declarations of its custom attributes, so its open leads are scored.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from leadscore.cli.main import cli
from leadscore.cli.rescore_cmd import parse_as_of
from leadscore.errors import ConfigError

TIMEZONE = "Asia/Shanghai"


@pytest.mark.parametrize(
    "text",
    [
        "2300-01-01",  # after 2261, which pandas cannot hold in nanoseconds
        "1600-01-01",  # before 1678
        "1988-04-17T02:30:00",  # skipped when Asia/Shanghai moved its clocks forward
        "1988-09-11T01:30:00",  # repeated when Asia/Shanghai moved its clocks back
    ],
)
def test_parse_as_of_rejects_unusable_time(text: str) -> None:
    with pytest.raises(ConfigError, match="--as-of"):
        parse_as_of(text, TIMEZONE)


@dataclass(frozen=True)
class Generated:
    """A generated history with custom attributes and the champion trained on it."""

    data_dir: Path
    tracking_uri: str


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """Generate 2,000 leads (with contact_title and lead_rating) and train without tuning."""
    root = tmp_path_factory.mktemp("found-rescore")
    data_dir = root / "data"
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    runner = CliRunner()
    generate = runner.invoke(
        cli, ["data", "generate", "--leads", "2000", "--seed", "5", "--out", str(data_dir)]
    )
    assert generate.exit_code == 0, generate.output
    train = runner.invoke(
        cli,
        [
            "train",
            "--data",
            str(data_dir),
            "--trials",
            "0",
            "--work-dir",
            str(root / "work"),
            "--tracking-uri",
            tracking_uri,
        ],
    )
    assert train.exit_code == 0, train.output
    return Generated(data_dir=data_dir, tracking_uri=tracking_uri)


def test_rescore_without_attributes_file(generated: Generated, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(generated.data_dir, data_dir)
    (data_dir / "leads.attributes.json").unlink()
    out = tmp_path / "out" / "scores.parquet"

    result = CliRunner().invoke(
        cli,
        [
            "rescore",
            "--data",
            str(data_dir),
            "--as-of",
            "2024-12-01T00:00:00+08:00",
            "--out",
            str(out),
            "--tracking-uri",
            generated.tracking_uri,
            "--work-dir",
            str(tmp_path / "work"),
            "--progress",
            "off",
        ],
    )

    assert result.exit_code == 0, result.output
    rejects = pd.read_parquet(out.with_name("scores.rejects.parquet"))
    failed = rejects[rejects["reason"] == "scoring_failed"]
    assert failed.empty, f"{len(failed)} leads not scored: {failed['detail'].iloc[0]}"
    assert len(pd.read_parquet(out)) > 0
