"""Shared parts of the public-dataset adapters: the result type, rejects and the written folder.

An adapter reads one raw file, maps the rows it can use onto the canonical tables and
reports every other row with its reason. ``write_adapted`` writes the canonical data folder,
``public_rejects.csv`` and ``public_source.json`` (dataset, file, sha256, row counts, how
timestamps were reconstructed), after checking that no row went missing on the way.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data.folder import CanonicalTables, CustomAttribute, write_attributes, write_table
from data.schema import TABLE_NAMES
from data.validate import coerce_canonical_dtypes, empty_table, validate_tables
from leadscore.errors import ConfigError, DataValidationError, InputFileError

logger = logging.getLogger(__name__)

SOURCE_FILE = "public_source.json"
REJECTS_FILE = "public_rejects.csv"
_MAX_VALUE_CHARS = 200  # per raw value kept in public_rejects.csv


@dataclass
class AdaptedDataset:
    """The canonical tables built from one raw file, with every rejected row and its reason.

    ``entity_table`` names the table that contains one row per accepted source row (leads for
    lead-level files, orders for transaction files); ``write_adapted`` checks its length.
    """

    tables: CanonicalTables
    entity_table: str
    rows_read: int
    rejects: pd.DataFrame
    timestamps: str
    mapping: dict[str, str]
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return len(self.rejects)

    @property
    def rows_accepted(self) -> int:
        return self.rows_read - self.rows_rejected


@dataclass(frozen=True)
class PublicDataset:
    """A public dataset the project can adapt: its file, licence, citation and adapter."""

    name: str
    title: str
    default_file: str
    licence: str
    citation: str
    adapt: Callable[[Path], AdaptedDataset]


class RejectCollector:
    """Collects the first reason each source row is rejected, check by check.

    Source rows are numbered from 1, header excluded, as ``data.validate`` numbers them.
    """

    def __init__(self, raw: pd.DataFrame, source_rows: np.ndarray | None = None) -> None:
        self._raw = raw
        self._rows = np.arange(1, len(raw) + 1) if source_rows is None else np.asarray(source_rows)
        self._reasons = np.full(len(raw), None, dtype=object)

    def reject(self, mask: np.ndarray | pd.Series, reason: Callable[[int], str] | str) -> None:
        """Reject rows where ``mask`` is true, unless an earlier check already rejected them.

        ``reason`` is a text, or a function of the frame position that builds one.
        """
        positions = np.flatnonzero(np.asarray(mask, dtype=bool) & pd.isna(self._reasons))
        for position in positions:
            self._reasons[position] = reason(int(position)) if callable(reason) else reason

    @property
    def accepted(self) -> np.ndarray:
        """Boolean mask of the rows that passed every check so far."""
        result: np.ndarray = pd.isna(self._reasons)
        return result

    def frame(self) -> pd.DataFrame:
        """Return the rejects: source row, reason and the raw record as JSON."""
        rejected = np.flatnonzero(~self.accepted)
        records = [
            json.dumps(
                {str(key): _cap(value) for key, value in self._raw.iloc[position].to_dict().items()},
                ensure_ascii=False,
            )
            for position in rejected
        ]
        return pd.DataFrame(
            {
                "source_row": pd.Series(self._rows[rejected], dtype="int64"),
                "reason": pd.Series(self._reasons[rejected], dtype="str"),
                "record": pd.Series(records, dtype="str"),
            }
        )


def _cap(value: object) -> str:
    text = str(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def read_text_table(path: Path, *, separator: str, expected: tuple[str, ...]) -> pd.DataFrame:
    """Read a delimited file with every value as text, so no value is coerced on the way in.

    Raises ``InputFileError`` when the file is missing or unreadable and when any of the
    ``expected`` headers is absent.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path} not found; pass --path to the dataset file or its folder")
    try:
        frame = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, na_values=[])
    except (UnicodeDecodeError, pd.errors.ParserError) as error:
        raise InputFileError(
            f"{path} cannot be read as a {separator!r}-separated text file: {error}"
        ) from error
    missing = [name for name in expected if name not in frame.columns]
    if missing:
        raise InputFileError(
            f"{path} lacks the column(s) {missing}; is it the right file? "
            f"Found columns: {list(frame.columns)[:40]}"
        )
    return frame


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_tables(frames: dict[str, pd.DataFrame], attributes: list[CustomAttribute]) -> CanonicalTables:
    """Return canonical tables in storage dtypes; tables absent from ``frames`` are empty."""
    tables = {
        name: coerce_canonical_dtypes(name, frames[name], attributes if name == "leads" else ())
        if name in frames
        else empty_table(name)
        for name in TABLE_NAMES
    }
    return CanonicalTables(**tables, attributes=attributes)


def outcome_stage_changes(leads: pd.DataFrame, won: np.ndarray, offset: pd.Timedelta) -> pd.DataFrame:
    """Return a ``lead`` row at created_at and a ``won`` or ``lost`` row ``offset`` later, per lead."""
    created = leads["created_at"].to_numpy()
    terminal = (leads["created_at"] + offset).to_numpy()
    return pd.DataFrame(
        {
            "lead_id": np.repeat(leads["lead_id"].to_numpy(), 2),
            "stage": np.column_stack([np.full(len(won), "lead"), np.where(won, "won", "lost")]).ravel(),
            "changed_at": np.column_stack([created, terminal]).ravel(),
        }
    ).astype({"lead_id": "str", "stage": "str", "changed_at": "datetime64[us, UTC]"})


def write_adapted(
    dataset: PublicDataset,
    adapted: AdaptedDataset,
    source_file: Path,
    out_dir: Path,
    *,
    overwrite: bool = False,
) -> dict[str, object]:
    """Validate ``adapted``, write it as a data folder into ``out_dir`` and return the source record.

    Raises ``ConfigError`` when ``out_dir`` already contains canonical tables and ``overwrite``
    is false, and ``DataValidationError`` when the tables fail ``validate_tables`` or the
    accepted rows do not add up (both mean an adapter bug, not bad input).
    """
    out_dir = Path(out_dir)
    existing = [name for name in TABLE_NAMES if (out_dir / f"{name}.parquet").exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"{out_dir} already contains {', '.join(name + '.parquet' for name in existing)}; "
            "choose an empty folder or pass --overwrite"
        )
    _check_counts(dataset, adapted)
    _check_valid(dataset, adapted)

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in TABLE_NAMES:
        write_table(adapted.tables.table(name), out_dir, name)
    write_attributes(out_dir, adapted.tables.attributes)
    adapted.rejects.to_csv(out_dir / REJECTS_FILE, index=False)

    record: dict[str, object] = {
        "name": dataset.name,
        "title": dataset.title,
        "file": str(Path(source_file).resolve()),
        "sha256": file_sha256(source_file),
        "rows_read": adapted.rows_read,
        "rows_accepted": adapted.rows_accepted,
        "rows_rejected": adapted.rows_rejected,
        "rejects_file": REJECTS_FILE,
        "timestamps": adapted.timestamps,
        "tables": {name: len(adapted.tables.table(name)) for name in TABLE_NAMES},
        "mapping": adapted.mapping,
        "post_contact_attributes": [item.name for item in adapted.tables.attributes if item.post_contact],
        "counts": adapted.counts,
        "notes": adapted.notes,
        "licence": dataset.licence,
        "citation": dataset.citation,
    }
    (out_dir / SOURCE_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", "utf-8")
    logger.info(
        "adapted %s: %d rows read, %d accepted, %d rejected, written to %s",
        dataset.name,
        adapted.rows_read,
        adapted.rows_accepted,
        adapted.rows_rejected,
        out_dir,
    )
    return record


def _check_counts(dataset: PublicDataset, adapted: AdaptedDataset) -> None:
    entities = len(adapted.tables.table(adapted.entity_table))
    if entities != adapted.rows_accepted:
        raise DataValidationError(
            f"{dataset.name}: {adapted.rows_read} rows read and {adapted.rows_rejected} rejected leave "
            f"{adapted.rows_accepted}, but {adapted.entity_table} has {entities} rows; rows were lost "
            "(an adapter bug: please report it with the input file)"
        )


def _check_valid(dataset: PublicDataset, adapted: AdaptedDataset) -> None:
    reports = validate_tables(adapted.tables)
    failed = [report for report in reports.values() if not report.ok]
    if failed:
        details = "\n".join(report.format(max_examples=5) for report in failed)
        raise DataValidationError(
            f"{dataset.name}: the adapted tables fail validation, which is an adapter bug; "
            f"please report it:\n{details}"
        )
