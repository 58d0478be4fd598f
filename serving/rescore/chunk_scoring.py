"""Score one chunk of leads: screen the leads, build the spine, score, count drift, write the files.

This is the unit of work of both engines. It reads only its bucket (see ``chunks.py``) and the
saved bundle, and it writes only files named after its chunk number, so running it twice, or
on two workers at once, gives the same files. Every lead of the bucket ends up in exactly one
of two files:

* ``chunk-NNNNNN.scores.parquet``: one score record per open lead, from
  ``training.scorer.score_tables_with_matrix`` (the service's score path);
* ``chunk-NNNNNN.rejects.parquet``: every other lead with a reason code and a detail.

``chunk-NNNNNN.drift.json`` contains the chunk's drift bin counts.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data.folder import CanonicalTables
from data.schema import LEADS
from features.inputs import lead_index
from features.spine import lead_close_micros, scoring_spine
from features.windows import scalar_micros, timestamp_micros
from leadscore.errors import LeadscoreError
from serving.rescore.checkpoint import ChunkRecord, file_sha256, write_json_atomic, write_parquet_atomic
from serving.rescore.chunks import ChunkInputs, read_chunk_tables, release_arrow_memory, release_heap_memory
from serving.rescore.drift import DriftCounter
from training.bundle import ScorerBundle
from training.scorer import ScoredTables, score_tables_with_matrix

logger = logging.getLogger(__name__)

FaultHook = Callable[[int, str], None]
"""Called as ``hook(chunk, stage)`` at the stages below; tests raise from it to simulate a crash."""
STAGE_SCORES_TEMP_WRITTEN = "scores_temp_written"
STAGE_CHUNK_WRITTEN = "chunk_written"
STAGE_CHUNK_RECORDED = "chunk_recorded"

# Reason codes of the rejects file. The first five are invalid rows; the next two are leads
# that were not open at as_of; the last is a lead whose scoring raised.
MISSING_LEAD_ID = "missing_lead_id"
DUPLICATE_LEAD_ID = "duplicate_lead_id"
MISSING_CREATED_AT = "missing_created_at"
MISSING_EVENT_TIME = "missing_event_time"
INVALID_NUMBER = "invalid_number"
CREATED_AT_OR_AFTER_AS_OF = "created_at_or_after_as_of"
CLOSED_BEFORE_AS_OF = "closed_before_as_of"
SCORING_FAILED = "scoring_failed"
REJECT_REASONS: tuple[str, ...] = (
    MISSING_LEAD_ID,
    DUPLICATE_LEAD_ID,
    MISSING_CREATED_AT,
    MISSING_EVENT_TIME,
    INVALID_NUMBER,
    CREATED_AT_OR_AFTER_AS_OF,
    CLOSED_BEFORE_AS_OF,
    SCORING_FAILED,
)

REASON_TYPE = pa.struct(
    [
        ("feature", pa.string()),
        ("direction", pa.string()),
        ("contribution", pa.float64()),
        ("text", pa.string()),
    ]
)
SCORES_SCHEMA = pa.schema(
    [
        ("lead_id", pa.string()),
        ("as_of", pa.timestamp("us", tz="UTC")),
        ("p_convert", pa.float64()),
        ("ltv", pa.float64()),
        ("expected_value", pa.float64()),
        ("grade", pa.string()),
        ("segment", pa.string()),
        ("reasons_positive", pa.list_(REASON_TYPE)),
        ("reasons_negative", pa.list_(REASON_TYPE)),
        ("model_version", pa.string()),
        ("unseen_categories", pa.string()),
        ("insufficient_data", pa.bool_()),
        ("owner_rep_id", pa.string()),
        ("region", pa.string()),
        ("industry", pa.string()),
    ]
)
REJECTS_SCHEMA = pa.schema([("lead_id", pa.string()), ("reason", pa.string()), ("detail", pa.string())])


@dataclass(frozen=True)
class ChunkTask:
    """Everything a worker needs to score one chunk; plain paths and values, so it pickles."""

    chunk: int
    inputs: ChunkInputs
    chunks_dir: Path
    model_dir: Path
    as_of: pd.Timestamp
    locale: str
    top_reasons: int


def chunk_file(chunks_dir: Path, chunk: int, kind: str) -> Path:
    """Return the path of a chunk's ``scores``/``rejects`` Parquet file or ``drift`` JSON file."""
    suffix = "json" if kind == "drift" else "parquet"
    return Path(chunks_dir) / f"chunk-{chunk:06d}.{kind}.{suffix}"


@functools.lru_cache(maxsize=2)
def cached_model(model_dir: Path) -> tuple[ScorerBundle, DriftCounter]:
    """Load the run's bundle once per process; a run folder's model never changes after it is saved."""
    bundle = ScorerBundle.load(model_dir)
    return bundle, DriftCounter(bundle.feature_spec, bundle.reference)


def process_chunk(task: ChunkTask, fault_hook: FaultHook | None = None) -> ChunkRecord:
    """Score one chunk and write its scores, rejects and drift files; return its record."""
    started = time.perf_counter()
    bundle, counter = cached_model(task.model_dir)
    tables = read_chunk_tables(task.inputs)
    leads_read = len(tables.leads)

    screened, invalid = screen_leads(tables)
    spine = scoring_spine(screened, task.as_of)
    scored, failures = score_isolating_failures(
        bundle, screened, spine, locale=task.locale, top_reasons=task.top_reasons
    )
    scores = scored.records
    rejects = pd.concat([invalid, not_open_rejects(screened, spine, task.as_of), failures], ignore_index=True)
    drift_counts = counter.count(scored.matrix, scores) if len(scores) else counter.empty()

    score_table = scores_to_arrow(scores, screened.leads)
    reject_table = rejects_to_arrow(rejects)
    _check_balance(task.chunk, leads_read, score_table.num_rows, reject_table.num_rows)

    files = _write_chunk_files(task, score_table, reject_table, drift_counts, fault_hook)
    release_arrow_memory()
    release_heap_memory()
    reasons = pd.Series(reject_table.column("reason").to_pylist(), dtype=object).value_counts()
    record = ChunkRecord(
        chunk=task.chunk,
        leads=leads_read,
        scored=score_table.num_rows,
        rejects={str(reason): int(count) for reason, count in reasons.items()},
        orphan_activities=orphan_count(tables.activities, tables.leads),
        orphan_stage_changes=orphan_count(tables.stage_changes, tables.leads),
        unseen_category_leads=int(
            (score_table.column("unseen_categories").to_numpy(zero_copy_only=False) != "{}").sum()
        ),
        files=files,
        seconds=round(time.perf_counter() - started, 3),
    )
    logger.info(
        "chunk %d: %d leads, %d scored, %d not scored, %.1f s",
        task.chunk,
        leads_read,
        record.scored,
        record.rejected,
        record.seconds,
    )
    return record


# --- screening ----------------------------------------------------------------------------------------


def screen_leads(tables: CanonicalTables) -> tuple[CanonicalTables, pd.DataFrame]:
    """Remove leads that cannot be scored at all; return the rest and a reject row per removed lead.

    Rejected: a row without lead_id, every row of a repeated lead_id, a lead without
    created_at, a lead with an activity or stage change that has no time, and a lead with an
    infinite number or one below its column's minimum. Events of rejected leads are removed too.
    """
    leads = tables.leads
    ids = leads["lead_id"].astype(object)
    missing_id = ids.isna().to_numpy()
    counts = ids[~missing_id].value_counts()
    repeated_rows = ids.duplicated(keep=False).to_numpy() & ~missing_id
    no_created = leads["created_at"].isna().to_numpy() & ~missing_id & ~repeated_rows
    untimed_details = _leads_with_untimed_events(tables)
    untimed = ~missing_id & ~repeated_rows & ~no_created & ids_in(ids, untimed_details.index.to_series())
    number_details = _invalid_number_details(leads)
    bad_number = ~missing_id & ~repeated_rows & ~no_created & ~untimed & number_details.notna().to_numpy()

    repeated_ids = ids[repeated_rows].astype(str)
    rejects = [
        reject_frame(ids[missing_id], MISSING_LEAD_ID, "the leads row has no lead_id"),
        reject_frame(
            repeated_ids,
            DUPLICATE_LEAD_ID,
            "lead_id appears "
            + repeated_ids.map(counts).astype(str)
            + " times in leads.parquet; keep one row per lead",
        ),
        reject_frame(ids[no_created], MISSING_CREATED_AT, "the lead has no created_at"),
        reject_frame(ids[untimed], MISSING_EVENT_TIME, ids[untimed].map(untimed_details)),
        reject_frame(ids[bad_number], INVALID_NUMBER, number_details[bad_number].astype(object)),
    ]

    kept_leads = leads[~missing_id & ~repeated_rows & ~no_created & ~untimed & ~bad_number]
    kept_ids = kept_leads["lead_id"]
    screened = CanonicalTables(
        leads=kept_leads,
        activities=_events_of(tables.activities, kept_ids, "occurred_at"),
        stage_changes=_events_of(tables.stage_changes, kept_ids, "changed_at"),
        orders=tables.orders,
        reps=tables.reps,
        attributes=tables.attributes,
    )
    return screened, pd.concat(rejects, ignore_index=True)


def _invalid_number_details(leads: pd.DataFrame) -> pd.Series:
    """Return, per leads row, what is wrong with its numbers (infinite or below the minimum), else None.

    ``leadscore data validate`` reports the same values; the API refuses them in a request.
    """
    details = np.full(len(leads), None, dtype=object)
    for column in LEADS.columns:
        if column.kind not in ("float", "int") or column.name not in leads.columns:
            continue
        values = pd.to_numeric(leads[column.name], errors="coerce").astype("float64")
        invalid = np.isinf(values.to_numpy())
        if column.min_value is not None:
            invalid |= (values < column.min_value).fillna(False).to_numpy()
        first = invalid & pd.isna(details)
        texts = f"{column.name} is " + values[first].astype(str) + _number_fix(column.min_value)
        details[first] = texts.to_numpy(dtype=object)
    return pd.Series(details, index=leads.index, dtype=object)


def _number_fix(minimum: float | None) -> str:
    if minimum is None:
        return "; give a finite number or leave it empty"
    return f"; give a finite number of at least {minimum:g} or leave it empty"


def _leads_with_untimed_events(tables: CanonicalTables) -> pd.Series:
    """Return a detail per lead_id (the index) for leads with an activity or stage change lacking its time."""
    details: list[pd.Series] = []
    for table, column, label in (
        (tables.activities, "occurred_at", "activity"),
        (tables.stage_changes, "changed_at", "stage change"),
    ):
        untimed = table["lead_id"][table[column].isna().to_numpy() & table["lead_id"].notna().to_numpy()]
        counts = untimed.astype(object).value_counts()
        details.append(
            counts.astype(str) + f" {label} row(s) of this lead have no {column}; fix or drop them"
        )
    combined = pd.concat(details)
    return combined[~combined.index.duplicated(keep="first")]


def _events_of(frame: pd.DataFrame, lead_ids: pd.Series, time_column: str) -> pd.DataFrame:
    keep = ids_in(frame["lead_id"], lead_ids) & frame[time_column].notna().to_numpy()
    return frame[keep]


def not_open_rejects(tables: CanonicalTables, spine: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Return a reject row for every screened lead that is not in the scoring spine, with why."""
    leads = tables.leads
    if leads.empty:
        return reject_frame(pd.Series([], dtype=object), CLOSED_BEFORE_AS_OF, "")
    index = lead_index(leads)
    cutoff = scalar_micros(as_of, name="as_of")
    created = timestamp_micros(leads["created_at"], column="created_at")
    close = lead_close_micros(tables, index)
    not_open = ~ids_in(leads["lead_id"], spine["lead_id"])
    too_new = not_open & (created >= cutoff)
    closed = not_open & ~too_new
    ids = leads["lead_id"].astype(object)
    stamp = as_of.isoformat()
    closed_at = pd.Series(utc_texts(close[closed]), index=ids[closed].index, dtype=object)
    return pd.concat(
        [
            reject_frame(ids[too_new], CREATED_AT_OR_AFTER_AS_OF, f"created at or after as_of {stamp}"),
            reject_frame(
                ids[closed], CLOSED_BEFORE_AS_OF, "won or lost at " + closed_at + f", before as_of {stamp}"
            ),
        ],
        ignore_index=True,
    )


# Microseconds since the epoch of 0001-01-01 00:00 and 9999-12-31 23:59:59.999999 UTC.
_FOUR_DIGIT_YEARS_MICROS = (-62_135_596_800_000_000, 253_402_300_799_999_999)


def utc_texts(micros: np.ndarray) -> np.ndarray:
    """Return UTC times given in microseconds as Arrow writes them, such as "2025-06-30 00:00:00.000000Z".

    Arrow formats a naive timestamp faster than one with a time zone (about 30 times on 80,000
    values with pyarrow 25). In years 1 to 9999 the two texts differ only by the trailing "Z",
    so times outside those years take the slow cast.
    """
    low, high = _FOUR_DIGIT_YEARS_MICROS
    if micros.size and (micros.min() < low or micros.max() > high):
        texts = pa.array(micros, type=pa.timestamp("us", tz="UTC")).cast(pa.string())
    else:
        naive = pa.array(micros, type=pa.timestamp("us")).cast(pa.string())
        texts = pc.binary_join_element_wise(naive, "Z", "")
    return np.asarray(texts.to_numpy(zero_copy_only=False), dtype=object)


def ids_in(ids: pd.Series, known: pd.Series) -> np.ndarray:
    """Return, per id, whether it is among ``known`` (Arrow's hash lookup; a missing id is never known)."""
    values = pc.cast(pa.array(ids, from_pandas=True), pa.large_string())
    value_set = pc.cast(pa.array(known, from_pandas=True), pa.large_string())
    found = pc.is_in(values, value_set=value_set, skip_nulls=True)
    return np.asarray(found.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def reject_frame(lead_ids: pd.Series, reason: str, detail: str | pd.Series) -> pd.DataFrame:
    """Return reject rows (lead_id, reason, detail) for ``lead_ids``; missing ids stay missing."""
    ids = lead_ids.astype(object).where(lead_ids.notna(), None)
    details = detail.to_numpy(dtype=object) if isinstance(detail, pd.Series) else [detail] * len(ids)
    return pd.DataFrame(
        {"lead_id": ids.to_numpy(dtype=object), "reason": [reason] * len(ids), "detail": details}
    )


def orphan_count(events: pd.DataFrame, leads: pd.DataFrame) -> int:
    """Return how many event rows name a lead that is not in the leads table."""
    if events.empty:
        return 0
    return int((~ids_in(events["lead_id"], leads["lead_id"])).sum())


# --- scoring ------------------------------------------------------------------------------------------


def score_isolating_failures(
    bundle: ScorerBundle, tables: CanonicalTables, spine: pd.DataFrame, *, locale: str, top_reasons: int
) -> tuple[ScoredTables, pd.DataFrame]:
    """Score ``spine``; when scoring raises a LeadscoreError, split the spine to find the leads that fail.

    Every row of a spine scores alone the same as in a batch, so splitting changes no score.
    A lead that still fails alone is returned as a ``scoring_failed`` reject with the error text.
    The returned records and model matrix cover the leads that scored, in spine order.
    """
    no_failures = reject_frame(pd.Series([], dtype=object), SCORING_FAILED, "")
    try:
        scored = score_tables_with_matrix(bundle, tables, spine, locale=locale, top_reasons=top_reasons)
        return scored, no_failures
    except LeadscoreError as error:
        if len(spine) <= 1:
            lead_id = str(spine["lead_id"].iloc[0])
            logger.warning("lead %s cannot be scored: %s", lead_id, error)
            failed = reject_frame(pd.Series([lead_id], dtype=object), SCORING_FAILED, str(error)[:500])
            return score_tables_with_matrix(bundle, tables, spine.iloc[:0], locale=locale), failed
    middle = len(spine) // 2
    first, first_failures = score_isolating_failures(
        bundle, tables, spine.iloc[:middle], locale=locale, top_reasons=top_reasons
    )
    second, second_failures = score_isolating_failures(
        bundle, tables, spine.iloc[middle:], locale=locale, top_reasons=top_reasons
    )
    failures = pd.concat([first_failures, second_failures], ignore_index=True)
    parts = [part for part in (first, second) if len(part.records)]
    if not parts:
        return first, failures
    records = pd.concat([part.records for part in parts])
    matrix = pd.concat([part.matrix for part in parts])
    return ScoredTables(records, matrix), failures


# --- files --------------------------------------------------------------------------------------------


def scores_to_arrow(scores: pd.DataFrame, leads: pd.DataFrame) -> pa.Table:
    """Return score records as a table of ``SCORES_SCHEMA``, with owner, region and industry of each lead."""
    if scores.empty:
        return SCORES_SCHEMA.empty_table()
    by_id = leads.set_index(leads["lead_id"].astype(str))
    lead_ids = scores["lead_id"].astype(str).tolist()
    flags = scores["flags"].tolist()
    columns: dict[str, Any] = {
        "lead_id": lead_ids,
        "as_of": _utc_timestamps(scores["as_of"]),
        "p_convert": scores["p_convert"].to_numpy(dtype=np.float64),
        "ltv": scores["ltv"].to_numpy(dtype=np.float64),
        "expected_value": scores["expected_value"].to_numpy(dtype=np.float64),
        "grade": scores["grade"].astype(str).tolist(),
        "segment": scores["segment"].astype(str).tolist(),
        "reasons_positive": scores["reasons_positive"].tolist(),
        "reasons_negative": scores["reasons_negative"].tolist(),
        "model_version": scores["model_version"].astype(str).tolist(),
        "unseen_categories": [_unseen_json(flag.get("unseen_categories", {})) for flag in flags],
        "insufficient_data": [bool(flag.get("insufficient_data", False)) for flag in flags],
    }
    for column in ("owner_rep_id", "region", "industry"):
        values = by_id[column].reindex(lead_ids).astype(object).tolist() if column in by_id else []
        columns[column] = [_text_or_none(value) for value in values] or [None] * len(lead_ids)
    arrays = [pa.array(columns[field.name], type=field.type) for field in SCORES_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SCORES_SCHEMA)


def _unseen_json(unseen: dict[str, str]) -> str:
    # Most leads have no unseen category, and json.dumps({}) is "{}".
    if not unseen:
        return "{}"
    return json.dumps(unseen, ensure_ascii=False, sort_keys=True)


def _utc_timestamps(values: pd.Series) -> pa.Array:
    """Return tz-aware timestamps as an Arrow timestamp array in UTC, exact to the microsecond."""
    naive = pd.to_datetime(values, utc=True).dt.as_unit("us").dt.tz_localize(None)
    return pa.array(naive.to_numpy(), type=pa.timestamp("us", tz="UTC"))


def _text_or_none(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def rejects_to_arrow(rejects: pd.DataFrame) -> pa.Table:
    arrays = [pa.array(rejects[field.name].tolist(), type=field.type) for field in REJECTS_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=REJECTS_SCHEMA)


def _check_balance(chunk: int, leads: int, scored: int, rejected: int) -> None:
    if leads != scored + rejected:
        raise RuntimeError(
            f"chunk {chunk}: {leads} leads read but {scored} scored and {rejected} rejected; "
            "this is a bug in leadscore, please report it with the run folder"
        )


def _write_chunk_files(
    task: ChunkTask,
    scores: pa.Table,
    rejects: pa.Table,
    drift_counts: dict[str, Any],
    fault_hook: FaultHook | None,
) -> dict[str, str]:
    scores_path = chunk_file(task.chunks_dir, task.chunk, "scores")
    rejects_path = chunk_file(task.chunks_dir, task.chunk, "rejects")
    drift_path = chunk_file(task.chunks_dir, task.chunk, "drift")
    mid_write = (lambda: fault_hook(task.chunk, STAGE_SCORES_TEMP_WRITTEN)) if fault_hook else None
    write_parquet_atomic(scores_path, scores, before_rename=mid_write)
    write_parquet_atomic(rejects_path, rejects)
    write_json_atomic(drift_path, drift_counts)
    if fault_hook is not None:
        fault_hook(task.chunk, STAGE_CHUNK_WRITTEN)
    return {path.name: file_sha256(path) for path in (scores_path, rejects_path, drift_path)}
