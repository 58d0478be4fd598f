"""Read a score file (Parquet or CSV) written by batch rescoring or ``training.scorer.score_tables``.

The file needs lead_id, p_convert, ltv and expected_value; other columns are ignored. When a
lead was scored more than once and the file has ``as_of``, the earliest score is used: it is
the prediction made closest to intake, before the outcome could leak into it. Without
``as_of`` a repeated lead_id is an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from leadscore.errors import DataValidationError, InputFileError, SchemaError

logger = logging.getLogger(__name__)

SCORE_VALUE_COLUMNS: tuple[str, ...] = ("p_convert", "ltv", "expected_value")
REQUIRED_SCORE_COLUMNS: tuple[str, ...] = ("lead_id", *SCORE_VALUE_COLUMNS)


@dataclass(frozen=True)
class ScoreTable:
    """One score per lead: p_convert, ltv and expected_value indexed by lead_id.

    ``notes`` counts rows left out, keyed by the report message that explains why.
    """

    path: Path
    scores: pd.DataFrame
    rows_read: int
    notes: dict[str, int] = field(default_factory=dict)


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputFileError(f"score file {path} not found; write one with batch rescoring or omit --scores")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path, dtype={"lead_id": "str"}, encoding="utf-8-sig")
    raise InputFileError(f"score file {path} has suffix {path.suffix!r}; use a .parquet or .csv file")


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        example = frame.loc[bad, column].iloc[0]
        raise DataValidationError(
            f"score file {path}: column {column} has {int(bad.sum())} non-numeric value(s), "
            f"for example {str(example)[:40]!r}; write numbers only"
        )
    return values.astype("float64")


def read_scores(path: Path, lead_ids: pd.Index) -> ScoreTable:
    """Read the score file at ``path`` and keep one score per lead id found in ``lead_ids``."""
    path = Path(path)
    frame = _read_frame(path)
    missing = [column for column in REQUIRED_SCORE_COLUMNS if column not in frame.columns]
    if missing:
        raise SchemaError(
            f"score file {path} lacks column(s) {', '.join(missing)}; it needs "
            f"{', '.join(REQUIRED_SCORE_COLUMNS)} as written by batch rescoring"
        )
    rows_read = len(frame)
    scores = pd.DataFrame({"lead_id": frame["lead_id"].astype("str")})
    for column in SCORE_VALUE_COLUMNS:
        scores[column] = _numeric(frame, column, path)
    notes: dict[str, int] = {}

    missing_id = frame["lead_id"].isna()
    notes["report.scores.dropped.missing_lead_id"] = int(missing_id.sum())
    scores = scores.loc[~missing_id.to_numpy()]

    repeated = scores["lead_id"].duplicated(keep=False)
    if repeated.any():
        if "as_of" not in frame.columns:
            first = scores.loc[repeated, "lead_id"].iloc[0]
            raise DataValidationError(
                f"score file {path} has {int(repeated.sum())} rows for repeated lead ids (first {first!r}) "
                "and no as_of column to choose between them; keep one score per lead"
            )
        scores["as_of"] = pd.to_datetime(frame.loc[scores.index, "as_of"], utc=True)
        scores = scores.sort_values(["lead_id", "as_of"], kind="stable")
        later = scores["lead_id"].duplicated(keep="first")
        notes["report.scores.dropped.later_score"] = int(later.sum())
        scores = scores.loc[~later].drop(columns="as_of")

    unknown = lead_ids.get_indexer(pd.Index(scores["lead_id"])) < 0
    notes["report.scores.dropped.unknown_lead"] = int(unknown.sum())
    scores = scores.loc[~unknown].set_index("lead_id")
    logger.info(
        "read %d score rows from %s: %d leads scored, rows left out %s",
        rows_read,
        path,
        len(scores),
        {key: count for key, count in notes.items() if count},
    )
    return ScoreTable(path=path.resolve(), scores=scores, rows_read=rows_read, notes=notes)
