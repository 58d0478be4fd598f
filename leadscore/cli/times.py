"""Parse a time given on the command line (``--as-of``, ``--from``) the way lead records are read.

ISO 8601 only, read in the business timezone when it has no offset, with the same checks as the
data layer: years the pipeline can hold, and no local time that a daylight-saving change skips
or repeats. Problems raise ConfigError naming the option, which the CLI prints without a
traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leadscore.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd


def parse_option_time(text: str, timezone: str, *, option: str) -> pd.Timestamp:
    """Return ``text`` as a UTC timestamp, or raise ConfigError naming ``option`` and the fix."""
    from data.records import timestamp_in_utc

    try:
        timestamp = timestamp_in_utc(text.strip(), timezone)
    except DataValidationError as error:
        raise ConfigError(f"{option} {error}") from None
    if timestamp is None:
        raise ConfigError(
            f"{option} {text!r} is not an ISO 8601 time; use for example 2025-06-30 or "
            "2025-06-30T18:00:00+08:00 (without an offset it is read in "
            f"{timezone})"
        )
    return timestamp
