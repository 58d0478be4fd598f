"""Chunked Parquet writing in the canonical storage types, plus Arrow column builders.

Each table is written with one ``pyarrow.parquet.ParquetWriter`` that receives a chunk at a
time, so memory does not grow with the number of leads. The file is written under a
temporary name and renamed into place when complete; an error leaves no partial table.
The schema carries the pandas metadata of ``data.validate.empty_table``, so reading a file
back with pandas yields the canonical storage dtypes.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandas.errors import Pandas4Warning

from data.folder import CustomAttribute
from data.validate import empty_table, storage_dtype

logger = logging.getLogger(__name__)

_STRING = pa.large_string()
TIMESTAMP = pa.timestamp("us", tz="UTC")


def canonical_schema(table: str, attributes: Sequence[CustomAttribute] = ()) -> pa.Schema:
    """Return the Arrow schema of canonical table ``table`` followed by ``attributes``."""
    frame = empty_table(table)
    for attribute in attributes:
        frame[attribute.name] = pd.Series([], dtype=storage_dtype(attribute.type, required=False))
    with warnings.catch_warnings():
        # NOTE: pyarrow 25 reads Series.values of tz-aware columns, which pandas 3.1 deprecates.
        # The schema it builds is correct, so the warning is silenced until pyarrow changes.
        warnings.filterwarnings("ignore", category=Pandas4Warning)
        return pa.Schema.from_pandas(frame, preserve_index=False)


class ChunkedParquetWriter:
    """Write one Parquet file chunk by chunk; use it as a context manager.

    Leaving the ``with`` block normally renames the temporary file into place; leaving it
    with an exception deletes the temporary file.
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = Path(path)
        self.schema = schema
        self.rows = 0
        self._temporary = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self._temporary, schema)

    def write(self, columns: dict[str, pa.Array]) -> None:
        """Append one chunk given as arrays keyed by column name (every schema column)."""
        missing = [name for name in self.schema.names if name not in columns]
        extra = [name for name in columns if name not in self.schema.names]
        if missing or extra:
            raise ValueError(
                f"chunk for {self.path.name} lacks columns {missing} and has unknown columns {extra}"
            )
        table = pa.Table.from_arrays([columns[name] for name in self.schema.names], schema=self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def __enter__(self) -> ChunkedParquetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._writer.close()
        if exc_type is None:
            self._temporary.replace(self.path)
            logger.debug("wrote %s (%d rows)", self.path, self.rows)
        else:
            self._temporary.unlink(missing_ok=True)


def id_array(prefix: str, numbers: np.ndarray, width: int, sequence: np.ndarray | None = None) -> pa.Array:
    """Return ids like ``L00000042`` or, with ``sequence``, ``A00000042-007``."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), _STRING), width, "0")
    empty = pa.scalar("", _STRING)
    if sequence is None:
        return pc.binary_join_element_wise(pa.scalar(prefix, _STRING), digits, empty)
    sequence_digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(sequence, dtype=np.int64)), _STRING), 3, "0")
    return pc.binary_join_element_wise(
        pa.scalar(prefix, _STRING), digits, pa.scalar("-", _STRING), sequence_digits, empty
    )


def category_array(codes: np.ndarray, values: Sequence[str]) -> pa.Array:
    """Return the strings for category ``codes``; code -1 becomes a missing value."""
    codes = np.asarray(codes, dtype=np.int64)
    indices = pa.array(codes, mask=codes < 0)
    return pc.take(pa.array(list(values), type=_STRING), indices)


def string_array(values: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Return a string array from an object array of ``str``, with ``missing`` rows null."""
    return pa.array(values, type=_STRING, mask=missing)


def timestamp_array(micros: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Return UTC timestamps from int64 microseconds since the epoch, with ``missing`` rows null."""
    return pa.array(np.asarray(micros, dtype=np.int64), type=TIMESTAMP, mask=missing)


def float_array(values: np.ndarray) -> pa.Array:
    """Return float64 values; NaN becomes a missing value, as pandas stores it."""
    values = np.asarray(values, dtype=np.float64)
    return pa.array(values, type=pa.float64(), mask=np.isnan(values))
