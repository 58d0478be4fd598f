"""As-of lookups: EventIndex positions and counts, entity codes, timestamp conversion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features.windows import EventIndex, entity_codes, scalar_micros, timestamp_micros
from leadscore.errors import DataValidationError


def test_counts_before_are_exclusive() -> None:
    index = EventIndex(np.array([1, 0, 1, 1, 0]), np.array([30, 10, 10, 20, 10]))

    counts = index.counts_before(np.array([1, 1, 1, 0, 0, 2]), np.array([10, 11, 31, 10, 11, 99]))

    assert counts.tolist() == [0, 1, 3, 0, 2, 0]


def test_positions_follow_sorted_order() -> None:
    index = EventIndex(np.array([1, 0, 1]), np.array([5, 7, 3]))

    assert index.codes.tolist() == [0, 1, 1]
    assert index.times.tolist() == [7, 3, 5]
    assert index.block_starts(np.array([0, 1, 2])).tolist() == [0, 1, 3]
    assert index.sorted_values(np.array(["b", "a", "c"])).tolist() == ["a", "c", "b"]


def test_tie_break_orders_equal_times() -> None:
    index = EventIndex(np.array([0, 0, 0]), np.array([5, 5, 5]), tie_break=np.array([2, 0, 1]))

    assert index.order.tolist() == [1, 2, 0]


def test_entity_cumsum_restarts_per_entity() -> None:
    index = EventIndex(np.array([0, 1, 0, 1]), np.array([1, 1, 2, 2]))

    running = index.entity_cumsum(np.array([1.5, 10.0, 2.5, 20.0]))

    assert running.tolist() == [1.5, 4.0, 10.0, 30.0]


def test_prefix_counts_of_flags() -> None:
    index = EventIndex(np.array([0, 0, 1]), np.array([2, 1, 1]))

    assert index.prefix_counts(np.array([True, False, True])).tolist() == [0, 0, 1, 2]


def test_empty_index() -> None:
    index = EventIndex(np.array([], dtype=np.int64), np.array([], dtype=np.int64))

    assert len(index) == 0
    assert index.counts_before(np.array([0, 3]), np.array([5, 5])).tolist() == [0, 0]


def test_negative_entity_codes_are_rejected() -> None:
    with pytest.raises(ValueError, match="entity codes must be 0 or more"):
        EventIndex(np.array([-1]), np.array([0]))


@pytest.mark.parametrize(
    "ids",
    [
        pd.Series(["b", None, "z", "a", "b"], dtype="str"),
        pd.Series(["b", None, "z", "a", "b"], dtype=object),
        pa.chunked_array([["b", None], ["z", "a", "b"]]),
    ],
)
def test_entity_codes_for_string_ids(ids: pd.Series | pa.ChunkedArray) -> None:
    entities = pd.Index(["a", "b", "c"], dtype="str")

    assert entity_codes(ids, entities).tolist() == [1, -1, -1, 0, 1]


def test_entity_codes_edge_cases() -> None:
    entities = pd.Index(["a", "b"])

    assert entity_codes(pd.Series([], dtype="str"), entities).tolist() == []
    assert entity_codes(pd.Series([None, None], dtype="str"), entities).tolist() == [-1, -1]
    assert entity_codes(pd.Series([3, 1]), pd.Index([1, 2, 3])).tolist() == [2, 0]


def test_timestamp_micros_requires_aware_values() -> None:
    aware = pd.Series(pd.to_datetime(["1970-01-01 08:00:00.000001+08:00"])).dt.as_unit("us")

    assert timestamp_micros(aware, column="occurred_at").tolist() == [1]
    with pytest.raises(DataValidationError, match="column 'occurred_at' must hold tz-aware timestamps"):
        timestamp_micros(pd.Series(pd.to_datetime(["2024-01-01"])), column="occurred_at")
    with pytest.raises(DataValidationError, match=r"column 'changed_at' has 1 missing timestamp\(s\)"):
        timestamp_micros(pd.Series([aware.iloc[0], pd.NaT]), column="changed_at")


def test_scalar_micros_requires_a_timezone() -> None:
    assert scalar_micros(pd.Timestamp("1970-01-01 00:00:01", tz="UTC"), name="as_of") == 1_000_000
    with pytest.raises(DataValidationError, match="as_of 2024-01-01T00:00:00 has no time zone"):
        scalar_micros(pd.Timestamp("2024-01-01"), name="as_of")
