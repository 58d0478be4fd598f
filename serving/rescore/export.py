"""Write the run's output files for the CRM: scores, rejects and the files beside them.

The scores file is Parquet or CSV, chosen by the suffix of ``--out``. Parquet keeps reasons as
lists of structs (feature, direction, contribution, text). CSV has one text column per reason
(``positive_reason_1`` ...), because a spreadsheet cannot hold lists. ``excel`` writes the CSV
in UTF-8 with a byte order mark, which Excel needs to read Chinese text from a CSV file, and
``header_locale="zh-CN"`` writes Chinese column headers. Files are written chunk by chunk to a
temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadscore.errors import ConfigError
from leadscore.i18n import Locale, register_messages, translate
from leadscore.spreadsheet import defuse_formulas
from serving.rescore.checkpoint import file_sha256, temporary_path

logger = logging.getLogger(__name__)

OutputFormat = Literal["parquet", "csv"]
_SUFFIXES: dict[str, OutputFormat] = {".parquet": "parquet", ".csv": "csv"}

EXPORT_SCORE_COLUMNS: tuple[str, ...] = (
    "lead_id",
    "as_of",
    "p_convert",
    "ltv",
    "expected_value",
    "grade",
    "segment",
    "reasons_positive",
    "reasons_negative",
    "model_version",
    "unseen_categories",
    "insufficient_data",
    "owner_rep_id",
)
EXPORT_ROUTING_COLUMNS: tuple[str, ...] = (
    "route_status",
    "rep_id",
    "queue",
    "tier",
    "team",
    "sla_due_at",
    "assignment_id",
    "decision_id",
    "replayed",
    "routing_reasons",
)
_TIMESTAMP_COLUMNS = ("as_of", "sla_due_at")

_HEADERS: dict[str, str] = {
    "lead_id": "线索编号",
    "as_of": "评分时点",
    "p_convert": "转化概率",
    "ltv": "预计客户价值",
    "expected_value": "期望价值",
    "grade": "等级",
    "segment": "分层",
    "reasons_positive": "加分原因",
    "reasons_negative": "减分原因",
    "positive_reason": "加分原因",
    "negative_reason": "减分原因",
    "model_version": "模型版本",
    "unseen_categories": "未见过的类别",
    "insufficient_data": "训练数据不足",
    "owner_rep_id": "负责人编号",
    "route_status": "分配状态",
    "rep_id": "分配销售编号",
    "queue": "待分配队列",
    "tier": "销售级别",
    "team": "团队",
    "sla_due_at": "首次联系截止时间",
    "assignment_id": "分配记录编号",
    "decision_id": "决策记录编号",
    "replayed": "此前已分配",
    "routing_reasons": "分配原因",
    "reason": "原因代码",
    "reason_text": "原因",
    "detail": "详情",
}

_REASON_TEXTS: dict[str, dict[str, str]] = {
    "rescore.reject.missing_lead_id": {
        "en": "The leads row has no lead_id.",
        "zh-CN": "线索行缺少线索编号。",
    },
    "rescore.reject.duplicate_lead_id": {
        "en": "The lead_id appears more than once in leads.parquet.",
        "zh-CN": "线索编号在 leads.parquet 中重复出现。",
    },
    "rescore.reject.missing_created_at": {
        "en": "The lead has no created_at.",
        "zh-CN": "线索缺少创建时间。",
    },
    "rescore.reject.invalid_number": {
        "en": "A number of the lead is infinite or below its minimum.",
        "zh-CN": "线索的某个数值为无穷大或低于允许的最小值。",
    },
    "rescore.reject.missing_event_time": {
        "en": "An activity or stage change of the lead has no time.",
        "zh-CN": "该线索的跟进记录或阶段变更缺少时间。",
    },
    "rescore.reject.created_at_or_after_as_of": {
        "en": "The lead was created at or after the scoring time.",
        "zh-CN": "线索创建于评分时点或之后。",
    },
    "rescore.reject.closed_before_as_of": {
        "en": "The lead was won or lost before the scoring time.",
        "zh-CN": "线索在评分时点之前已赢单或输单。",
    },
    "rescore.reject.scoring_failed": {
        "en": "Scoring this lead failed; see the detail column.",
        "zh-CN": "该线索评分失败，详见详情列。",
    },
}


@cache
def _register_texts() -> None:
    register_messages(_REASON_TEXTS)


def output_format(path: Path) -> OutputFormat:
    """Return the format of ``path`` from its suffix, or raise ConfigError naming the choices."""
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"--out {path} has suffix {Path(path).suffix or '(none)'!r}; "
            "use .parquet for Parquet or .csv for CSV"
        )
    return fmt


@dataclass(frozen=True)
class OutputPaths:
    """The files one run writes, all beside ``--out``.

    Every name contains the whole file name of ``--out``, suffix included, so scores.csv and
    scores.parquet in one folder never share a rejects, drift or summary file.
    """

    scores: Path
    rejects: Path
    drift_json: Path
    drift_markdown: Path
    drift_markdown_zh: Path
    summary: Path

    @classmethod
    def beside(cls, out: Path) -> OutputPaths:
        out = Path(out)
        stem = out.name[: -len(out.suffix)] if out.suffix else out.name
        return cls(
            scores=out,
            rejects=out.with_name(f"{stem}.rejects{out.suffix}"),
            drift_json=out.with_name(f"{out.name}.drift.json"),
            drift_markdown=out.with_name(f"{out.name}.drift.md"),
            drift_markdown_zh=out.with_name(f"{out.name}.drift.zh-CN.md"),
            summary=out.with_name(f"{out.name}.summary.json"),
        )

    @property
    def lock(self) -> Path:
        """Lock file held by the run that writes these outputs (hidden, left in place afterwards)."""
        return self.scores.with_name(f".{self.scores.name}.lock")

    def all(self) -> tuple[Path, ...]:
        return (
            self.scores,
            self.rejects,
            self.drift_json,
            self.drift_markdown,
            self.drift_markdown_zh,
            self.summary,
        )


def header(name: str, locale: Locale) -> str:
    """Return the column header of ``name`` in ``locale``; numbered reason columns keep their number."""
    if locale == "en":
        return name
    base, _, number = name.rpartition("_")
    if number.isdigit() and base in _HEADERS:
        return f"{_HEADERS[base]}{number}"
    return _HEADERS.get(name, name)


@dataclass(frozen=True)
class ExportSettings:
    """How the scores and rejects files are written."""

    fmt: OutputFormat
    excel: bool
    header_locale: Locale
    locale: Locale
    top_reasons: int
    with_routing: bool

    def __post_init__(self) -> None:
        if self.excel and self.fmt != "csv":
            raise ConfigError("--excel writes a CSV file for Excel; give --out a .csv path or drop --excel")


class TableWriter:
    """Appends frames to one Parquet or CSV file; the file appears under its name only on ``commit``."""

    def __init__(self, path: Path, settings: ExportSettings) -> None:
        self.path = Path(path)
        self.settings = settings
        self.temporary = temporary_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._parquet: pq.ParquetWriter | None = None
        self._csv: IO[str] | None = None
        self.rows = 0
        self.digest: str | None = None

    def write(self, table: pa.Table) -> None:
        """Append ``table``; columns are renamed to the header locale on the way out."""
        renamed = table.rename_columns(
            [header(name, self.settings.header_locale) for name in table.column_names]
        )
        if self.settings.fmt == "parquet":
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.temporary, renamed.schema)
            self._parquet.write_table(renamed)
        else:
            frame = _csv_frame(renamed)
            if self.settings.excel:
                frame = defuse_formulas(frame)
            if self._csv is None:
                encoding = "utf-8-sig" if self.settings.excel else "utf-8"
                self._csv = self.temporary.open("w", encoding=encoding, newline="")
                frame.to_csv(self._csv, index=False, header=True)
            else:
                frame.to_csv(self._csv, index=False, header=False)
        self.rows += table.num_rows

    def commit(self, empty: pa.Table) -> str:
        """Close the file, rename it into place and return the SHA-256 of what this writer wrote.

        With no rows, ``empty`` is written for the header. The digest is read from the
        temporary file before the rename, which no other process writes, so a file that another
        run replaces later never gets recorded as this run's output.
        """
        if self._parquet is None and self._csv is None:
            self.write(empty)
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()
        digest = file_sha256(self.temporary)
        self.temporary.replace(self.path)
        return digest

    def abort(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()
        self.temporary.unlink(missing_ok=True)


@contextmanager
def open_writer(path: Path, settings: ExportSettings, empty: pa.Table) -> Iterator[TableWriter]:
    """Yield a TableWriter that commits on success and deletes its temporary file on error.

    After the ``with`` block, the writer's ``digest`` is the SHA-256 of the committed file.
    """
    writer = TableWriter(path, settings)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    writer.digest = writer.commit(empty)


def _csv_frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].map(lambda value: value.isoformat() if pd.notna(value) else "")
    return frame


def export_scores(scores: pa.Table, routing: pa.Table | None, settings: ExportSettings) -> pa.Table:
    """Return the rows of one chunk in the output layout: score columns, then routing columns.

    For CSV the reason lists become ``positive_reason_N`` and ``negative_reason_N`` text columns,
    N from 1 to ``top_reasons``.
    """
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in EXPORT_SCORE_COLUMNS:
        if settings.fmt == "csv" and name in ("reasons_positive", "reasons_negative"):
            prefix = "positive_reason" if name == "reasons_positive" else "negative_reason"
            texts = _reason_texts(scores.column(name).to_pylist(), settings.top_reasons)
            for number, values in enumerate(texts, start=1):
                columns[f"{prefix}_{number}"] = pa.array(values, type=pa.string())
            continue
        columns[name] = scores.column(name)
    if settings.with_routing:
        if routing is None or routing.column("lead_id").to_pylist() != scores.column("lead_id").to_pylist():
            raise RuntimeError(
                "routing rows do not match the chunk's score rows; the run folder is inconsistent"
            )
        for name in EXPORT_ROUTING_COLUMNS:
            columns[name] = routing.column(name)
    return pa.table(columns)


def _reason_texts(reasons: list[list[dict[str, Any]] | None], top: int) -> list[list[str | None]]:
    texts: list[list[str | None]] = [[] for _ in range(top)]
    for row in reasons:
        items = row or []
        for position in range(top):
            texts[position].append(str(items[position]["text"]) if position < len(items) else None)
    return texts


def export_rejects(rejects: pa.Table, locale: Locale) -> pa.Table:
    """Return reject rows with a ``reason_text`` column in ``locale`` after the reason code."""
    _register_texts()
    codes = rejects.column("reason").to_pylist()
    text_of = {code: translate(f"rescore.reject.{code}", locale) for code in set(codes)}
    texts = [text_of[code] for code in codes]
    return pa.table(
        {
            "lead_id": rejects.column("lead_id"),
            "reason": rejects.column("reason"),
            "reason_text": pa.array(texts, type=pa.string()),
            "detail": rejects.column("detail"),
        }
    )
