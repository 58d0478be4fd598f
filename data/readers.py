"""Read CSV, XLSX and Parquet files into a table of cell texts, before any typing.

Every cell becomes a string (or None when blank), whatever the file format, so that ids keep
their leading zeros and all 19 digits: nothing here lets pandas infer a float. Numbers
stored as numbers in XLSX or Parquet are written without a trailing ``.0`` or an exponent
when they are whole, dates and times become ISO 8601 text (with the offset when the value
has one), and list values are joined with ``;``.

Row numbers: data row 1 is the first row after the header, as a user counts rows in the
file. Completely blank rows are skipped but keep their number, so later rows still match
what the user sees.

XLSX specifics: Excel keeps 15 significant digits, so a whole number of 16 or more digits
(an id typed as a number) is rendered in scientific notation, which the id parser rejects.
A cell merged over several rows shows its value on each of them, so the covered rows get
the value of the merged range's top-left cell (counted in ``RawTable.merged_fills``). A
formula saved without its result (as export libraries write them) has no value to read, so
its position is listed in ``RawTable.formulas_without_result`` for the importer to reject.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import math
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from data.encoding import read_text
from data.import_messages import Message, import_error, reason
from leadscore.errors import InputFileError

logger = logging.getLogger(__name__)

FileFormat = Literal["csv", "xlsx", "parquet"]
DELIMITERS: tuple[str, ...] = (",", ";", "\t")
_SNIFF_RECORDS = 50  # records read per candidate delimiter when sniffing
_SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_MAX_EXACT_FLOAT = 2.0**53
_EXCEL_DIGITS = 15  # significant digits that Excel stores of a number
_MERGE_CELL = re.compile(rb'<(?:\w+:)?mergeCell\b[^>]*?\bref="([A-Z]+[0-9]+):([A-Z]+[0-9]+)"')
# A cell whose first child is a formula: the schema puts <f> before <v> and <is>.
_FORMULA_CELL = re.compile(rb"<(?:\w+:)?c\b([^>]*)><(?:\w+:)?f\b(.*?)</(?:\w+:)?c>", re.DOTALL)
_CELL_REFERENCE = re.compile(rb'\br="([A-Z]+[0-9]+)"')
_VALUE = re.compile(rb"<(?:\w+:)?v>[^<]")
_XML_CHUNK = 1 << 20
_CSV_FIELD_LIMIT = 10 * 1024 * 1024  # a quoted note field may hold long text, up to 10 MiB


@dataclass
class RawTable:
    """The header and cell texts of one file, with the source row number of each data row."""

    source: Path
    format: FileFormat
    headers: list[str]
    rows: list[list[str | None]]
    row_numbers: list[int]
    row_problems: dict[int, Message] = field(default_factory=dict)  # data row number -> reason
    blank_rows: int = 0
    encoding: str | None = None
    delimiter: str | None = None
    header_record: int = 1  # 1-based record of the header: the sheet row in XLSX
    sheet: str | None = None
    sheets: tuple[str, ...] = ()  # every worksheet of an XLSX workbook
    merged_fills: dict[int, int] = field(default_factory=dict)  # column position -> cells filled
    # (data row number, column position) -> cell reference such as "C2"
    formulas_without_result: dict[tuple[int, int], str] = field(default_factory=dict)

    @property
    def row_errors(self) -> dict[int, str]:
        """Return the English reason of each malformed data row, by row number."""
        return {row: message.text() for row, message in self.row_problems.items()}

    @property
    def excel_serial_dates(self) -> bool:
        """Whether numbers in date columns are Excel serial day numbers (true for XLSX files)."""
        return self.format == "xlsx"

    def column_values(self, position: int) -> list[str | None]:
        """Return the cells of the column at ``position``, one per data row."""
        return [row[position] for row in self.rows]


def detect_format(path: Path) -> FileFormat:
    """Return the file format from the suffix or, for unknown suffixes, from the first bytes."""
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise InputFileError(import_error("xls", path=path))
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise InputFileError(
            import_error("unreadable", path=path, detail=error.strerror or str(error))
        ) from error
    if magic == b"PK\x03\x04":
        return "xlsx"
    if magic == b"PAR1":
        return "parquet"
    return "csv"


def read_raw(path: Path, *, sheet: str | None = None) -> RawTable:
    """Read ``path`` (CSV, XLSX or Parquet) into cell texts; raise ``InputFileError`` if unreadable."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError(import_error("folder", path=path))
    if not path.is_file():
        raise InputFileError(import_error("not_found", path=path))
    file_format = detect_format(path)
    if file_format == "csv":
        return read_csv(path)
    if file_format == "xlsx":
        return read_xlsx(path, sheet=sheet)
    return read_parquet(path)


# ---------------------------------------------------------------------------------------
# CSV


def read_csv(path: Path) -> RawTable:
    """Read a CSV file: detect the encoding and the delimiter, honour quoted fields."""
    decoded = read_text(path)
    delimiter = sniff_delimiter(decoded.text)
    records = _csv_records(decoded.text, delimiter, path)
    table = _table_from_records(path, "csv", records)
    table.encoding = decoded.encoding
    table.delimiter = delimiter
    logger.info(
        "read %s: csv, encoding %s, delimiter %r, %d data rows",
        path,
        decoded.encoding,
        delimiter,
        len(table.rows),
    )
    return table


def sniff_delimiter(text: str) -> str:
    """Return the delimiter among ``,`` ``;`` and tab that splits the first records most consistently.

    Each candidate parses the first records; the one whose records most often have the
    header's field count wins, with more fields breaking ties. A file with a single column
    gets ``,``.
    """
    best = ","
    best_score = (0.0, 1)
    for delimiter in DELIMITERS:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        counts = []
        try:
            for record in reader:
                if record:
                    counts.append(len(record))
                if len(counts) >= _SNIFF_RECORDS:
                    break
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        consistent = sum(1 for count in counts if count == counts[0]) / len(counts)
        score = (consistent, counts[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _csv_records(text: str, delimiter: str, path: Path) -> Iterator[list[str]]:
    """Yield the records of ``text``; raise ``InputFileError`` on broken quoting.

    Parsing is strict: a quoted field that is still open at the end of the file, or that
    has text after its closing quote, is an error. A lenient reader would swallow every
    following row into one cell without notice.
    """
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start_line = 1
    try:
        for record in reader:
            yield record
            start_line = reader.line_num + 1
    except csv.Error as error:
        raise InputFileError(
            import_error(
                "csv_quoting", path=path, start_line=start_line, error_line=reader.line_num, detail=str(error)
            )
        ) from error


# ---------------------------------------------------------------------------------------
# XLSX


def read_xlsx(path: Path, *, sheet: str | None = None) -> RawTable:
    """Read the first worksheet (or ``sheet``) of an XLSX workbook, cached formula values included."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as error:
        raise InputFileError(import_error("xlsx_unreadable", path=path, detail=str(error))) from error
    try:
        if sheet is None:
            worksheet = workbook.worksheets[0]
        elif sheet in workbook.sheetnames:
            worksheet = workbook[sheet]
        else:
            raise InputFileError(
                import_error("no_sheet", path=path, sheet=repr(sheet), sheets=", ".join(workbook.sheetnames))
            )
        records = (
            [format_xlsx_cell(value) or "" for value in row] for row in worksheet.iter_rows(values_only=True)
        )
        table = _table_from_records(path, "xlsx", records)
        table.sheet = worksheet.title
        table.sheets = tuple(workbook.sheetnames)
        layout = _scan_worksheet_xml(path, worksheet)
    finally:
        workbook.close()
    _fill_merged_cells(table, layout.merged)
    _list_formulas_without_result(table, layout.formulas_without_result)
    logger.info("read %s: xlsx, sheet %r, %d data rows", path, table.sheet, len(table.rows))
    return table


def format_xlsx_cell(value: object) -> str | None:
    """Render an XLSX cell like ``format_cell``, but a number of 16 or more digits in exponent form."""
    text = format_cell(value)
    if text is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return text
    digits = text.lstrip("-")
    if digits.isdigit() and len(digits) > _EXCEL_DIGITS:
        return f"{float(text):.{_EXCEL_DIGITS - 1}e}"  # Excel kept only the first 15 digits
    return text


@dataclass
class _SheetLayout:
    """Merged ranges and formulas without a result: the parts of a worksheet that read-only mode omits."""

    # (min_col, min_row, max_col, max_row) of each merged range, 1-based
    merged: list[tuple[int, int, int, int]] = field(default_factory=list)
    formulas_without_result: list[str] = field(default_factory=list)  # cell references such as "C2"


def _scan_worksheet_xml(path: Path, worksheet: object) -> _SheetLayout:
    """Scan the worksheet's XML part for merged ranges and for formulas saved without a result.

    Read-only worksheets expose neither. The part is read in chunks, and each chunk is cut
    after its last cell end tag, so that no cell is split between two scans.
    """
    from openpyxl.utils.cell import range_boundaries

    layout = _SheetLayout()
    # NOTE: _worksheet_path is private to openpyxl's ReadOnlyWorksheet (openpyxl 3.1). If a
    # later version drops it, merged ranges are not filled and formulas are not checked.
    member = getattr(worksheet, "_worksheet_path", None)
    if not isinstance(member, str):
        logger.warning("%s: cannot locate the worksheet XML; merged cells and formulas are not checked", path)
        return layout
    pending = b""
    with zipfile.ZipFile(path) as archive, archive.open(member.lstrip("/")) as stream:
        while chunk := stream.read(_XML_CHUNK):
            pending += chunk
            end = _last_cell_end(pending)
            _collect_formulas_without_result(pending[:end], layout.formulas_without_result)
            pending = pending[end:]
    for match in _MERGE_CELL.finditer(pending):  # merged ranges follow the cell data
        layout.merged.append(range_boundaries(f"{match[1].decode()}:{match[2].decode()}"))
    return layout


def _last_cell_end(xml: bytes) -> int:
    """Return the offset just after the last cell end tag (``</c>`` or ``</x:c>``) in ``xml``, else 0."""
    plain = xml.rfind(b"</c>")
    prefixed = xml.rfind(b":c>")
    return max(plain + 4 if plain >= 0 else 0, prefixed + 3 if prefixed >= 0 else 0)


def _collect_formulas_without_result(xml: bytes, found: list[str]) -> None:
    """Append the references of the formula cells in ``xml`` that were saved without a result."""
    for cell in _FORMULA_CELL.finditer(xml):
        attributes, body = cell[1], cell[2]
        # Excel writes t="str" with an empty <v> for a formula whose result is the empty string.
        if _VALUE.search(body) or b't="str"' in attributes:
            continue
        reference = _CELL_REFERENCE.search(attributes)
        if reference:
            found.append(reference[1].decode())


def _list_formulas_without_result(table: RawTable, references: list[str]) -> None:
    from openpyxl.utils.cell import column_index_from_string, coordinate_from_string

    for reference in references:
        column_letters, sheet_row = coordinate_from_string(reference)
        number = sheet_row - table.header_record
        if number >= 1:
            table.formulas_without_result[(number, column_index_from_string(column_letters) - 1)] = reference


def _fill_merged_cells(table: RawTable, ranges: list[tuple[int, int, int, int]]) -> None:
    """Copy the value of each vertically merged range into the data rows it covers."""
    position_of_number = {number: position for position, number in enumerate(table.row_numbers)}
    for min_col, min_row, _max_col, max_row in ranges:
        column = min_col - 1
        top = position_of_number.get(min_row - table.header_record)
        if top is None or column >= len(table.headers) or max_row == min_row:
            continue  # a header, blank-row or horizontal merge: nothing to copy
        value = table.rows[top][column]
        for sheet_row in range(min_row + 1, max_row + 1):
            position = position_of_number.get(sheet_row - table.header_record)
            if value is None or position is None or table.rows[position][column] is not None:
                continue
            table.rows[position][column] = value
            table.merged_fills[column] = table.merged_fills.get(column, 0) + 1


# ---------------------------------------------------------------------------------------
# Parquet


def read_parquet(path: Path) -> RawTable:
    """Read a Parquet file and render every value as text, like the other formats."""
    import pyarrow as pa

    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise InputFileError(import_error("parquet_unreadable", path=path, detail=str(error))) from error
    headers = [str(column) for column in frame.columns]
    columns = [_parquet_column_texts(path, str(column), frame[column].tolist()) for column in frame.columns]
    records = [headers, *([cell or "" for cell in row] for row in zip(*columns, strict=True))]
    table = _table_from_records(path, "parquet", records)
    logger.info("read %s: parquet, %d data rows", path, len(table.rows))
    return table


def _parquet_column_texts(path: Path, column: str, values: list[object]) -> list[str | None]:
    try:
        return [format_cell(value) for value in values]
    except UnicodeDecodeError as error:
        raise InputFileError(
            import_error("parquet_binary", path=path, column=repr(column), detail=str(error))
        ) from error


# ---------------------------------------------------------------------------------------
# Shared


def format_cell(value: object) -> str | None:  # noqa: PLR0911 - one return per value type
    """Render one typed cell value as the text a CSV export would contain; None when blank."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, (bytes, bytearray)):
        # Parquet writers such as Spark and Hive store strings as BINARY without the UTF8 annotation.
        return format_cell(bytes(value).decode("utf-8"))
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _format_float(float(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [format_cell(item) for item in value]
        return ";".join(item for item in items if item) or None
    return str(value)


def _format_float(number: float) -> str | None:
    if math.isnan(number):
        return None
    # Whole numbers print without ".0" so that an id stored as a number keeps its digits. Above
    # 2**53 a double cannot hold every whole number, so the digits were already rounded when
    # the file was written: those keep the exponent form, which the id parser rejects.
    if number.is_integer() and abs(number) <= _MAX_EXACT_FLOAT:
        return str(int(number))
    return repr(number)


def _table_from_records(path: Path, file_format: FileFormat, records: Iterable[list[str]]) -> RawTable:
    iterator = iter(records)
    headers: list[str] | None = None
    header_record = 0
    for record in iterator:
        header_record += 1
        if any(cell.strip() for cell in record):
            headers = [cell.strip() for cell in record]
            break
    if headers is None:
        raise InputFileError(import_error("empty_file", path=path))
    while headers and not headers[-1]:
        headers.pop()  # trailing empty header cells are spreadsheet padding

    table = RawTable(
        source=path,
        format=file_format,
        headers=headers,
        rows=[],
        row_numbers=[],
        header_record=header_record,
    )
    width = len(headers)
    for number, record in enumerate(iterator, start=1):
        cells = [cell if cell.strip() else None for cell in record]
        if not any(cells):
            table.blank_rows += 1
            continue
        extra = [cell for cell in cells[width:] if cell is not None]
        if extra:
            table.row_problems[number] = reason("malformed_row", fields=len(record), columns=width)
        cells = (cells + [None] * width)[:width]
        table.rows.append(cells)
        table.row_numbers.append(number)
    return table
