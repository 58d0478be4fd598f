"""Read CSV, XLSX and Parquet files into a table of cell texts, before any typing.

Every cell becomes a string (or None when blank), whatever the file format, so that ids keep
their leading zeros and all 19 digits: nothing here lets pandas infer a float. Numbers
stored as numbers in XLSX or Parquet are written without a trailing ``.0`` or an exponent
when they are whole, dates and times become ISO 8601 text (with the offset when the value
has one), and list values are joined with ``;``.

Row numbers: data row 1 is the first row after the header, as a user counts rows in the
file. Completely blank rows are skipped but keep their number, so later rows still match
what the user sees.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import math
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from data.encoding import read_text
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
_CSV_FIELD_LIMIT = 10 * 1024 * 1024  # a quoted note field may hold long text, up to 10 MiB


@dataclass
class RawTable:
    """The header and cell texts of one file, with the source row number of each data row."""

    source: Path
    format: FileFormat
    headers: list[str]
    rows: list[list[str | None]]
    row_numbers: list[int]
    row_errors: dict[int, str] = field(default_factory=dict)
    blank_rows: int = 0
    encoding: str | None = None
    delimiter: str | None = None

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
        raise InputFileError(f"{path}: the old Excel .xls format is not supported; save it as .xlsx or CSV")
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error.strerror or error}") from error
    if magic == b"PK\x03\x04":
        return "xlsx"
    if magic == b"PAR1":
        return "parquet"
    return "csv"


def read_raw(path: Path, *, sheet: str | None = None) -> RawTable:
    """Read ``path`` (CSV, XLSX or Parquet) into cell texts; raise ``InputFileError`` if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"input file {path} not found")
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
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    try:
        yield from reader
    except csv.Error as error:
        raise InputFileError(f"{path}: invalid CSV near line {reader.line_num}: {error}") from error


# ---------------------------------------------------------------------------------------
# XLSX


def read_xlsx(path: Path, *, sheet: str | None = None) -> RawTable:
    """Read the first worksheet (or ``sheet``) of an XLSX workbook, cached formula values included."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as error:
        raise InputFileError(f"{path}: not a readable XLSX workbook: {error}") from error
    try:
        if sheet is None:
            worksheet = workbook.worksheets[0]
        elif sheet in workbook.sheetnames:
            worksheet = workbook[sheet]
        else:
            raise InputFileError(
                f"{path}: no worksheet named {sheet!r}; sheets: {', '.join(workbook.sheetnames)}"
            )
        records = (
            [format_cell(value) or "" for value in row] for row in worksheet.iter_rows(values_only=True)
        )
        table = _table_from_records(path, "xlsx", records)
    finally:
        workbook.close()
    logger.info("read %s: xlsx, %d data rows", path, len(table.rows))
    return table


# ---------------------------------------------------------------------------------------
# Parquet


def read_parquet(path: Path) -> RawTable:
    """Read a Parquet file and render every value as text, like the other formats."""
    import pyarrow as pa

    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise InputFileError(f"{path}: not a readable Parquet file: {error}") from error
    headers = [str(column) for column in frame.columns]
    columns = [[format_cell(value) for value in frame[column].tolist()] for column in frame.columns]
    records = [headers, *([cell or "" for cell in row] for row in zip(*columns, strict=True))]
    table = _table_from_records(path, "parquet", records)
    logger.info("read %s: parquet, %d data rows", path, len(table.rows))
    return table


# ---------------------------------------------------------------------------------------
# Shared


def format_cell(value: object) -> str | None:  # noqa: PLR0911 - one return per value type
    """Render one typed cell value as the text a CSV export would contain; None when blank."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
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
    for record in iterator:
        if any(cell.strip() for cell in record):
            headers = [cell.strip() for cell in record]
            break
    if headers is None:
        raise InputFileError(f"{path}: the file is empty; expected a header row and data rows")
    while headers and not headers[-1]:
        headers.pop()  # trailing empty header cells are spreadsheet padding

    table = RawTable(source=path, format=file_format, headers=headers, rows=[], row_numbers=[])
    width = len(headers)
    for number, record in enumerate(iterator, start=1):
        cells = [cell if cell.strip() else None for cell in record]
        if not any(cells):
            table.blank_rows += 1
            continue
        extra = [cell for cell in cells[width:] if cell is not None]
        if extra:
            table.row_errors[number] = f"row has {len(record)} fields but the header has {width} columns"
        cells = (cells + [None] * width)[:width]
        table.rows.append(cells)
        table.row_numbers.append(number)
    return table
