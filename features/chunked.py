"""Feature frames for a whole data folder, in chunks of leads, with bounded memory.

Activities are the largest table (about ten rows per lead in the synthetic history), so they
are never loaded whole. One streaming pass over ``activities.parquet`` (record batches of
500,000 rows) splits them into one Parquet folder per chunk of leads in a temporary
directory. Each chunk then goes through the same ``build_features`` and ``attach_labels``
as a single lead.

NOTE: leads, stage changes, orders and the spine are held in memory for the whole run, so
memory still grows with them. For 1 million synthetic leads that is about 1.2 GiB (see
experiments/results/features-benchmark.md).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data.folder import CanonicalTables, read_attributes, read_table, table_path
from data.validate import coerce_canonical_dtypes, empty_table
from features.config import FeatureConfig
from features.inputs import lead_index
from features.labels import attach_labels
from features.pipeline import build_features
from features.spine import latest_event_time, scoring_spine, training_spine
from features.windows import entity_codes, timestamp_micros
from leadscore.errors import ConfigError, InputFileError

logger = logging.getLogger(__name__)

DEFAULT_LEADS_PER_CHUNK = 100_000
_BATCH_ROWS = 500_000
# Partitions keep only the activity columns that features read (activity_id and outcome
# are left out), so the temporary files stay small.
_ACTIVITY_FEATURE_COLUMNS = ("lead_id", "rep_id", "occurred_at", "type", "direction")


def build_features_chunked(
    data_dir: Path,
    config: FeatureConfig,
    *,
    as_of: pd.Timestamp | None = None,
    leads_per_chunk: int = DEFAULT_LEADS_PER_CHUNK,
    with_labels: bool = True,
    temp_dir: Path | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield feature frames of a data folder, one per chunk of ``leads_per_chunk`` leads.

    Without ``as_of`` the spine is the training spine and, when ``with_labels``, labels are
    attached (observed until the latest event in the folder). With ``as_of`` the spine is
    every lead open at that instant and no labels are added. Chunks follow the leads-table
    order, so concatenating the frames gives the whole spine in order. Temporary files go
    under ``temp_dir`` (default: the system temporary folder) and are removed at the end.
    """
    if leads_per_chunk < 1:
        raise ConfigError(f"leads_per_chunk must be 1 or more; got {leads_per_chunk}")
    data_dir = Path(data_dir)
    tables = _read_small_tables(data_dir)
    leads = lead_index(tables.leads)
    chunk_count = max(1, -(-len(leads) // leads_per_chunk))

    with tempfile.TemporaryDirectory(prefix="leadscore-features-", dir=temp_dir) as scratch:
        activity_dir = Path(scratch)
        if as_of is None:
            # Training needs the end of the history, which may be the latest activity.
            partition = _partition_activities(data_dir, leads, leads_per_chunk, activity_dir, None)
            until = latest_event_time(tables)
            if partition.latest is not None:
                until = max(until, pd.Timestamp(partition.latest, unit="us", tz="UTC"))
            spine = training_spine(tables, config, observed_until=until)
            spine_positions = entity_codes(spine["lead_id"], leads)
        else:
            until = None
            spine = scoring_spine(tables, as_of)
            spine_positions = entity_codes(spine["lead_id"], leads)
            # Only open leads need their activities; the others are never read again.
            wanted = np.zeros(len(leads), dtype=bool)
            wanted[spine_positions] = True
            partition = _partition_activities(data_dir, leads, leads_per_chunk, activity_dir, wanted)

        spine_bounds = np.searchsorted(
            spine_positions // leads_per_chunk, np.arange(chunk_count + 1), side="left"
        )
        stage_chunks = _chunk_of_rows(tables.stage_changes["lead_id"], leads, leads_per_chunk)

        rows = 0
        labelled = as_of is None and with_labels
        for chunk in range(chunk_count):
            chunk_spine = spine.iloc[spine_bounds[chunk] : spine_bounds[chunk + 1]]
            # An empty spine still yields one empty frame so that callers learn the columns.
            if chunk_spine.empty and (rows or chunk < chunk_count - 1):
                continue
            chunk_tables = _chunk_tables(tables, chunk, leads_per_chunk, stage_chunks, activity_dir)
            frame = _features_and_labels(chunk_spine, chunk_tables, config, until if labelled else None)
            rows += len(frame)
            logger.info("feature chunk %d/%d: %d rows", chunk + 1, chunk_count, len(frame))
            yield frame
    logger.info(
        "built features for %d rows of %d leads in %d chunk(s); %d activities read, %d of them "
        "for leads outside the spine and %d for leads not in leads.parquet (both skipped)",
        rows,
        len(leads),
        chunk_count,
        partition.activities,
        partition.outside_spine,
        partition.unknown,
    )


def _features_and_labels(
    spine: pd.DataFrame,
    tables: CanonicalTables,
    config: FeatureConfig,
    observed_until: pd.Timestamp | None,
) -> pd.DataFrame:
    """Return features, with labels between the spine and the features when observed_until is set."""
    frame = build_features(spine, tables, config)
    if observed_until is None:
        return frame
    labelled = attach_labels(spine, tables, config, observed_until=observed_until)
    return pd.concat([labelled, frame.drop(columns=list(spine.columns))], axis=1)


def _read_small_tables(data_dir: Path) -> CanonicalTables:
    if not data_dir.is_dir():
        raise InputFileError(
            f"data folder {data_dir} not found; create it with 'leadscore data import' or "
            "'leadscore data generate'"
        )
    frames: dict[str, pd.DataFrame] = {}
    attributes = read_attributes(data_dir)
    for name in ("leads", "stage_changes", "orders"):
        frame = read_table(data_dir, name, required=name == "leads")
        frames[name] = (
            empty_table(name)
            if frame is None
            else coerce_canonical_dtypes(name, frame, attributes if name == "leads" else ())
        )
    return CanonicalTables(
        leads=frames["leads"],
        activities=empty_table("activities"),
        stage_changes=frames["stage_changes"],
        orders=frames["orders"],
        reps=empty_table("reps"),
        attributes=attributes,
    )


@dataclass(frozen=True)
class _Partition:
    """Counts from splitting activities into chunk folders, and the latest activity time."""

    activities: int = 0
    outside_spine: int = 0
    unknown: int = 0
    latest: int | None = None


def _partition_activities(
    data_dir: Path, leads: pd.Index, leads_per_chunk: int, target: Path, wanted: np.ndarray | None
) -> _Partition:
    """Stream activities.parquet into one Parquet folder per chunk of leads.

    Rows of leads not in ``leads`` are counted and skipped. With ``wanted`` (a flag per
    lead), rows of other leads are skipped too.
    """
    path = table_path(data_dir, "activities")
    if not path.exists():
        return _Partition()
    parquet = pq.ParquetFile(path)
    columns = [column for column in _ACTIVITY_FEATURE_COLUMNS if column in parquet.schema_arrow.names]
    totals = {"activities": 0, "outside_spine": 0, "unknown": 0}
    latest: int | None = None
    for batch_number, batch in enumerate(parquet.iter_batches(batch_size=_BATCH_ROWS, columns=columns)):
        table = pa.Table.from_batches([batch])
        totals["activities"] += table.num_rows
        if table.num_rows:
            times = timestamp_micros(table.column("occurred_at").to_pandas(), column="occurred_at")
            latest = int(times.max()) if latest is None else max(latest, int(times.max()))
        codes = entity_codes(table.column("lead_id"), leads)
        chunks = np.where(codes >= 0, codes // leads_per_chunk, -1)
        totals["unknown"] += int((codes < 0).sum())
        if wanted is not None:
            outside = (codes >= 0) & ~wanted[np.maximum(codes, 0)]
            totals["outside_spine"] += int(outside.sum())
            chunks[outside] = -1
        _write_chunk_parts(table, chunks, target, batch_number)
    if totals["unknown"]:
        logger.warning(
            "%d activities name leads that are not in leads.parquet and are skipped; "
            "'leadscore data validate' lists them",
            totals["unknown"],
        )
    return _Partition(**totals, latest=latest)


def _write_chunk_parts(table: pa.Table, chunks: np.ndarray, target: Path, batch_number: int) -> None:
    """Write the rows of each chunk (chunk >= 0) as one part file in that chunk's folder."""
    kept = chunks >= 0
    if not kept.all():
        table = table.filter(pa.array(kept))
        chunks = chunks[kept]
    order = np.argsort(chunks, kind="stable")
    sorted_chunks = chunks[order]
    present = np.unique(sorted_chunks)
    starts = np.searchsorted(sorted_chunks, present, side="left")
    stops = np.searchsorted(sorted_chunks, present, side="right")
    ordered = table.take(pa.array(order))
    for chunk, start, stop in zip(present, starts, stops, strict=True):
        folder = target / f"chunk-{chunk:06d}"
        folder.mkdir(exist_ok=True)
        pq.write_table(ordered.slice(start, stop - start), folder / f"part-{batch_number:06d}.parquet")


def _chunk_of_rows(lead_ids: pd.Series, leads: pd.Index, leads_per_chunk: int) -> np.ndarray:
    codes = entity_codes(lead_ids, leads)
    return np.where(codes >= 0, codes // leads_per_chunk, -1)


def _chunk_tables(
    tables: CanonicalTables,
    chunk: int,
    leads_per_chunk: int,
    stage_chunks: np.ndarray,
    activity_dir: Path,
) -> CanonicalTables:
    leads = tables.leads.iloc[chunk * leads_per_chunk : (chunk + 1) * leads_per_chunk]
    folder = activity_dir / f"chunk-{chunk:06d}"
    if folder.exists():
        activities = pd.read_parquet(folder)
    else:
        activities = empty_table("activities").loc[:, list(_ACTIVITY_FEATURE_COLUMNS)]
    orders = tables.orders
    if "customer_id" in leads.columns and not orders.empty:
        orders = orders[orders["customer_id"].isin(leads["customer_id"].dropna()).to_numpy()]
    return CanonicalTables(
        leads=leads,
        activities=activities,
        stage_changes=tables.stage_changes[stage_chunks == chunk],
        orders=orders,
        reps=tables.reps,
        attributes=tables.attributes,
    )
