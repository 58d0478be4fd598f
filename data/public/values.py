"""Parsing of raw text columns: blanks and placeholders, numbers, whole numbers, yes/no flags.

Each parser returns the parsed values and a mask of the values it could not parse, so the
adapter can reject those rows with a reason instead of silently turning them into missing
values.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


def to_missing(series: pd.Series, placeholders: Iterable[str] = ()) -> tuple[pd.Series, int]:
    """Return ``series`` with blank cells and ``placeholders`` as missing, and the placeholder count.

    Placeholders match after stripping surrounding whitespace, case-sensitively.
    """
    stripped = series.astype("str").str.strip()
    placeholder_mask = stripped.isin(list(placeholders))
    missing = (stripped == "") | placeholder_mask
    return stripped.mask(missing), int(placeholder_mask.sum())


def parse_numbers(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Return float64 values (blank is NaN) and the mask of non-blank values that are not numbers."""
    text, _ = to_missing(series)
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    invalid = (text.notna() & (numbers.isna() | np.isinf(numbers))).to_numpy()
    return numbers, invalid


def parse_whole_numbers(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Return Int64 values (blank is missing) and the mask of values that are not whole numbers."""
    numbers, invalid = parse_numbers(series)
    fractional = (numbers.notna() & (numbers != np.floor(numbers))).to_numpy()
    whole = numbers.where(~(invalid | fractional))
    return whole.astype("Int64"), invalid | fractional


def parse_flags(
    series: pd.Series, *, true: str = "yes", false: str = "no", unknown: Iterable[str] = ()
) -> tuple[pd.Series, np.ndarray]:
    """Return boolean values from yes/no text and the mask of values that are neither.

    Matching ignores case and surrounding whitespace; blanks and ``unknown`` spellings
    become missing values.
    """
    text, _ = to_missing(series)
    lowered = text.str.lower()
    unknown_values = {value.lower() for value in unknown}
    flags = pd.Series(pd.NA, index=series.index, dtype="boolean")
    flags[lowered == true.lower()] = True
    flags[lowered == false.lower()] = False
    invalid = (lowered.notna() & ~lowered.isin([true.lower(), false.lower(), *unknown_values])).to_numpy()
    return flags, invalid


def first_position_of(values: pd.Series) -> dict[object, int]:
    """Return the first frame position of each distinct value (for duplicate messages)."""
    first: dict[object, int] = {}
    for position, value in enumerate(values.tolist()):
        first.setdefault(value, position)
    return first
