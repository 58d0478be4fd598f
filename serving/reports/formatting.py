"""Number and time formats of report cells; the same in both locales, with a dash for missing values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MISSING = "—"


def _finite(value: object) -> float | None:
    """Return ``value`` as a float, or None when it is missing (None, NA, NaT, NaN) or infinite."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"report cells format numbers; got {type(value).__name__} {value!r}")
    number = float(value)
    return number if math.isfinite(number) else None


def format_count(value: object) -> str:
    """Format a whole number with thousands separators."""
    number = _finite(value)
    return MISSING if number is None else f"{round(number):,}"


def format_percent(value: object, digits: int = 1) -> str:
    """Format a share in [0, 1] as a percentage."""
    number = _finite(value)
    return MISSING if number is None else f"{number:.{digits}%}"


def format_amount(value: object) -> str:
    """Format a money amount rounded to whole units, with thousands separators."""
    number = _finite(value)
    return MISSING if number is None else f"{number:,.0f}"


def format_decimal(value: object, digits: int = 1) -> str:
    """Format a number such as days or a metric with a fixed number of decimals."""
    number = _finite(value)
    return MISSING if number is None else f"{number:,.{digits}f}"


def format_time(value: pd.Timestamp | None, timezone: str) -> str:
    """Format a tz-aware timestamp in ``timezone`` to the minute, with the zone's UTC offset."""
    if value is None or value is pd.NaT:
        return MISSING
    local = pd.Timestamp(value).tz_convert(timezone)
    return local.strftime("%Y-%m-%d %H:%M UTC%z")
