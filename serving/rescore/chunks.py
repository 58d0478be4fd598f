"""Split a data folder into chunks of leads, and read one chunk's tables, with bounded memory.

Chunks are hash buckets of the lead id: a row of leads, activities or stage_changes goes to
bucket ``hash(lead_id) % buckets``, so every event of a lead lands in its lead's bucket. The
hash is pandas' ``hash_array`` (SipHash with a fixed key), which gives the same bucket in every
process and on every machine, so a Dask worker and the local engine read identical chunks.
Bucketing needs no index of all lead ids, so no structure in memory grows with the number of leads.

The partition pass streams each table in record batches and appends each batch's rows to its
bucket's folder (``partitions/<table>/bucket-NNNNNN/part-NNNNNN.parquet``, a row group per batch).
Orders belong to customers, not leads, so they stay in ``orders.parquet``. Each chunk scans it
batch by batch and keeps the orders of its customers (pyarrow ``is_in``).
"""

from __future__ import annotations

import ctypes
import logging
import math
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data.folder import CanonicalTables, CustomAttribute, table_path
from data.validate import coerce_canonical_dtypes, empty_table
from leadscore.errors import ConfigError, InputFileError, SchemaError

logger = logging.getLogger(__name__)

PARTITIONED_TABLES: tuple[str, ...] = ("leads", "activities", "stage_changes")
BATCH_ROWS = 100_000
"""Rows read per record batch in the partition pass and the orders scan; sets memory, not results."""
READ_BUFFER_BYTES = 1 << 20
"""Read buffer of the streaming Parquet reader. With pyarrow's default pre_buffer, whole row
groups are read ahead. On 20 million activities that raised peak memory by about 300 MiB, in
one measurement on this project's benchmark machine."""
OPEN_ROW_GROUPS = 2_000
PARTITION_DICTIONARY = False
"""Dictionary encoding of the partition files. It is off because these files are read once
and deleted. Without it, writing 600,000 activity rows took about a third less time and the
files were about 8 % larger (one measurement on the rescoring benchmark's history)."""
_SPARE_FILES = 64


def bucket_count(lead_rows: int, chunk_size: int) -> int:
    """Return how many buckets give chunks of about ``chunk_size`` leads (at least one)."""
    return max(1, math.ceil(lead_rows / chunk_size))


def lead_buckets(lead_ids: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """Return the bucket of each lead id; missing ids go to bucket 0.

    Ids are cast to text first, so an id stored as a number in one table and as text in
    another still meets its lead. Each distinct id is hashed once.
    """
    if len(lead_ids) == 0:
        return np.empty(0, dtype=np.int64)
    text = pc.cast(lead_ids, pa.large_string())
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    encoded = text.dictionary_encode()
    distinct = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    hashes = pd.util.hash_array(distinct, categorize=False) if len(distinct) else np.empty(0, np.uint64)
    bucket_of_distinct = (hashes % np.uint64(buckets)).astype(np.int64)
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    result = np.zeros(len(indices), dtype=np.int64)
    present = indices >= 0
    result[present] = bucket_of_distinct[indices[present]]
    return result


def bucket_dir(partitions: Path, table: str, bucket: int) -> Path:
    """Return the folder of Parquet part files that contains the rows of ``table`` in ``bucket``."""
    return partitions / table / f"bucket-{bucket:06d}"


def partition_inputs(data_dir: Path, target: Path, buckets: int) -> dict[str, int]:
    """Write the leads, activities and stage_changes rows of ``data_dir`` into part files per bucket.

    Writes into ``target`` + ``.partial`` and renames it to ``target`` when every table is
    done, so an interrupted pass leaves nothing that looks complete. Returns the rows per
    table. Raises InputFileError when leads.parquet is missing.
    """
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _allow_open_files(buckets)
    rows: dict[str, int] = {}
    for table in PARTITIONED_TABLES:
        path = table_path(data_dir, table)
        if not path.exists():
            if table == "leads":
                raise InputFileError(
                    f"{path} not found; a data folder needs leads.parquet "
                    "(create it with 'leadscore data import' or 'leadscore data generate')"
                )
            rows[table] = 0
            continue
        rows[table] = _partition_table(path, partial, table, buckets)
        logger.info("partitioned %d %s rows into %d bucket(s)", rows[table], table, buckets)
    shutil.rmtree(target, ignore_errors=True)
    partial.mkdir(parents=True, exist_ok=True)
    partial.replace(target)
    return rows


def _partition_table(path: Path, partitions: Path, table: str, buckets: int) -> int:
    """Stream ``path`` in record batches and append each batch's rows to their bucket's part file.

    One ParquetWriter stays open per bucket that has rows, and each batch adds one row group
    to it. A writer keeps the metadata of every row group it wrote until it is closed. So the
    writers are closed and new part files started every ``rotation`` batches, which keeps
    about ``OPEN_ROW_GROUPS`` row groups open whatever the table size.
    """
    parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER_BYTES)
    schema = parquet.schema_arrow
    if "lead_id" not in schema.names:
        raise SchemaError(f"{path} has no lead_id column; re-import the table with 'leadscore data import'")
    rotation = max(1, OPEN_ROW_GROUPS // buckets)
    writers: dict[int, pq.ParquetWriter] = {}
    total = 0
    try:
        batches = parquet.iter_batches(batch_size=BATCH_ROWS, use_threads=False)
        for batch_number, batch in enumerate(batches):
            if batch_number % rotation == 0:
                _close_writers(writers)
            data = pa.Table.from_batches([batch], schema=schema)
            total += data.num_rows
            if data.num_rows == 0:
                continue
            assigned = lead_buckets(data.column("lead_id"), buckets)
            order = np.argsort(assigned, kind="stable")
            sorted_buckets = assigned[order]
            present = np.unique(sorted_buckets)
            starts = np.searchsorted(sorted_buckets, present, side="left")
            stops = np.searchsorted(sorted_buckets, present, side="right")
            ordered = data.take(pa.array(order))
            for bucket, start, stop in zip(present.tolist(), starts, stops, strict=True):
                writer = writers.get(bucket)
                if writer is None:
                    folder = bucket_dir(partitions, table, bucket)
                    folder.mkdir(parents=True, exist_ok=True)
                    writer = pq.ParquetWriter(
                        folder / f"part-{batch_number // rotation:06d}.parquet",
                        schema,
                        use_dictionary=PARTITION_DICTIONARY,
                    )
                    writers[bucket] = writer
                writer.write_table(ordered.slice(start, stop - start))
    finally:
        _close_writers(writers)
        release_arrow_memory()
    return total


def release_arrow_memory() -> None:
    """Return memory that Arrow's allocator keeps cached to the operating system.

    pyarrow's default allocator (mimalloc on Linux) keeps freed blocks for reuse. After a pass
    over a large table that cache grows with the table, so it is released between steps.
    """
    pa.default_memory_pool().release_unused()


def release_heap_memory() -> None:
    """Ask glibc's malloc to return free heap pages to the operating system (no-op elsewhere).

    pandas, NumPy and LightGBM allocate through malloc. Freed blocks between live ones stay in
    the process's heap, so resident memory crept up over many chunks; ``malloc_trim`` hands
    those free pages back.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast(Callable[[int], int], trim)


def _close_writers(writers: dict[int, pq.ParquetWriter]) -> None:
    for writer in writers.values():
        writer.close()
    writers.clear()


def _allow_open_files(buckets: int) -> None:
    """Make room for one open file per bucket, raising the soft limit up to the hard one if needed."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows has no resource module
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = buckets + _SPARE_FILES
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise ConfigError(
            f"{buckets} chunks need {needed} open files but this process may open at most {hard}; "
            "give a larger --chunk-size or raise the limit (ulimit -n)"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    logger.info("raised the open-file limit from %d to %d for %d buckets", soft, needed, buckets)


@dataclass(frozen=True)
class ChunkInputs:
    """Location of one chunk's rows: the partition folder, its bucket, the orders file and the attributes."""

    partitions: Path
    bucket: int
    orders_path: Path | None
    attributes: tuple[CustomAttribute, ...]


def read_chunk_tables(inputs: ChunkInputs) -> CanonicalTables:
    """Return the canonical tables of one bucket: its leads and their activities, stage changes and orders.

    The orders are those of the bucket's customers (``customer_id`` of its leads), kept from a
    batch-by-batch scan, so a chunk never loads the whole orders table.
    """
    frames = {
        table: _read_bucket(inputs.partitions, table, inputs.bucket, inputs.attributes)
        for table in PARTITIONED_TABLES
    }
    customers = frames["leads"]["customer_id"].dropna().astype(str).unique().tolist()
    return CanonicalTables(
        leads=frames["leads"],
        activities=frames["activities"],
        stage_changes=frames["stage_changes"],
        orders=_read_orders(inputs.orders_path, customers),
        reps=empty_table("reps"),
        attributes=list(inputs.attributes),
    )


def _read_bucket(
    partitions: Path, table: str, bucket: int, attributes: tuple[CustomAttribute, ...]
) -> pd.DataFrame:
    folder = bucket_dir(partitions, table, bucket)
    if not folder.is_dir():
        return empty_table(table)
    # One row group per partition batch: combining them gives pandas contiguous arrays
    # instead of columns of hundreds of small chunks.
    parts = [pq.ParquetFile(path).read(use_threads=False) for path in sorted(folder.glob("part-*.parquet"))]
    frame = pa.concat_tables(parts).combine_chunks().to_pandas()
    if table != "leads":
        return coerce_canonical_dtypes(table, frame, ())
    for attribute in attributes:
        if attribute.name not in frame.columns:
            frame[attribute.name] = None
    return coerce_canonical_dtypes(table, frame, attributes)


def _read_orders(path: Path | None, customers: list[str]) -> pd.DataFrame:
    """Return the orders of ``customers``, scanning orders.parquet one record batch at a time."""
    if path is None or not path.exists() or not customers:
        return empty_table("orders")
    parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER_BYTES)
    if "customer_id" not in parquet.schema_arrow.names:
        raise SchemaError(
            f"{path} has no customer_id column; re-import the table with 'leadscore data import'"
        )
    customer_set = pa.array(customers, type=pa.large_string())
    matches = []
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, use_threads=False):
        customer_ids = pc.cast(batch.column("customer_id"), pa.large_string())
        matches.append(pa.Table.from_batches([batch.filter(pc.is_in(customer_ids, value_set=customer_set))]))
    frame = pa.concat_tables(matches).combine_chunks().to_pandas() if matches else empty_table("orders")
    return coerce_canonical_dtypes("orders", frame)
