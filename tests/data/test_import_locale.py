"""The import in zh-CN: reasons in the rejects file, its ``code`` column, the summary and ``--locale``.

The same files are imported in ``en`` and ``zh-CN``. The two rejects files must list the
same problems, and each Chinese reason must carry the quoted values and numbers of the
English one.
"""

from __future__ import annotations

import csv
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import openpyxl
import pytest
from click.testing import CliRunner

from data import importer
from data.folder import CustomAttribute
from data.import_messages import Message, _coercion_patterns, catalog, coercion_text, reason
from data.importer import REJECT_COLUMNS, ImportProblem, ImportSummary, import_file, write_rejects
from data.parsing import parse_categories
from data.schema import get_table
from data.validate import RowProblem, attribute_column
from leadscore.cli.main import cli
from leadscore.i18n import Locale

if TYPE_CHECKING:
    from tests.data.conftest import CrmFiles

HAN = re.compile(r"[\u4e00-\u9fff]")
QUOTED = re.compile(r"'[^']*'")
NUMBER = re.compile(r"\d+")

LEADS = (
    "lead_id,created_at,declared_budget,company_name\n"
    'A1,2024-03-05 14:02,"¥1,234.50",甲\n'
    ",2024-03-05,,乙\n"
    "A3,03/05/2024,abc,丙\n"
    "A4,sometime,-5,丁\n"
    "A5,2024-03-05,,戊,extra\n"
    'A6,1900-01-01,"1,5",己\n'
    "N/A,2024-03-05,,庚\n"
    "1.23457E+18,2024-03-05,,辛\n"
    "1234567890123456768.0,2024/3/5 下午 13:00,,壬\n"
    "A10,2024-02-30,1e999,癸\n"
    "A11,31/31/2024,1.5万,子\n"
    "A12,45356,(300),丑\n"
    "A13,2024-03-01,200,寅\n"
    "A13,2024-03-09,300,卯\n"
    "Ａ14,２０２４-03-05,１２３,辰\n"
    '"=""00777""",2024-03-05,,巳\n'
    '123.0,2024-03-05,,=HYPERLINK("x")\n'
)
REPS = "rep_id,name,tier,capacity,active\nR1,张伟,资深,20,是\nR2,张经理,SENIOR,10,Y\nR3,李娜,大师,2.5,maybe\n"
STAGES = "lead_id,stage,changed_at\nL1,线索获取,2024-03-01\nL1,意向,2024-03-02\n"
ORDERS = (
    "order_id,customer_id,ordered_at,amount,currency\n"
    "O1,C1,2024-03-05,100,\nO2,C1,2024-03-05,100,人民币\nO3,C1,2024-03-05,100,dollars\n"
)
DAYLIGHT_SAVING = "lead_id,created_at\nD1,2024-03-10 02:30\nD2,2024-11-03 01:30\n"

# Reasons that no import file can produce, because parsing leaves no such value for the
# validator or always names the column; test_validator_codes_translate covers them.
UNREACHABLE_BY_FILE = frozenset(
    {
        "category_unknown_value",
        "not_allowed",
        "unknown_stage_code",
        "unknown_stage_no_hint",
        "invalid_id",
        "naive_timestamp",
        "wrong_type",
        "validation_other",
    }
)


@dataclass
class ImportRun:
    """The rejects lines and summaries of importing every test file in one locale."""

    lines: list[dict[str, str]]
    summaries: list[ImportSummary]


def leads_workbook(path: Path) -> Path:
    """Write an XLSX leads export with a formula without result, serial dates and a merged cell."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (
        ["线索ID", "创建时间", "客户名称"],
        ["X1", 12, "甲"],
        ["X2", "2024-03-05", '=CONCAT("a","b")'],
        ["X3", 45356.5, "乙"],
        ["X4", "2024-03-05", "丙"],
        ["X5", "2024-03-05", None],
    ):
        sheet.append(row)
    sheet.merge_cells("C5:C6")
    workbook.save(path)
    return path


def import_everything(crm_files: CrmFiles, out: Path, locale: Locale) -> ImportRun:
    """Import every test file into ``out`` in ``locale`` and return all rejects lines and summaries."""
    imports = [
        (crm_files.csv("leads.csv", LEADS), "leads", None),
        (leads_workbook(crm_files.folder / "leads.xlsx"), "leads", None),
        (crm_files.csv("dst.csv", DAYLIGHT_SAVING), "leads", "America/New_York"),
        (crm_files.csv("reps.csv", REPS), "reps", None),
        (crm_files.csv("stages.csv", STAGES), "stage_changes", None),
        (crm_files.csv("orders.csv", ORDERS), "orders", None),
    ]
    summaries = [
        import_file(path, table, out / table, timezone=zone, locale=locale) for path, table, zone in imports
    ]
    lines: list[dict[str, str]] = []
    for table in ("leads", "reps", "stage_changes", "orders"):
        lines += read_rejects(out / table / f"{table}.rejects.csv")
    return ImportRun(lines, summaries)


def read_rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def reason_key(text: str) -> str | None:
    """Return the ``import.reason`` key whose English template produces ``text``, the most specific one."""
    matches = []
    for key, texts in catalog().items():
        if not key.startswith("import.reason."):
            continue
        pattern = ""
        for literal, name, _, _ in string.Formatter().parse(texts["en"]):
            pattern += re.escape(literal) + ("(.*)" if name is not None else "")
        if re.fullmatch(pattern, text, re.DOTALL):
            literal_length = len(re.sub(r"\{[^}]*\}", "", texts["en"]))
            matches.append((literal_length, key.removeprefix("import.reason.")))
    return max(matches)[1] if matches else None


@pytest.fixture
def both_locales(crm_files: CrmFiles, tmp_path: Path) -> tuple[ImportRun, ImportRun]:
    return import_everything(crm_files, tmp_path / "en", "en"), import_everything(
        crm_files, tmp_path / "zh", "zh-CN"
    )


# ---------------------------------------------------------------------------------------
# The catalog


@pytest.mark.parametrize("key", sorted(catalog()))
def test_zh_template_keeps_parameters(key: str) -> None:
    texts = catalog()[key]

    assert template_fields(texts["en"]) <= template_fields(texts["zh-CN"]), texts


@pytest.mark.parametrize("key", sorted(key for key in catalog() if key.startswith("import.reason.")))
def test_zh_reason_template_is_chinese(key: str) -> None:
    assert HAN.search(catalog()[key]["zh-CN"]), catalog()[key]


# ---------------------------------------------------------------------------------------
# Rejects file


def test_every_problem_kind_has_zh_reason(both_locales: tuple[ImportRun, ImportRun]) -> None:
    _, chinese = both_locales

    untranslated = [line for line in chinese.lines if not HAN.search(line["reason"])]
    codes = {line["code"] for line in chinese.lines}

    assert untranslated == []
    assert codes == {
        "malformed_row",
        "unparseable",
        "placeholder",
        "duplicate_merged",
        "formula_without_result",
        "missing_required",
        "below_minimum",
    }


def test_files_reach_every_reason(both_locales: tuple[ImportRun, ImportRun]) -> None:
    english, _ = both_locales
    reachable = {
        key.removeprefix("import.reason.") for key in catalog() if key.startswith("import.reason.")
    } - UNREACHABLE_BY_FILE

    reached = {reason_key(line["reason"]) for line in english.lines}

    assert reachable - reached == set()


def test_zh_lines_match_en_lines(both_locales: tuple[ImportRun, ImportRun]) -> None:
    english, chinese = both_locales

    def identity(line: dict[str, str]) -> tuple[str, ...]:
        return tuple(line[name] for name in REJECT_COLUMNS if name != "reason")

    assert [identity(line) for line in chinese.lines] == [identity(line) for line in english.lines]


def test_zh_reason_keeps_values_and_numbers(both_locales: tuple[ImportRun, ImportRun]) -> None:
    english, chinese = both_locales

    template_words = {quoted for texts in catalog().values() for quoted in QUOTED.findall(texts["en"])}

    for en_line, zh_line in zip(english.lines, chinese.lines, strict=True):
        for quoted in set(QUOTED.findall(en_line["reason"])) - template_words:
            assert quoted in zh_line["reason"], (en_line["reason"], zh_line["reason"])
        for number in NUMBER.findall(en_line["reason"]):
            assert number in zh_line["reason"], (en_line["reason"], zh_line["reason"])


def test_zh_unparseable_date_lists_formats(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\nA1,某天\n")

    import_file(path, "leads", tmp_path / "out", locale="zh-CN")
    [line] = read_rejects(tmp_path / "out" / "leads.rejects.csv")

    assert line["code"] == "unparseable"
    assert line["reason"].startswith("'某天' 不是可识别的日期")
    assert "2024/3/5 14:02" in line["reason"]
    assert "2024年3月5日 14:02" in line["reason"]
    assert "date_formats" in line["reason"]


def test_code_column_comes_last(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\n,2024-03-05\n")

    import_file(path, "leads", tmp_path / "out")
    header, line = list(csv.reader((tmp_path / "out" / "leads.rejects.csv").open(encoding="utf-8-sig")))

    assert header == ["source", "row", "column", "value", "reason", "code"]
    assert line == ["leads.csv", "1", "lead_id", "", "required value is missing", "missing_required"]


def test_old_rejects_file_gets_empty_code(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "leads.rejects.csv").write_text(
        "source,row,column,value,reason\ncrm.csv,2,created_at,someday,old reason\n", "utf-8-sig"
    )

    import_file(crm_files.csv("forms.csv", "lead_id,created_at\nL1,\n"), "leads", out, locale="zh-CN")
    lines = read_rejects(out / "leads.rejects.csv")

    assert [(line["source"], line["reason"], line["code"]) for line in lines] == [
        ("crm.csv", "old reason", ""),
        ("forms.csv", "缺少必填值", "missing_required"),
    ]


def test_other_sources_keep_their_locale(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_file(crm_files.csv("crm.csv", "lead_id,created_at\nL1,\n"), "leads", out, locale="en")

    import_file(crm_files.csv("forms.csv", "lead_id,created_at\nL2,\n"), "leads", out, locale="zh-CN")
    lines = read_rejects(out / "leads.rejects.csv")

    assert [(line["source"], line["reason"]) for line in lines] == [
        ("crm.csv", "required value is missing"),
        ("forms.csv", "缺少必填值"),
    ]


def test_zh_values_still_escaped(crm_files: CrmFiles, tmp_path: Path) -> None:
    text = "lead_id,created_at,declared_budget\n1,=cmd|' /C calc'!A0,\n2,2024-03-05,@SUM(A1)\n"

    import_file(crm_files.csv("leads.csv", text), "leads", tmp_path / "out", locale="zh-CN")
    values = {line["row"]: line for line in read_rejects(tmp_path / "out" / "leads.rejects.csv")}

    assert values["1"]["value"] == "'=cmd|' /C calc'!A0"
    assert values["2"]["value"] == "'@SUM(A1)"
    assert HAN.search(values["2"]["reason"])


def test_reason_starting_like_formula_escaped(tmp_path: Path) -> None:
    problem = ImportProblem(1, "note", "x", "odd", reason("validation_other", code="odd", detail="=1+1"))

    write_rejects(tmp_path / "leads.rejects.csv", "leads.csv", [problem], locale="en")
    [line] = read_rejects(tmp_path / "leads.rejects.csv")

    assert line["reason"] == "'=1+1"


# ---------------------------------------------------------------------------------------
# Validator findings and parser reasons that no file reaches


@pytest.mark.parametrize(
    ("table", "column", "code", "value", "english"),
    [
        ("leads", "declared_budget", "below_minimum", -5.0, "below the minimum 0"),
        ("activities", "type", "not_allowed", "fax", "not one of "),
        ("stage_changes", "stage", "unknown_stage", "签约执行", "unknown stage (store the code 'won')"),
        ("stage_changes", "stage", "unknown_stage", "maybe", "unknown stage; expected one of lead,"),
        ("leads", "lead_id", "invalid_id", " L1", "id has surrounding whitespace"),
        ("leads", "created_at", "naive_timestamp", "2024-03-05", "naive timestamp without time zone"),
        ("leads", "declared_budget", "wrong_type", "12", "expected a float value, found str"),
        ("leads", "lead_id", "missing_required", None, "required value is missing"),
        ("leads", "lead_id", "unknown_reference", "L9", "lead_id not found"),
    ],
)
def test_validator_codes_translate(table: str, column: str, code: str, value: object, english: str) -> None:
    finding = RowProblem(1, column, str(value), "lead_id not found in leads.lead_id", code)
    message = importer._validation_message(finding, get_table(table).column(column), value)

    assert message.text("en").startswith(english)
    assert HAN.search(message.text("zh-CN"))


def test_attribute_wrong_type_names_kind() -> None:
    column = attribute_column(CustomAttribute("visit_count", "int", True, ""))
    finding = RowProblem(1, "visit_count", "x", "expected a number, found str", "wrong_type")

    message = importer._validation_message(finding, column, "x")

    assert message.text("zh-CN") == "应为 int 类型的值，读到的是 str 类型"


def test_category_without_column_name() -> None:
    parsed = parse_categories(["fax"], allowed=("call", "email"))

    [message] = parsed.messages.values()

    assert parsed.errors[0].startswith("unknown value 'fax'; expected one of call, email")
    assert message.text("zh-CN").startswith("值 'fax' 无法识别")


def test_nested_message_renders_parts_in_locale() -> None:
    parts = (Message("import.origin.row", {"row": 3}), Message("import.origin.existing_row", {"row": 1}))
    message = Message("import.duplicate.differences", {"items": parts})

    assert message.text("en") == "; differing values: row 3, existing row 1"
    assert message.text("zh-CN") == "；不同的值：第 3 行、数据目录中原有的第 1 行"


# ---------------------------------------------------------------------------------------
# Summary


def test_en_summary_unchanged(both_locales: tuple[ImportRun, ImportRun]) -> None:
    english, _ = both_locales
    text = english.summaries[0].format()

    assert text.splitlines()[1:5] == [
        "  rows read:         17",
        "  accepted:          5",
        f"  rejected:          12 -> {english.summaries[0].rejects_path}",
        "  coerced values:    18",
    ]
    assert "    declared_budget: currency sign removed x1, thousands separators removed x1" in text
    assert "  ignored columns:   none" in text
    assert "    (row): malformed_row x1" in text


def test_zh_summary_lines(both_locales: tuple[ImportRun, ImportRun]) -> None:
    _, chinese = both_locales
    summary = chinese.summaries[0]
    text = summary.format()

    assert text.startswith(f"已将 {summary.source}（csv，编码 utf-8，分隔符 ','）导入 {summary.output}")
    assert text.splitlines()[1:5] == [
        "  读取行数：    17",
        "  接受行数：    5",
        f"  拒绝行数：    12 -> {summary.rejects_path}",
        "  改写的值：    18",
    ]
    assert "    declared_budget：去掉货币符号 x1、去掉千位分隔符 x1" in text
    assert "  忽略的列：    无" in text
    assert "    （整行）：malformed_row（字段数多于表头） x1" in text
    assert "合并规则" in text


def test_format_takes_other_locale(both_locales: tuple[ImportRun, ImportRun]) -> None:
    english, chinese = both_locales

    assert chinese.summaries[0].format("en") == english.summaries[0].format().replace("/en/", "/zh/")


def test_zh_summary_labels_all_chinese(both_locales: tuple[ImportRun, ImportRun]) -> None:
    _, chinese = both_locales

    for summary in chinese.summaries:
        for line in summary.format().splitlines():
            if line.startswith("    "):
                assert "：" in line, line  # a detail such as "    lead_id：1"
            else:
                assert HAN.search(line), line


def test_every_coercion_label_translates(both_locales: tuple[ImportRun, ImportRun]) -> None:
    _, chinese = both_locales
    labels = {
        label for summary in chinese.summaries for counter in summary.coercions.values() for label in counter
    }

    untranslated = {label for label in labels if not HAN.search(coercion_text(label, "zh-CN"))}
    reached = {key for label in labels for key, pattern in _coercion_patterns() if pattern.fullmatch(label)}

    assert untranslated == set()
    assert reached == {key for key in catalog() if key.startswith("import.coercion.")}


def test_unknown_coercion_label_kept() -> None:
    assert coercion_text("something new", "zh-CN") == "something new"
    assert coercion_text("assumed UTC", "zh-CN") == "按时区 UTC 解读"
    assert coercion_text("亿 multiplier", "zh-CN") == "按“亿”换算"


# ---------------------------------------------------------------------------------------
# CLI


def run(arguments: list[str], env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    result = CliRunner(env=env).invoke(cli, ["--log-level", "WARNING", *arguments])
    return result.exit_code, result.stdout, result.stderr


def test_cli_locale_option(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "线索ID,创建时间\nA1,2024-03-05\n,2024-03-05\n", "gb18030")
    out = tmp_path / "out"

    code, stdout, _ = run(
        ["data", "import", str(path), "--table", "leads", "--out", str(out), "--locale", "zh-CN"]
    )

    assert code == 0, stdout
    assert "  读取行数：    2" in stdout
    assert "  拒绝行数：    1" in stdout
    assert read_rejects(out / "leads.rejects.csv")[0]["reason"] == "缺少必填值"


def test_cli_locale_from_environment(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\n,2024-03-05\n")
    out = tmp_path / "out"

    code, stdout, _ = run(
        ["data", "import", str(path), "--table", "leads", "--out", str(out)],
        env={"LEADSCORE_LOCALE": "zh-CN"},
    )

    assert code == 0, stdout
    assert "读取行数" in stdout
    assert read_rejects(out / "leads.rejects.csv")[0]["reason"] == "缺少必填值"


def test_cli_option_wins_over_environment(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\n,2024-03-05\n")
    out = tmp_path / "out"

    code, stdout, _ = run(
        ["data", "import", str(path), "--table", "leads", "--out", str(out), "--locale", "en"],
        env={"LEADSCORE_LOCALE": "zh-CN"},
    )

    assert code == 0, stdout
    assert "rows read:         1" in stdout
    assert read_rejects(out / "leads.rejects.csv")[0]["reason"] == "required value is missing"


def test_cli_default_locale_is_en(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\n,2024-03-05\n")

    code, stdout, _ = run(
        ["data", "import", str(path), "--table", "leads", "--out", str(tmp_path / "out")],
        env={"LEADSCORE_LOCALE": None},
    )

    assert code == 0, stdout
    assert "rows read:         1" in stdout


def test_cli_unknown_locale_exits_two(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\nA1,2024-03-05\n")

    code, _, stderr = run(
        ["data", "import", str(path), "--table", "leads", "--out", str(tmp_path / "out"), "--locale", "fr"]
    )

    assert code == 2
    assert "'fr' is not one of 'en', 'zh-CN'" in stderr
