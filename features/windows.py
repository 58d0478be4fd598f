"""Vectorized as-of lookups over event streams: "which events of entity e happened before t?".

Every feature is an aggregate over the events of one lead (or customer) strictly before a
cutoff. ``EventIndex`` sorts events once by (entity, time) and answers such questions for
millions of (entity, time) queries with two binary searches, without a per-entity Python loop.
Times are int64 microseconds since the Unix epoch (UTC), the storage unit of canonical tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadscore.errors import DataValidationError

MICROS_PER_HOUR = 3_600_000_000
MICROS_PER_DAY = 24 * MICROS_PER_HOUR

_EPOCH = pd.Timestamp(0, tz="UTC")
# Keys are entity * stride + time rank and must stay below the int64 limit.
_MAX_KEY = 2**62


def timestamp_micros(values: pd.Series, *, column: str) -> np.ndarray:
    """Return tz-aware timestamps as int64 microseconds since the epoch.

    Raises DataValidationError naming ``column`` when the values are naive or missing,
    because a point-in-time comparison needs every event on one absolute timeline.
    """
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        raise DataValidationError(
            f"column {column!r} must hold tz-aware timestamps; got dtype {values.dtype}. "
            "Store timestamps in UTC (data.validate.coerce_canonical_dtypes does this)."
        )
    missing = values.isna()
    if missing.any():
        first = values.index[missing.to_numpy()][0]
        raise DataValidationError(
            f"column {column!r} has {int(missing.sum())} missing timestamp(s), first at index {first!r}; "
            "every event needs its time"
        )
    naive_utc = values.dt.tz_convert("UTC").dt.as_unit("us").dt.tz_localize(None)
    return naive_utc.to_numpy().view(np.int64)


def scalar_micros(value: pd.Timestamp, *, name: str) -> int:
    """Return one tz-aware timestamp as microseconds since the epoch, or raise naming ``name``."""
    timestamp = pd.Timestamp(value)
    if timestamp.tzinfo is None:
        raise DataValidationError(
            f"{name} {timestamp.isoformat()} has no time zone; "
            "give an offset (for example +08:00) or localize it first"
        )
    return int((timestamp - _EPOCH) // pd.Timedelta(microseconds=1))


def micros_to_timestamps(values: np.ndarray) -> pd.Series:
    """Return int64 microseconds as a ``datetime64[us, UTC]`` series."""
    return pd.Series(values.astype("datetime64[us]")).dt.tz_localize("UTC")


def local_day_numbers(micros: np.ndarray, timezone: str) -> np.ndarray:
    """Return the calendar day (days since 1970-01-01) of each instant in ``timezone``."""
    if len(micros) == 0:
        return np.empty(0, dtype=np.int64)
    local = micros_to_timestamps(micros).dt.tz_convert(timezone).dt.tz_localize(None).dt.as_unit("us")
    return local.to_numpy().view(np.int64) // MICROS_PER_DAY


class EventIndex:
    """Events sorted by (entity code, time, tie-break) for as-of position queries.

    ``positions_before(codes, times)`` returns, for each query, the position in the sorted
    order of the first event of that entity at or after the query time. Events before it
    within the entity's block are exactly those with time < query time, so the cutoff is
    exclusive. Prefix sums over the sorted order turn positions into counts and sums.
    """

    def __init__(self, codes: np.ndarray, times: np.ndarray, tie_break: np.ndarray | None = None) -> None:
        codes = np.asarray(codes, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        if len(codes) != len(times):
            raise ValueError(f"{len(codes)} entity codes for {len(times)} event times")
        if len(codes) and codes.min() < 0:
            raise ValueError("entity codes must be 0 or more; drop events of unknown entities first")
        sort_keys = (times, codes) if tie_break is None else (np.asarray(tie_break), times, codes)
        self.order: np.ndarray = np.lexsort(sort_keys)
        self.codes: np.ndarray = codes[self.order]
        self.times: np.ndarray = times[self.order]
        # Ranks among all event times (ties share the rank of their first copy) order events
        # exactly like their times and fit in far fewer bits than microseconds. A plain sort
        # is used because np.unique is several times slower on a million timestamps.
        self._all_times = np.sort(self.times)
        self._stride = len(self._all_times) + 1
        max_code = int(self.codes[-1]) if len(self.codes) else 0
        if (max_code + 2) * self._stride >= _MAX_KEY:
            raise ValueError(
                f"{max_code + 1} entities x {self._stride} event times overflow the int64 keys; "
                "build features in smaller chunks of leads"
            )
        ranks = np.searchsorted(self._all_times, self.times, side="left")
        self._keys = self.codes * self._stride + ranks

    def __len__(self) -> int:
        return len(self.codes)

    def positions_before(self, codes: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Return the sorted position of each entity's first event at or after each time."""
        codes = np.asarray(codes, dtype=np.int64)
        ranks = np.searchsorted(self._all_times, np.asarray(times, dtype=np.int64), side="left")
        return np.searchsorted(self._keys, codes * self._stride + ranks, side="left")

    def block_starts(self, codes: np.ndarray) -> np.ndarray:
        """Return the sorted position of each entity's first event (its block start)."""
        codes = np.asarray(codes, dtype=np.int64)
        return np.searchsorted(self._keys, codes * self._stride, side="left")

    def counts_before(self, codes: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Return how many events of each entity happened strictly before each time."""
        return self.positions_before(codes, times) - self.block_starts(codes)

    def sorted_values(self, values: np.ndarray) -> np.ndarray:
        """Return per-event ``values`` (in input order) rearranged into the sorted order."""
        return np.asarray(values)[self.order]

    def prefix_counts(self, flags: np.ndarray) -> np.ndarray:
        """Return prefix sums (length n + 1) of boolean or integer flags given in input order."""
        sorted_flags = np.asarray(flags)[self.order].astype(np.int64)
        prefix = np.zeros(len(sorted_flags) + 1, dtype=np.int64)
        np.cumsum(sorted_flags, out=prefix[1:])
        return prefix

    def entity_cumsum(self, values: np.ndarray) -> np.ndarray:
        """Return running float sums that restart at each entity, in the sorted order.

        Sums restart per entity so a lead's value never depends on which other leads are
        in the same batch, down to the last bit of floating-point rounding.
        """
        sorted_values = pd.Series(np.asarray(values, dtype=np.float64)[self.order])
        return sorted_values.groupby(self.codes, sort=False).cumsum().to_numpy(dtype=np.float64)


def entity_codes(ids: pd.Series | pa.ChunkedArray, entities: pd.Index) -> np.ndarray:
    """Return the position of each id in ``entities`` (-1 when absent, including missing ids).

    ``entities`` must be unique. String ids use Arrow hashing: the ids are dictionary-encoded
    and the entities are looked up among the distinct ids, so no hash table of all entities
    is built per call. That is several times faster than ``Index.get_indexer`` when a batch
    of events names a small part of a million leads. Other id types fall back to pandas.
    """
    if len(ids) == 0:
        return np.empty(0, dtype=np.int64)
    try:
        arrow_ids = ids if isinstance(ids, pa.ChunkedArray) else pa.array(ids, from_pandas=True)
        values = _combined(arrow_ids.cast(pa.large_string()))
        entity_values = _combined(pa.array(entities, from_pandas=True).cast(pa.large_string()))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        plain_ids = ids.to_pandas() if isinstance(ids, pa.ChunkedArray) else ids
        return np.asarray(entities.get_indexer(pd.Index(plain_ids)), dtype=np.int64)

    encoded = values.dictionary_encode()
    if len(encoded.dictionary) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    # For each entity, its position among the distinct ids (null when no id names it).
    found = pc.index_in(entity_values, value_set=encoded.dictionary)
    named = found.is_valid().to_numpy(zero_copy_only=False)
    entity_of_distinct = np.full(len(encoded.dictionary), -1, dtype=np.int64)
    entity_of_distinct[found.fill_null(0).to_numpy()[named]] = np.flatnonzero(named)

    indices = encoded.indices
    present = indices.is_valid().to_numpy(zero_copy_only=False)
    return np.where(present, entity_of_distinct[indices.fill_null(0).to_numpy()], -1)


def _combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def gather(values: np.ndarray, positions: np.ndarray, valid: np.ndarray, fill: float) -> np.ndarray:
    """Return ``values[positions]`` where ``valid`` and ``fill`` elsewhere, as float64."""
    result = np.full(len(positions), fill, dtype=np.float64)
    if len(values):
        safe = np.where(valid, positions, 0)
        result[valid] = np.asarray(values, dtype=np.float64)[safe[valid]]
    return result
