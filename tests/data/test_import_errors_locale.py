"""Errors that stop ``leadscore data import``, in zh-CN with ``--locale zh-CN`` and unchanged in English.

Each case writes a real bad input into tmp_path and runs the CLI twice. In the default
locale the English error must read as it always has. With ``--locale zh-CN`` the error must
be Chinese and still name the offending value and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from data.import_messages import Message, catalog, import_error
from data.importer import import_file
from leadscore.cli.main import cli
from leadscore.errors import ConfigError, InputFileError, SchemaError
from leadscore.i18n import errors_in_locale

HAN = re.compile(r"[\u4e00-\u9fff]")
LEADS = "lead_id,created_at\nA1,2024-03-05\n"


@dataclass(frozen=True)
class BadInput:
    """One bad input: how to write it, the options it needs, and the expected error texts."""

    write: Callable[[Path], list[str]]  # writes the input into a folder, returns the CLI arguments
    english: str  # the English error, after "error: " ({folder} is replaced by the folder)
    chinese: tuple[str, ...]  # fragments of the zh-CN error: the offending value and the fix


def csv_file(name: str, content: bytes | str, *options: str) -> Callable[[Path], list[str]]:
    def write(folder: Path) -> list[str]:
        path = folder / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return [str(path), *options]

    return write


def workbook(sheets: dict[str, list[list[object]]], *options: str) -> Callable[[Path], list[str]]:
    def write(folder: Path) -> list[str]:
        book = openpyxl.Workbook()
        first = book.active
        assert first is not None
        book.remove(first)
        for title, rows in sheets.items():
            sheet = book.create_sheet(title)
            for row in rows:
                sheet.append(row)
        path = folder / "leads.xlsx"
        book.save(path)
        return [str(path), *options]

    return write


def with_mapping(text: str, content: str = LEADS) -> Callable[[Path], list[str]]:
    def write(folder: Path) -> list[str]:
        (folder / "mapping.toml").write_text(text, "utf-8")
        (folder / "leads.csv").write_text(content, "utf-8")
        return [str(folder / "leads.csv"), "--mapping", str(folder / "mapping.toml")]

    return write


def gbk_mapping(folder: Path) -> list[str]:
    (folder / "mapping.toml").write_bytes("placeholders = ['待跟进']\n".encode("gbk"))
    (folder / "leads.csv").write_text(LEADS, "utf-8")
    return [str(folder / "leads.csv"), "--mapping", str(folder / "mapping.toml")]


def missing_path(name: str) -> Callable[[Path], list[str]]:
    return lambda folder: [str(folder / name)]


DAMAGED_UTF8 = ("lead_id,created_at,company_name\n" + "A1,2024-03-05,北京某某科技有限公司\n" * 5).encode()

CASES: dict[str, BadInput] = {
    "undecodable": BadInput(
        csv_file("leads.csv", b"lead_id,created_at\nA1,\xff\n"),
        "{folder}/leads.csv: cannot decode byte 0xFF at byte offset 22 (line 2); the file is not UTF-8, "
        "UTF-8 with BOM or GB18030/GBK. Save it again as 'CSV UTF-8' or export it as XLSX",
        ("字节偏移 22 处（第 2 行）的字节 0xFF", "请重新另存为“CSV UTF-8”，或导出为 XLSX"),
    ),
    "utf16": BadInput(
        csv_file("leads.csv", LEADS.encode("utf-16")),
        "{folder}/leads.csv: the file starts with a UTF-16 byte order mark (byte offset 0), as Excel's "
        "'Unicode Text' export does; UTF-16 is not supported. Save it again as 'CSV UTF-8' or export it "
        "as XLSX",
        ("UTF-16 字节顺序标记", "字节偏移 0", "不支持 UTF-16", "请重新另存为“CSV UTF-8”"),
    ),
    "damaged_utf8": BadInput(
        csv_file("leads.csv", DAMAGED_UTF8 + b"A2,2024-03-05,\xe5\x8c\n"),
        "{folder}/leads.csv: the file is UTF-8, but byte 0xE5 at byte offset 271 (line 7) is not valid "
        "UTF-8. Delete or retype the damaged character on that line, or export the file again as "
        "'CSV UTF-8'",
        ("字节偏移 271 处（第 7 行）的字节 0xE5", "请删除或重新输入该行中损坏的字符"),
    ),
    "nul_byte": BadInput(
        csv_file("leads.csv", b"lead_id\x00,x\n"),
        "{folder}/leads.csv: NUL byte at byte offset 7; the file looks like UTF-16 or binary data, not "
        "UTF-8 or GB18030 text. Save it again as 'CSV UTF-8' or export it as XLSX",
        ("字节偏移 7 处有 NUL 字节", "请重新另存为“CSV UTF-8”"),
    ),
    "xls": BadInput(
        csv_file("leads.xls", b"\xd0\xcf\x11\xe0"),
        "{folder}/leads.xls: the old Excel .xls format is not supported; save it as .xlsx or CSV",
        ("leads.xls：不支持旧版 Excel 的 .xls 格式", "请另存为 .xlsx 或 CSV"),
    ),
    "not_found": BadInput(
        missing_path("nope.csv"),
        "input file {folder}/nope.csv not found",
        ("找不到输入文件", "nope.csv"),
    ),
    "folder": BadInput(
        lambda folder: [str(folder)],
        "{folder} is a folder; pass the path of the exported file itself",
        ("是文件夹", "请传入导出文件本身的路径"),
    ),
    "empty_file": BadInput(
        csv_file("leads.csv", "\n \n"),
        "{folder}/leads.csv: the file is empty; expected a header row and data rows",
        ("leads.csv：文件是空的", "一行表头"),
    ),
    "broken_quote": BadInput(
        csv_file("leads.csv", 'lead_id,created_at\n"A1,2024-03-05\nA2,2024-03-05\n'),
        "{folder}/leads.csv: invalid CSV in the row that starts on line 2 (error near line 3: unexpected "
        'end of data). A quote (") that opens a field is probably not closed, or text follows a closing '
        'quote; a quote inside a quoted field is written as "". Fix the quotes on that line or export the '
        "file again",
        ("从第 2 行开始", "第 3 行附近", '引号本身要写成 ""', "请修正该行的引号，或重新导出文件"),
    ),
    "missing_column": BadInput(
        csv_file("leads.csv", "线索ID\nA1\n"),
        "table 'leads' lacks required column(s): created_at (accepted headers: created_at, 创建时间, "
        "录入时间, 线索创建时间, Created At, Created, created time). Headers in the file: '线索ID'",
        (
            "表 'leads' 缺少必需的列：created_at（可接受的表头：created_at, 创建时间",
            "文件中的表头为 '线索ID'",
        ),
    ),
    "two_headers": BadInput(
        csv_file("leads.csv", "线索ID,Lead ID,created_at\nA1,A1,2024-03-05\n"),
        "table 'leads': headers '线索ID' and 'Lead ID' both map to 'lead_id'; rename one of them in the "
        "mapping file ([tables.leads.columns]) or remove it from the file",
        ("表头 '线索ID' 和 'Lead ID' 都对应列 'lead_id'", "[tables.leads.columns] 中重命名其中一个"),
    ),
    "other_unit": BadInput(
        csv_file("leads.csv", "lead_id,created_at,预算（万元）\nA1,2024-03-05,1\n"),
        "table 'leads': header '预算（万元）' matches 'declared_budget', but its note (万元) names a unit "
        "other than yuan; convert the column to yuan, or rename the header in the mapping file "
        "([tables.leads.columns]) once the values are in yuan",
        ("表头 '预算（万元）' 对应列 'declared_budget'", "（万元）中的单位不是元", "请把该列换算成元"),
    ),
    "date_format": BadInput(
        csv_file("leads.csv", LEADS, "--date-format", "YYYY-MM-DD"),
        "--date-format: date format 'YYYY-MM-DD' has no % directive; write it like '%Y/%m/%d %H:%M'",
        ("--date-format：日期格式 'YYYY-MM-DD' 中没有 % 格式符", "请写成 '%Y/%m/%d %H:%M'"),
    ),
    "timezone": BadInput(
        csv_file("leads.csv", LEADS, "--timezone", "Shanghai"),
        "unknown time zone 'Shanghai'; use an IANA name such as Asia/Shanghai",
        ("时区 'Shanghai' 无法识别", "请使用 IANA 时区名，如 Asia/Shanghai"),
    ),
    "no_sheet": BadInput(
        workbook({"线索": [["lead_id", "created_at"], ["A1", "2024-03-05"]]}, "--sheet", "other"),
        "{folder}/leads.xlsx: no worksheet named 'other'; sheets: 线索",
        ("没有名为 'other' 的工作表", "工作簿中的工作表为 线索"),
    ),
    "first_sheet": BadInput(
        workbook({"说明": [["导出说明"]], "线索": [["lead_id", "created_at"], ["A1", "2024-03-05"]]}),
        "table 'leads' lacks required column(s): lead_id (accepted headers: lead_id, 线索ID, 线索编号, "
        "线索id, Lead ID, LeadId, lead id, Prospect ID); created_at (accepted headers: created_at, 创建时间, "
        "录入时间, 线索创建时间, Created At, Created, created time). Headers in the file: '导出说明'. "
        "These headers come from the first worksheet '说明'; the workbook also has '线索': choose the "
        "worksheet with --sheet",
        (
            "缺少必需的列：lead_id",
            "；created_at",
            "来自第一个工作表 '说明'",
            "还有 '线索'",
            "请用 --sheet 选择工作表",
        ),
    ),
    "mapping_key": BadInput(
        with_mapping("timezon = 'UTC'\n"),
        "{folder}/mapping.toml is invalid:\n  - timezon: unknown key 'timezon'; did you mean 'timezone'?",
        ("mapping.toml 无效：", "  - timezon：无法识别的键 'timezon'；是否应为 'timezone'？"),
    ),
    "mapping_fields": BadInput(
        with_mapping("timezone = 'Mars/Base'\n[tables.leads.columns]\n'客户编码' = 123\n"),
        "{folder}/mapping.toml is invalid:\n"
        "  - timezone: unknown time zone 'Mars/Base'; use an IANA name such as Asia/Shanghai\n"
        "  - tables.leads.columns.客户编码: Input should be a valid string (quote it: YAML reads an "
        "unquoted 0123 as the number 83 and yes/no as true/false)",
        (
            "  - timezone：时区 'Mars/Base' 无法识别；请使用 IANA 时区名，如 Asia/Shanghai\n",
            "  - tables.leads.columns.客户编码：Input should be a valid string（请给该值加引号",
        ),
    ),
    "mapping_value_map": BadInput(
        with_mapping("[tables.activities.values.type]\n'上门' = 'visit'\n'传真' = 'fax'\n"),
        "{folder}/mapping.toml is invalid:\n"
        "  - (top level): tables.activities.values.type: '传真' maps to 'fax', which is not one of call, "
        "wechat, email, visit, demo, quote, form, other",
        ("  - （顶层）：tables.activities.values.type：'传真' 映射到 'fax'，但它不是可接受的值之一（call,",),
    ),
    "mapping_syntax": BadInput(
        with_mapping("timezone = \n"),
        "mapping file {folder}/mapping.toml is not valid TOML: Invalid value (at line 1, column 12)",
        ("映射文件", "不是有效的 TOML：Invalid value (at line 1, column 12)"),
    ),
    "mapping_encoding": BadInput(
        gbk_mapping,
        "mapping file {folder}/mapping.toml is not UTF-8 (byte offset 17); save it as UTF-8",
        ("不是 UTF-8 编码（字节偏移 17）", "请另存为 UTF-8"),
    ),
}


def run_import(arguments: list[str], out: Path, *extra: str) -> tuple[int, str]:
    runner = CliRunner(env={"LEADSCORE_LOCALE": None})
    command = ["--log-level", "WARNING", "data", "import", *arguments, "--table", "leads", "--out", str(out)]
    result = runner.invoke(cli, [*command, *extra])
    return result.exit_code, result.stderr


@pytest.mark.parametrize("name", sorted(CASES))
def test_english_error_unchanged(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    arguments = case.write(tmp_path)

    code, stderr = run_import(arguments, tmp_path / "out")

    assert code == 2, stderr
    assert stderr == f"error: {case.english.format(folder=tmp_path)}\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_zh_error_names_value_and_fix(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    arguments = case.write(tmp_path)

    code, stderr = run_import(arguments, tmp_path / "out", "--locale", "zh-CN")

    assert code == 2, stderr
    assert HAN.search(stderr.removeprefix("error: ")), stderr
    for fragment in case.chinese:
        assert fragment in stderr, stderr
    assert case.english.format(folder=tmp_path) not in stderr


def test_zh_error_writes_nothing(tmp_path: Path) -> None:
    arguments = CASES["missing_column"].write(tmp_path)

    code, _ = run_import(arguments, tmp_path / "out", "--locale", "zh-CN")

    assert code == 2
    assert not (tmp_path / "out").exists()


def test_locale_setting_translates_errors(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("线索ID\nA1\n", "utf-8")
    command = ["data", "import", str(path), "--table", "leads", "--out", str(tmp_path / "out")]

    result = CliRunner(env={"LEADSCORE_LOCALE": "zh-CN"}).invoke(cli, command)

    assert result.exit_code == 2
    assert "缺少必需的列：created_at" in result.stderr


# ---------------------------------------------------------------------------------------
# The exceptions behind the messages


def test_error_keeps_class_and_english_text(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("线索ID\nA1\n", "utf-8")

    with pytest.raises(SchemaError) as raised:
        import_file(path, "leads", tmp_path / "out")

    assert str(raised.value).startswith("table 'leads' lacks required column(s): created_at")
    assert isinstance(raised.value.args[0], Message)


def test_errors_in_locale_keeps_class_and_cause() -> None:
    original = InputFileError(import_error("not_found", path="x.csv"))

    with pytest.raises(InputFileError) as raised, errors_in_locale("zh-CN"):
        raise original

    assert str(raised.value) == "找不到输入文件 x.csv"
    assert raised.value.__cause__ is original
    assert str(original) == "input file x.csv not found"


def test_errors_in_locale_leaves_plain_text() -> None:
    original = ConfigError("plain English only")

    with pytest.raises(ConfigError) as raised, errors_in_locale("zh-CN"):
        raise original

    assert raised.value is original


# ---------------------------------------------------------------------------------------
# The catalog


@pytest.mark.parametrize(
    "key", sorted(key for key in catalog() if key.startswith(("import.error.", "validate.error.")))
)
def test_zh_error_template_is_chinese(key: str) -> None:
    texts = catalog()[key]
    if not re.search(r"[A-Za-z]", re.sub(r"\{\w+\}", "", texts["en"])):
        pytest.skip("the template has no words, only parameters and punctuation")

    assert HAN.search(texts["zh-CN"]), texts


@pytest.mark.parametrize("key", sorted(catalog()))
def test_template_avoids_translate_arguments(key: str) -> None:
    fields = set(re.findall(r"\{(\w+)", catalog()[key]["en"] + catalog()[key]["zh-CN"]))

    assert fields.isdisjoint({"key", "locale"}), key
