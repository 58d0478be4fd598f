"""Hostile CRM exports: damaged bytes, broken quoting, spreadsheet traps and placeholder values.

Each test pins a defect found by feeding the importer files a careless or malicious user
could produce. An import must accept each row or reject it with a reason, and a file it
cannot read must fail with a message naming the problem and the fix.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

from data.encoding import decode_bytes
from data.governance import is_title_only_name
from data.importer import ImportSummary, import_file
from data.mapping import load_mapping
from data.parsing import parse_numbers, parse_stages, parse_timestamps
from data.readers import read_raw
from leadscore.cli.main import cli
from leadscore.errors import ConfigError, InputFileError, SchemaError

if TYPE_CHECKING:
    from tests.data.conftest import CrmFiles


def reject_rows(out: Path, table: str) -> list[dict[str, str]]:
    """Return the lines of TABLE.rejects.csv as dicts."""
    text = (out / f"{table}.rejects.csv").read_bytes().decode("utf-8-sig")
    return list(csv.DictReader(text.splitlines()))


def assert_counts_add_up(summary: ImportSummary) -> None:
    assert summary.read == summary.accepted + summary.rejected


def run_cli(*arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--log-level", "WARNING", *arguments])
    return result.exit_code, result.stdout, result.stderr


# ---------------------------------------------------------------------------------------
# Encodings


def damaged_utf8_export() -> tuple[bytes, int]:
    """Return a UTF-8 leads export with one stray byte that GB18030 happens to accept, and its offset.

    Every Chinese run has an even number of characters except the last name, so after the
    stray byte 0xA1 the whole file is valid GB18030, as mojibake.
    """
    names = ["上海公司", "北京", "深圳科技", "广州"]
    lines = ["lead_id,created_at,company_name"]
    lines += [f"{index},2024-03-05,{names[index % 4]}" for index in range(300)]
    lines.append("900,2024-03-05,北京市")
    raw = ("\n".join(lines) + "\n").encode("utf-8")
    offset = raw.rindex("北京市".encode())
    return raw[:offset] + b"\xa1" + raw[offset:], offset


def test_damaged_utf8_not_read_as_gb18030() -> None:
    raw, offset = damaged_utf8_export()
    raw.decode("gb18030")  # the trap: GB18030 accepts these bytes
    with pytest.raises(InputFileError) as raised:
        decode_bytes(raw, "leads.csv")
    message = str(raised.value)
    assert f"byte offset {offset}" in message
    assert "0xA1" in message
    assert "line 302" in message
    assert "UTF-8" in message


def test_damaged_utf8_import_exits_two(crm_files: CrmFiles, tmp_path: Path) -> None:
    raw, offset = damaged_utf8_export()
    path = crm_files.folder / "leads.csv"
    path.write_bytes(raw)
    code, _, error = run_cli("data", "import", str(path), "--table", "leads", "--out", str(tmp_path / "out"))
    assert code == 2
    assert f"byte offset {offset}" in error
    assert not (tmp_path / "out" / "leads.parquet").exists()


def test_gbk_file_still_decodes() -> None:
    rows = "".join(f"{index},2024-03-05,联通上海分公司\n" for index in range(50))
    text = "线索ID,创建时间,客户名称\n" + rows
    decoded = decode_bytes(text.encode("gbk"), "leads.csv")
    assert decoded.encoding == "gb18030"
    assert decoded.text == text


def test_utf16_named_in_error() -> None:
    with pytest.raises(InputFileError, match=r"UTF-16.*byte offset 0.*CSV UTF-8"):
        decode_bytes("线索ID\tcreated_at\n1\t2024-03-05\n".encode("utf-16"), "leads.txt")


# ---------------------------------------------------------------------------------------
# CSV structure


def test_unclosed_quote_at_end_is_error(crm_files: CrmFiles) -> None:
    text = 'lead_id,created_at,company_name\n1,2024-03-05,"abc\n2,2024-03-05,x\n3,2024-03-05,y\n'
    with pytest.raises(InputFileError, match=r"starts on line 2.*quote"):
        read_raw(crm_files.csv("leads.csv", text))


def test_unclosed_quote_mid_file_is_error(crm_files: CrmFiles) -> None:
    text = (
        'lead_id,created_at,company_name\n1,2024-03-05,"abc\n2,2024-03-05,x\n'
        '3,2024-03-05,"y"\n4,2024-03-05,z\n'
    )
    with pytest.raises(InputFileError, match=r"starts on line 2.*quote"):
        read_raw(crm_files.csv("leads.csv", text))


def test_quoted_newlines_still_read(crm_files: CrmFiles) -> None:
    text = 'lead_id,company_name\n1,"line one\nline ""two"""\n2,x\n'
    table = read_raw(crm_files.csv("leads.csv", text))
    assert table.rows == [["1", 'line one\nline "two"'], ["2", "x"]]
    assert table.row_numbers == [1, 2]


def test_directory_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="is a folder"):
        read_raw(tmp_path)


# ---------------------------------------------------------------------------------------
# The rejects file


def test_rejects_file_escapes_formulas(crm_files: CrmFiles, tmp_path: Path) -> None:
    text = (
        "lead_id,created_at,declared_budget\n1,=cmd|' /C calc'!A0,\n"
        "2,2024-03-05,@SUM(A1)\n3,2024-03-05,-300\n"
    )
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("leads.csv", text), "leads", out)
    assert_counts_add_up(summary)
    values = {row["row"]: row["value"] for row in reject_rows(out, "leads")}
    assert values["1"] == "'=cmd|' /C calc'!A0"
    assert values["2"] == "'@SUM(A1)"
    assert values["3"] == "-300"  # a plain negative number is no formula


def test_long_cell_capped_in_rejects(crm_files: CrmFiles, tmp_path: Path) -> None:
    text = "lead_id,created_at\n1," + "x" * 100_000 + "\n2,2024-03-05\n"
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("leads.csv", text), "leads", out)
    assert (summary.accepted, summary.rejected) == (1, 1)
    [reject] = reject_rows(out, "leads")
    assert len(reject["value"]) <= 80
    assert len(reject["reason"]) < 400
    assert "not a recognized date" in reject["reason"]


def test_second_import_keeps_first_rejects(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = crm_files.csv("crm.csv", "lead_id,created_at\nL1,2024-03-05\nL2,someday\n")
    second = crm_files.csv("forms.csv", "lead_id,created_at\nL3,2024-03-06\nL4,\n")
    import_file(first, "leads", out)
    import_file(second, "leads", out)
    sources = sorted((row["source"], row["row"]) for row in reject_rows(out, "leads"))
    assert sources == [("crm.csv", "2"), ("forms.csv", "2")]


def test_reimport_replaces_own_rejects(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = crm_files.csv("crm.csv", "lead_id,created_at\nL1,2024-03-05\nL2,someday\n")
    import_file(path, "leads", out)
    import_file(path, "leads", out)
    assert [(row["source"], row["row"]) for row in reject_rows(out, "leads")] == [("crm.csv", "2")]


def test_corrupt_existing_table_is_input_error(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "leads.parquet").write_bytes(b"not parquet")
    path = crm_files.csv("leads.csv", "lead_id,created_at\nL1,2024-03-05\n")
    with pytest.raises(InputFileError, match=r"leads\.parquet.*another --out"):
        import_file(path, "leads", out)
    code, _, error = run_cli("data", "import", str(path), "--table", "leads", "--out", str(out))
    assert code == 2
    assert "Traceback" not in error


def test_validate_corrupt_table_exits_two(tmp_path: Path) -> None:
    (tmp_path / "leads.parquet").write_bytes(b"not parquet")
    code, _, error = run_cli("data", "validate", str(tmp_path))
    assert code == 2
    assert "leads.parquet" in error


# ---------------------------------------------------------------------------------------
# Ids


def test_float_id_beyond_exact_range_rejected(crm_files: CrmFiles, tmp_path: Path) -> None:
    # A float column printed with one decimal: 1234567890123456789 became ...768.0.
    text = "lead_id,created_at\n1234567890123456768.0,2024-03-05\n123.0,2024-03-05\n"
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("leads.csv", text), "leads", out)
    assert (summary.accepted, summary.rejected) == (1, 1)
    [reject] = reject_rows(out, "leads")
    assert reject["row"] == "1"
    assert "export the id column as text" in reject["reason"]
    assert pd.read_parquet(out / "leads.parquet")["lead_id"].tolist() == ["123"]


def test_xlsx_numeric_id_beyond_excel_precision(crm_files: CrmFiles, tmp_path: Path) -> None:
    # Excel keeps 15 significant digits: a 16-digit id typed as a number is saved with its
    # last digit set to 0, and openpyxl reads the saved digits back as an int.
    rows = [["线索ID", "创建时间"], [1234567890123450, "2024-03-05"], [123456789012345, "2024-03-05"]]
    out = tmp_path / "out"
    summary = import_file(crm_files.xlsx("leads.xlsx", rows), "leads", out)
    assert (summary.accepted, summary.rejected) == (1, 1)
    [reject] = reject_rows(out, "leads")
    assert reject["row"] == "1"
    assert "export the id column as text" in reject["reason"]
    assert pd.read_parquet(out / "leads.parquet")["lead_id"].tolist() == ["123456789012345"]


def test_xlsx_large_amount_still_parses(crm_files: CrmFiles, tmp_path: Path) -> None:
    rows = [
        ["订单号", "客户ID", "下单时间", "金额"],
        ["O1", "C1", "2024-03-05", 2_000_000_000_000_000],
        ["O2", "C1", "2024-03-05", -2_000_000_000_000_000],
    ]
    out = tmp_path / "out"
    import_file(crm_files.xlsx("orders.xlsx", rows), "orders", out)
    assert pd.read_parquet(out / "orders.parquet")["amount"].tolist() == [2e15, -2e15]


# ---------------------------------------------------------------------------------------
# XLSX layout


def test_merged_xlsx_cells_fill_covered_rows(crm_files: CrmFiles, tmp_path: Path) -> None:
    rows = [
        ["线索ID", "创建时间", "区域"],
        ["L1", "2024-03-05", "华东"],
        ["L2", "2024-03-05", None],
        ["L3", "2024-03-05", "华南"],
    ]
    path = crm_files.xlsx("leads.xlsx", rows)
    workbook = openpyxl.load_workbook(path)
    worksheet = workbook.active
    assert worksheet is not None
    worksheet.merge_cells("C2:C3")
    workbook.save(path)

    out = tmp_path / "out"
    summary = import_file(path, "leads", out)
    frame = pd.read_parquet(out / "leads.parquet")
    assert frame["region"].tolist() == ["华东", "华东", "华南"]
    assert summary.coercions["region"]["merged cell value copied"] == 1


def test_first_sheet_without_columns_names_sheets(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    notes = workbook.active
    assert notes is not None
    notes.title = "说明"
    notes.append(["导出说明"])
    data = workbook.create_sheet("线索")
    data.append(["线索ID", "创建时间"])
    data.append(["L1", "2024-03-05"])
    path = tmp_path / "leads.xlsx"
    workbook.save(path)
    with pytest.raises(SchemaError, match=r"first worksheet '说明'.*'线索'.*--sheet"):
        import_file(path, "leads", tmp_path / "out")


# ---------------------------------------------------------------------------------------
# Timestamps


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York"])
@pytest.mark.parametrize(
    "text",
    ["0001-01-01", "0001-01-01T00:00:00+08:00", "9999-12-31 23:59:59", "1900-01-01", "2999-01-01"],
)
def test_placeholder_dates_rejected(text: str, zone: str) -> None:
    parsed = parse_timestamps([text], timezone=zone)
    assert parsed.values == [None]
    assert "1950-2099" in parsed.errors[0]


def test_placeholder_date_import_counts(crm_files: CrmFiles, tmp_path: Path) -> None:
    text = "lead_id,created_at\n1,0001-01-01\n2,9999-12-31\n3,2024-03-05\n"
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("leads.csv", text), "leads", out, timezone="America/New_York")
    assert (summary.read, summary.accepted, summary.rejected) == (3, 1, 2)


def test_chinese_meridiem_times() -> None:
    parsed = parse_timestamps(
        ["2024/3/5 下午 2:02:00", "2024/3/5 上午 12:30", "2024-03-05 下午12:05"], timezone="UTC"
    )
    assert parsed.errors == {}
    assert parsed.values == [
        pd.Timestamp("2024-03-05 14:02", tz="UTC"),
        pd.Timestamp("2024-03-05 00:30", tz="UTC"),
        pd.Timestamp("2024-03-05 12:05", tz="UTC"),
    ]


def test_invalid_meridiem_hour_rejected() -> None:
    parsed = parse_timestamps(["2024/3/5 下午 13:02"], timezone="UTC")
    assert parsed.values == [None]
    assert "13" in parsed.errors[0]


def test_cli_date_format_needs_directive(crm_files: CrmFiles, tmp_path: Path) -> None:
    path = crm_files.csv("leads.csv", "lead_id,created_at\n1,2024-03-05\n")
    with pytest.raises(ConfigError, match=r"'YYYY-MM-DD' has no % directive"):
        import_file(path, "leads", tmp_path / "out", date_formats=["YYYY-MM-DD"])


# ---------------------------------------------------------------------------------------
# Values


def test_title_without_surname_is_placeholder() -> None:
    assert is_title_only_name("经理")
    assert is_title_only_name("张经理")
    assert not is_title_only_name("张伟")


def test_multiplier_coercion_names_unit() -> None:
    parsed = parse_numbers(["1.5亿元", "2万"])
    assert parsed.values == [1.5e8, 2e4]
    assert parsed.coercions["亿 multiplier"] == 1
    assert parsed.coercions["万 multiplier"] == 1
    assert "元 multiplier" not in parsed.coercions


def test_unknown_stage_names_mapping_key() -> None:
    parsed = parse_stages(["待回访"])
    assert "[tables.stage_changes.values.stage]" in parsed.errors[0]


# ---------------------------------------------------------------------------------------
# Mapping files


def test_yaml_number_key_hints_quotes(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("tables:\n  leads:\n    columns:\n      0123: lead_id\n", "utf-8")
    with pytest.raises(ConfigError, match="quote"):
        load_mapping(path)


def test_gbk_mapping_file_names_fix(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_bytes('[tables.leads.columns]\n"客户编码" = "lead_id"\n'.encode("gbk"))
    with pytest.raises(ConfigError, match="save it as UTF-8"):
        load_mapping(path)


def test_rejects_saved_as_gbk_are_kept(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = crm_files.csv("线索.csv", "lead_id,created_at\nL1,2024-03-05\nL2,某天\n")
    import_file(first, "leads", out)
    rejects_path = out / "leads.rejects.csv"
    rejects_path.write_bytes(rejects_path.read_bytes().decode("utf-8-sig").encode("gbk"))

    second = crm_files.csv("forms.csv", "lead_id,created_at\nL3,\n")
    import_file(second, "leads", out)
    lines = reject_rows(out, "leads")
    assert [(line["source"], line["value"]) for line in lines] == [("线索.csv", "某天"), ("forms.csv", "")]


# ---------------------------------------------------------------------------------------
# Parquet types


def test_parquet_binary_strings_decoded(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "leads.parquet"
    columns = {
        "lead_id": pa.array([b"L1", "线索2".encode()]),
        "created_at": pa.array(["2024-03-05", "2024-03-06"]),
    }
    pq.write_table(pa.table(columns), path)
    out = tmp_path / "out"
    import_file(path, "leads", out)
    assert pd.read_parquet(out / "leads.parquet")["lead_id"].tolist() == ["L1", "线索2"]


def test_parquet_binary_non_text_is_error(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "leads.parquet"
    columns = {"lead_id": pa.array([b"\xff\xfe"]), "created_at": pa.array(["2024-03-05"])}
    pq.write_table(pa.table(columns), path)
    with pytest.raises(InputFileError, match=r"column 'lead_id'.*not UTF-8"):
        import_file(path, "leads", tmp_path / "out")


def test_xlsx_formula_without_result_rejected(crm_files: CrmFiles, tmp_path: Path) -> None:
    # openpyxl saves formulas without a cached result, as export libraries often do.
    rows = [
        ["线索ID", "创建时间", "客户名称"],
        ["L1", "2024-03-05", '=CONCAT("a","b")'],
        ["L2", "2024-03-05", "乙公司"],
    ]
    out = tmp_path / "out"
    summary = import_file(crm_files.xlsx("leads.xlsx", rows), "leads", out)
    assert (summary.read, summary.accepted, summary.rejected) == (2, 1, 1)
    [reject] = reject_rows(out, "leads")
    assert reject["row"] == "1"
    assert "C2" in reject["reason"]
    assert "save it again" in reject["reason"]


def test_excel_error_values_are_placeholders(crm_files: CrmFiles, tmp_path: Path) -> None:
    text = "lead_id,created_at,region,declared_budget\nL1,2024-03-05,#REF!,#DIV/0!\n"
    out = tmp_path / "out"
    summary = import_file(crm_files.csv("leads.csv", text), "leads", out)
    assert summary.accepted == 1
    assert summary.placeholders == {"region": 1, "declared_budget": 1}
    frame = pd.read_parquet(out / "leads.parquet")
    assert frame["region"].isna().all()


def test_xlsx_formula_with_result_accepted(crm_files: CrmFiles, tmp_path: Path) -> None:
    import zipfile

    rows = [["线索ID", "创建时间", "客户名称", "预算"], ["L1", "2024-03-05", "placeholder", 0]]
    written = crm_files.xlsx("leads.xlsx", rows)
    path = tmp_path / "excel-saved.xlsx"
    # Rewrite C2 and D2 the way Excel saves formulas: with their results, and t="str" for text.
    with zipfile.ZipFile(written) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                text = text.replace(
                    '<c r="C2" t="inlineStr"><is><t>placeholder</t></is></c>',
                    '<c r="C2" t="str"><f>CONCAT("甲","乙")</f><v>甲乙</v></c>',
                )
                text = text.replace('<c r="D2" t="n"><v>0</v></c>', '<c r="D2"><f>1+1</f><v>2</v></c>')
                assert "CONCAT" in text
                assert "1+1" in text
                data = text.encode()
            target.writestr(item, data)

    out = tmp_path / "out"
    summary = import_file(path, "leads", out)
    assert (summary.accepted, summary.rejected) == (1, 0)
    frame = pd.read_parquet(out / "leads.parquet")
    assert frame["company_name"].tolist() == ["甲乙"]
    assert frame["declared_budget"].tolist() == [2.0]


def test_unreadable_rejects_file_stops_before_writing(crm_files: CrmFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_file(crm_files.csv("crm.csv", "lead_id,created_at\nL1,2024-03-05\n"), "leads", out)
    (out / "leads.rejects.csv").write_bytes("source,row\n".encode("utf-16"))
    with pytest.raises(InputFileError, match="UTF-16"):
        import_file(crm_files.csv("forms.csv", "lead_id,created_at\nL2,2024-03-06\n"), "leads", out)
    assert pd.read_parquet(out / "leads.parquet")["lead_id"].tolist() == ["L1"]
