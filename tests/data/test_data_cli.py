"""``leadscore data import`` and ``leadscore data validate`` through click's CliRunner."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from click.testing import CliRunner

from data.folder import write_table
from data.validate import coerce_canonical_dtypes
from leadscore.cli.main import cli

if TYPE_CHECKING:
    from tests.data.conftest import CrmFiles


def run(*arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--log-level", "WARNING", *arguments])
    return result.exit_code, result.stdout, result.stderr


def test_import_with_rejects_exits_zero(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv(
        "leads.csv", "线索ID,创建时间,渠道\nA1,2024-03-05,百度\n,2024-03-05,微信\n", "gb18030"
    )
    code, out, _ = run("data", "import", str(path), "--table", "leads", "--out", str(tmp_path / "out"))
    assert code == 0
    assert "rows read:         2" in out
    assert "accepted:          1" in out
    assert "rejected:          1" in out
    assert (tmp_path / "out" / "leads.rejects.csv").exists()


def test_import_options_reach_parser(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\nA1,03/05/2024 10:00\n")
    code, _, _ = run(
        "data",
        "import",
        str(path),
        "--table",
        "leads",
        "--out",
        str(tmp_path / "out"),
        "--timezone",
        "UTC",
        "--date-format",
        "%d/%m/%Y %H:%M",
    )
    assert code == 0
    frame = pd.read_parquet(tmp_path / "out" / "leads.parquet")
    assert frame["created_at"].tolist() == [pd.Timestamp("2024-05-03 10:00", tz="UTC")]


def test_import_xlsx_sheet(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.xlsx(
        "reps.xlsx",
        [["工号", "姓名", "级别", "容量", "在岗"], ["R1", "张伟", "资深", 20, "是"]],
        sheet="销售",
    )
    code, out, _ = run(
        "data", "import", str(path), "--table", "reps", "--out", str(tmp_path / "out"), "--sheet", "销售"
    )
    assert code == 0, out
    assert "accepted:          1" in out


def test_unreadable_file_exits_two(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\n")
    path.write_bytes(path.read_bytes() + b"\xff\n")
    code, _, err = run("data", "import", str(path), "--table", "leads", "--out", str(tmp_path / "out"))
    assert code == 2
    assert "byte offset 19" in err


def test_missing_file_exits_two(tmp_path: Path) -> None:
    code, _, err = run(
        "data", "import", str(tmp_path / "nope.csv"), "--table", "leads", "--out", str(tmp_path)
    )
    assert code == 2
    assert "not found" in err


def test_missing_column_exits_two(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "线索ID\nA1\n")
    code, _, err = run("data", "import", str(path), "--table", "leads", "--out", str(tmp_path / "out"))
    assert code == 2
    assert "created_at" in err
    assert "创建时间" in err


def test_mapping_typo_exits_two(crm_files: CrmFiles, tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text("timezon = 'UTC'\n", "utf-8")
    path = crm_files.csv("leads.csv", "lead_id,created_at\nA1,2024-03-05\n")
    code, _, err = run(
        "data",
        "import",
        str(path),
        "--table",
        "leads",
        "--out",
        str(tmp_path / "out"),
        "--mapping",
        str(mapping),
    )
    assert code == 2
    assert "unknown key 'timezon'; did you mean 'timezone'?" in err


def test_unknown_table_is_usage_error(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("x.csv", "a\n1\n")
    code, _, err = run("data", "import", str(path), "--table", "deals", "--out", str(tmp_path))
    assert code == 2
    assert "deals" in err


def test_validate_clean_folder_exits_zero(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(
        "data",
        "import",
        str(crm_files.csv("leads.csv", "lead_id,created_at\nA1,2024-03-05\n")),
        "--table",
        "leads",
        "--out",
        str(out),
    )
    code, text, _ = run("data", "validate", str(out))
    assert code == 0
    assert "leads: 1 rows, no problems" in text
    assert "no problems found" in text


def test_validate_problems_exit_one(tmp_path: Path) -> None:
    leads = pd.DataFrame({"lead_id": ["L1"], "created_at": [pd.Timestamp("2024-03-05", tz="UTC")]})
    activities = pd.DataFrame(
        {
            "activity_id": ["A1"],
            "lead_id": ["L404"],
            "occurred_at": [pd.Timestamp("2024-03-05", tz="UTC")],
            "type": ["call"],
            "direction": ["inbound"],
        }
    )
    write_table(coerce_canonical_dtypes("leads", leads), tmp_path, "leads")
    write_table(coerce_canonical_dtypes("activities", activities), tmp_path, "activities")
    code, text, err = run("data", "validate", str(tmp_path))
    assert code == 1
    assert "lead_id not found in leads.lead_id" in text
    assert "1 problems found" in err


def test_validate_missing_folder_exits_two(tmp_path: Path) -> None:
    code, _, err = run("data", "validate", str(tmp_path / "nope"))
    assert code == 2
    assert "not found" in err


def test_validate_empty_folder_exits_two(tmp_path: Path) -> None:
    code, _, err = run("data", "validate", str(tmp_path))
    assert code == 2
    assert "no table files" in err
