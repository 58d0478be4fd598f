"""Encodings, delimiters and cell texts of CSV, XLSX and Parquet files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from data.encoding import decode_bytes
from data.readers import format_cell, read_raw, sniff_delimiter
from leadscore.errors import InputFileError

if TYPE_CHECKING:
    from tests.data.conftest import CrmFiles


def test_utf8_without_bom() -> None:
    decoded = decode_bytes("线索ID\n1\n".encode(), "x.csv")
    assert decoded.encoding == "utf-8"
    assert decoded.text.startswith("线索ID")


def test_utf8_bom_is_stripped() -> None:
    decoded = decode_bytes("\ufeff线索ID\n1\n".encode(), "x.csv")
    assert decoded.encoding == "utf-8-sig"
    assert decoded.text.startswith("线索ID")


def test_gb18030_is_detected() -> None:
    decoded = decode_bytes("线索ID,创建时间\n".encode("gb18030"), "x.csv")
    assert decoded.encoding == "gb18030"
    assert decoded.text == "线索ID,创建时间\n"


def test_undecodable_bytes_name_offset() -> None:
    raw = "线索ID\n".encode("gb18030") + b"12\xff\n"
    with pytest.raises(InputFileError) as raised:
        decode_bytes(raw, "bad.csv")
    message = str(raised.value)
    assert "byte offset 9" in message
    assert "0xFF" in message
    assert "line 2" in message
    assert "bad.csv" in message


def test_utf16_is_rejected() -> None:
    with pytest.raises(InputFileError, match="byte offset 0"):
        decode_bytes("lead_id\n1\n".encode("utf-16"), "x.csv")
    with pytest.raises(InputFileError, match="NUL byte"):
        decode_bytes("lead_id\n1\n".encode("utf-16-le"), "x.csv")


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiter_sniffing(delimiter: str) -> None:
    text = delimiter.join(["a", "b", "c"]) + "\n" + delimiter.join(["1", '"x, y; z"', "3"]) + "\n"
    assert sniff_delimiter(text) == delimiter


def test_single_column_defaults_to_comma() -> None:
    assert sniff_delimiter("lead_id\n1\n2\n") == ","


def test_csv_quoted_fields_and_row_numbers(crm_files: CrmFiles) -> None:
    text = 'lead_id;note\n001;"line one\nline two; still note"\n\n003;"say ""hi"""\n'
    table = read_raw(crm_files.csv("x.csv", text))
    assert table.delimiter == ";"
    assert table.headers == ["lead_id", "note"]
    assert table.rows == [["001", "line one\nline two; still note"], ["003", 'say "hi"']]
    assert table.row_numbers == [1, 3]
    assert table.blank_rows == 1


def test_csv_short_and_long_rows(crm_files: CrmFiles) -> None:
    table = read_raw(crm_files.csv("x.csv", "a,b,c\n1\n1,2,3,4\n1,2,3,,\n"))
    assert table.rows[0] == ["1", None, None]
    assert table.row_errors == {2: "row has 4 fields but the header has 3 columns"}
    assert 3 not in table.row_errors


def test_bom_never_in_header(crm_files: CrmFiles) -> None:
    table = read_raw(crm_files.csv("x.csv", "线索ID,创建时间\n1,2024-01-01\n", "utf-8-sig"))
    assert table.headers[0] == "线索ID"
    assert table.encoding == "utf-8-sig"


def test_empty_file_is_error(crm_files: CrmFiles) -> None:
    with pytest.raises(InputFileError, match="empty"):
        read_raw(crm_files.csv("x.csv", "\n\n"))


def test_missing_file_is_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        read_raw(tmp_path / "nope.csv")


def test_xls_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InputFileError, match=r"\.xls"):
        read_raw(path)


def test_broken_xlsx_is_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputFileError, match="not a readable XLSX"):
        read_raw(path)


def test_xlsx_cells_become_text(crm_files: CrmFiles) -> None:
    rows = [
        ["lead_id", "created_at", "budget", "note"],
        ["1234567890123456789", dt.datetime(2024, 3, 5, 14, 2), 1234.5, None],
        [123, 45356.5, 2000.0, "x"],
        [None, None, None, None],
        ["00123", "2024/3/5", 1.234567890123457e18, True],
    ]
    table = read_raw(crm_files.xlsx("x.xlsx", rows))
    assert table.format == "xlsx"
    assert table.excel_serial_dates
    assert table.rows[0] == ["1234567890123456789", "2024-03-05 14:02:00", "1234.5", None]
    assert table.rows[1] == ["123", "45356.5", "2000", "x"]
    assert table.rows[2] == ["00123", "2024/3/5", "1.234567890123457e+18", "true"]
    assert table.row_numbers == [1, 2, 4]


def test_xlsx_named_sheet(crm_files: CrmFiles) -> None:
    path = crm_files.xlsx("x.xlsx", [["a"], ["1"]], sheet="线索")
    assert read_raw(path, sheet="线索").rows == [["1"]]
    with pytest.raises(InputFileError, match="no worksheet named 'other'"):
        read_raw(path, sheet="other")


def test_parquet_cells_become_text(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "lead_id": pd.array([1234567890123456789, None], dtype="Int64"),
            "created_at": [pd.Timestamp("2024-03-05 14:02", tz="Asia/Shanghai"), pd.NaT],
            "regions": [["华东", "华南"], []],
        }
    )
    path = tmp_path / "x.parquet"
    frame.to_parquet(path)
    table = read_raw(path)
    assert table.format == "parquet"
    assert table.rows == [["1234567890123456789", "2024-03-05 14:02:00+08:00", "华东;华南"]]
    assert table.blank_rows == 1


def test_format_detected_from_content(tmp_path: Path) -> None:
    path = tmp_path / "export.dat"
    pd.DataFrame({"a": ["1"]}).to_parquet(path)
    assert read_raw(path).format == "parquet"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("  ", None),
        (float("nan"), None),
        (123.0, "123"),
        (0.1, "0.1"),
        (True, "true"),
        (dt.date(2024, 3, 5), "2024-03-05"),
    ],
)
def test_format_cell(value: object, expected: str | None) -> None:
    assert format_cell(value) == expected
