"""``leadscore reps load --locale``: the import summary, the rejected rows and the load line in zh-CN.

Roster files are written into tmp_path and loaded into a SQLite routing database there.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from leadscore.cli.main import cli

HEADER = "rep_id,name,tier,capacity,active\n"
DIRECTOR = HEADER + "S1,甲,senior,5,true\nS2,乙,director,5,true\n"


def load(
    roster: Path, database: Path, *options: str, locale_setting: str | None = None
) -> tuple[int, str, str]:
    runner = CliRunner(env={"LEADSCORE_LOCALE": locale_setting})
    arguments = ["--log-level", "WARNING", "reps", "load", str(roster), "--db", f"sqlite:///{database}"]
    result = runner.invoke(cli, [*arguments, *options])
    return result.exit_code, result.stdout, result.stderr


def write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def test_zh_rejection_names_row_value_fix(tmp_path: Path) -> None:
    roster = write(tmp_path / "reps.csv", DIRECTOR)
    database = tmp_path / "routing.db"

    code, _, stderr = load(roster, database, "--locale", "zh-CN")

    assert code == 2
    assert "  读取行数：    2" in stderr
    assert "  拒绝行数：    1" in stderr
    assert f"error: {roster} 的 2 行销售名单中有 1 行被拒绝，因此没有导入任何销售" in stderr
    assert "第 2 行，tier：tier 的值 'director' 无法识别" in stderr
    assert "在映射文件的 [tables.reps.values.tier] 下添加对应关系" in stderr
    assert "请修正这些行后重新运行" in stderr
    assert not database.exists()


def test_en_rejection_unchanged(tmp_path: Path) -> None:
    roster = write(tmp_path / "reps.csv", DIRECTOR)

    code, _, stderr = load(roster, tmp_path / "routing.db")

    assert code == 2
    assert "  rows read:         2" in stderr
    assert stderr.endswith(
        f"error: 1 of 2 roster rows in {roster} were rejected, so nothing was loaded; fix these rows and "
        "run again: row 2, tier: unknown tier 'director'; expected one of senior, regular, newcomer, or "
        "add it under [tables.reps.values.tier] in the mapping file\n"
    )


def test_zh_whole_row_reject(tmp_path: Path) -> None:
    roster = write(tmp_path / "reps.csv", HEADER + "S1,甲,senior,5,true,extra\n")

    code, _, stderr = load(roster, tmp_path / "routing.db", "--locale", "zh-CN")

    assert code == 2
    assert "第 1 行，整行：该行有 6 个字段，但表头只有 5 列" in stderr


def test_zh_load_and_deactivate_lines(tmp_path: Path) -> None:
    database = tmp_path / "routing.db"
    full = write(tmp_path / "reps.csv", HEADER + "S1,甲,资深,5,是\nS2,乙,regular,3,是\n")
    partial = write(tmp_path / "reps-s1.csv", HEADER + "S1,甲,资深,6,是\n")

    first = load(full, database, "--locale", "zh-CN")
    second = load(partial, database, "--locale", "zh-CN", "--deactivate-missing")

    assert first[0] == 0, first[2]
    assert first[1] == "已导入 2 名销售：新增 2 名，更新 0 名，停用 0 名\n"
    assert "  接受行数：    2" in first[2]
    assert second[0] == 0, second[2]
    assert second[1] == "已导入 1 名销售：新增 0 名，更新 1 名，停用 1 名（S2）\n"


def test_en_load_line_unchanged(tmp_path: Path) -> None:
    roster = write(tmp_path / "reps.csv", HEADER + "S1,甲,senior,5,true\n")

    code, stdout, _ = load(roster, tmp_path / "routing.db")

    assert code == 0
    assert stdout == "Loaded 1 reps: 1 new, 0 updated, 0 deactivated\n"


def test_zh_import_error(tmp_path: Path) -> None:
    roster = write(tmp_path / "reps.csv", "工号,姓名\nS1,甲\n")

    code, _, stderr = load(roster, tmp_path / "routing.db", "--locale", "zh-CN")

    assert code == 2
    assert "表 'reps' 缺少必需的列：tier（可接受的表头：tier, 级别, 职级, Tier）" in stderr
    assert "文件中的表头为 '工号', '姓名'" in stderr


def test_locale_setting_reaches_reps_load(tmp_path: Path) -> None:
    roster = write(tmp_path / "reps.csv", DIRECTOR)

    code, _, stderr = load(roster, tmp_path / "routing.db", locale_setting="zh-CN")

    assert code == 2
    assert "第 2 行，tier：" in stderr
