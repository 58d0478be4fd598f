"""``leadscore data validate --locale``: the reports, each problem text and the errors in zh-CN.

A data folder with known problems is written into tmp_path and validated through the CLI
in English (unchanged) and in Chinese. Each Chinese problem text must carry the quoted
values and numbers of the English one.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from data.folder import CanonicalTables, CustomAttribute, write_table
from data.validate import RowProblem, ValidationReport, coerce_canonical_dtypes, validate_tables
from leadscore.cli.main import cli

HAN = re.compile(r"[\u4e00-\u9fff]")
QUOTED = re.compile(r"'[^']*'")
NUMBER = re.compile(r"\d+")
UTC = pd.Timestamp("2024-03-05", tz="UTC")


def write_folder(folder: Path) -> Path:
    """Write leads and activities whose activity refers to an unknown lead and has an unknown type."""
    leads = pd.DataFrame({"lead_id": ["L1"], "created_at": [UTC]})
    activities = pd.DataFrame(
        {
            "activity_id": ["A1", "A2"],
            "lead_id": ["L404", "L1"],
            "occurred_at": [UTC, UTC],
            "type": ["call", "fax"],
            "direction": ["inbound", "inbound"],
        }
    )
    write_table(coerce_canonical_dtypes("leads", leads), folder, "leads")
    # coerce_canonical_dtypes does not check closed sets, so the unknown type reaches the file.
    write_table(coerce_canonical_dtypes("activities", activities), folder, "activities")
    return folder


def run(*arguments: str, locale_setting: str | None = None) -> tuple[int, str, str]:
    runner = CliRunner(env={"LEADSCORE_LOCALE": locale_setting})
    result = runner.invoke(cli, ["--log-level", "WARNING", *arguments])
    return result.exit_code, result.stdout, result.stderr


def test_en_report_unchanged(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "data")

    code, stdout, stderr = run("data", "validate", str(folder))

    assert code == 1
    assert stdout.splitlines()[:7] == [
        "leads: 1 rows, no problems",
        "activities: 2 rows, 2 problems in 2 rows",
        "  lead_id: unknown_reference x1",
        "  type: not_allowed x1",
        "  row 1, lead_id='L404': lead_id not found in leads.lead_id",
        "  row 2, type='fax': not one of call, wechat, email, visit, demo, quote, form, other",
        "stage_changes: 0 rows, no problems",
    ]
    assert stderr == "2 problems found\n"


def test_zh_report_lines(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "data")

    code, stdout, stderr = run("data", "validate", str(folder), "--locale", "zh-CN")

    assert code == 1
    assert stdout.splitlines()[:7] == [
        "leads：1 行，没有问题",
        "activities：2 行，其中 2 行共有 2 个问题",
        "  lead_id：unknown_reference（引用的编号不存在） x1",
        "  type：not_allowed（不是可接受的值） x1",
        "  第 1 行，lead_id='L404'：lead_id 的值在 leads.lead_id 中不存在",
        "  第 2 行，type='fax'：不是可接受的值之一（call, wechat, email, visit, demo, quote, form, other）",
        "stage_changes：0 行，没有问题",
    ]
    assert stderr == "共发现 2 个问题\n"


def test_zh_clean_folder(tmp_path: Path) -> None:
    leads = pd.DataFrame({"lead_id": ["L1"], "created_at": [UTC]})
    write_table(coerce_canonical_dtypes("leads", leads), tmp_path, "leads")

    code, stdout, _ = run("data", "validate", str(tmp_path), "--locale", "zh-CN")

    assert code == 0
    assert "leads：1 行，没有问题" in stdout
    assert stdout.endswith("没有发现问题\n")


def test_locale_setting_reaches_validate(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "data")

    _, stdout, stderr = run("data", "validate", str(folder), locale_setting="zh-CN")

    assert "第 1 行，lead_id='L404'" in stdout
    assert stderr == "共发现 2 个问题\n"


def test_option_wins_over_setting(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "data")

    _, _, stderr = run("data", "validate", str(folder), "--locale", "en", locale_setting="zh-CN")

    assert stderr == "2 problems found\n"


def test_zh_folder_without_tables(tmp_path: Path) -> None:
    code, _, stderr = run("data", "validate", str(tmp_path), "--locale", "zh-CN")

    assert code == 2
    assert f"{tmp_path} 中没有数据表文件（leads.parquet, activities.parquet" in stderr
    assert "请用 'leadscore data import' 或 'leadscore data generate' 生成" in stderr


def test_en_folder_without_tables(tmp_path: Path) -> None:
    code, _, stderr = run("data", "validate", str(tmp_path))

    assert code == 2
    assert stderr == (
        f"error: {tmp_path} has no table files (leads.parquet, activities.parquet, stage_changes.parquet, "
        "orders.parquet, reps.parquet); create them with 'leadscore data import' or "
        "'leadscore data generate'\n"
    )


# ---------------------------------------------------------------------------------------
# Every problem text of the validator


def tables_with_every_problem() -> CanonicalTables:
    """Return tables that give the validator every kind of problem it reports."""
    naive = dt.datetime(2024, 3, 5)
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", " L2", "L1", None, 5, "L6"],
            "created_at": [UTC, naive, "x", UTC, UTC, UTC],
            "declared_budget": [-5.0, "12", float("inf"), 1.0, 1.0, 1.0],
            "owner_rep_id": ["R9", None, None, None, None, None],
            "extra_col": [1] * 6,
            "visit_count": [1.5, 2, None, None, None, None],
        }
    )
    stages = pd.DataFrame({"lead_id": ["L1", "L1"], "stage": ["签约执行", "maybe"], "changed_at": [UTC, UTC]})
    orders = pd.DataFrame(
        {"order_id": ["O1"], "customer_id": ["C1"], "ordered_at": [UTC], "amount": [1.0], "currency": ["CNY"]}
    )
    reps = pd.DataFrame(
        {
            "rep_id": ["R1"],
            "name": ["甲"],
            "tier": ["senior"],
            "capacity": [2],
            "active": ["yes"],
            "regions": ["x"],
            "manager_id": ["M9"],
        }
    )
    return CanonicalTables(
        leads=leads,
        activities=pd.DataFrame(
            {"activity_id": [], "lead_id": [], "occurred_at": [], "type": [], "direction": []}
        ),
        stage_changes=stages,
        orders=orders,
        reps=reps,
        attributes=[
            CustomAttribute("visit_count", "int", True, ""),
            CustomAttribute("score", "float", False, ""),
        ],
    )


@pytest.fixture(scope="module")
def every_problem() -> list[RowProblem]:
    reports = validate_tables(tables_with_every_problem())
    return [problem for report in reports.values() for problem in report.problems]


def test_problems_cover_every_code(every_problem: list[RowProblem]) -> None:
    codes = {problem.code for problem in every_problem}

    assert codes == {
        "missing_required",
        "wrong_type",
        "invalid_id",
        "naive_timestamp",
        "below_minimum",
        "unknown_stage",
        "duplicate_key",
        "unknown_reference",
        "schema",
        "undeclared_column",
    }


def test_every_problem_text_translates(every_problem: list[RowProblem]) -> None:
    untranslated = [problem.reason for problem in every_problem if not HAN.search(problem.text("zh-CN"))]

    assert untranslated == []


def test_english_text_is_reason(every_problem: list[RowProblem]) -> None:
    for problem in every_problem:
        assert problem.text("en") == problem.reason
        assert problem.text() == problem.reason


def test_zh_text_keeps_values_and_numbers(every_problem: list[RowProblem]) -> None:
    for problem in every_problem:
        chinese = problem.text("zh-CN")
        for quoted in QUOTED.findall(problem.reason):
            assert quoted in chinese, (problem.reason, chinese)
        for number in NUMBER.findall(problem.reason):
            assert number in chinese, (problem.reason, chinese)


def test_problem_without_message_keeps_reason() -> None:
    problem = RowProblem(3, "lead_id", "x", "found by an older check", "invalid")

    assert problem.text("zh-CN") == "found by an older check"


def test_zh_report_counts_more_problems() -> None:
    problems = [RowProblem(row, "lead_id", "x", "r", "invalid") for row in range(1, 5)]
    report = ValidationReport("leads", 4, problems)

    lines = report.format(max_examples=2, locale="zh-CN").splitlines()

    assert lines[0] == "leads：4 行，其中 4 行共有 4 个问题"
    assert lines[1] == "  lead_id：invalid x4"
    assert lines[-1] == "  ……另有 2 个问题"
