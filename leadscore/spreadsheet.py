"""Make CSV files safe to open in Excel or WPS: text that a spreadsheet would run as a formula."""

from __future__ import annotations

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make Excel or WPS read a cell as a formula."""


def defuse_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``frame`` whose text cells starting like a formula get a leading apostrophe.

    Spreadsheets show such a cell as plain text, so a channel named ``=HYPERLINK(...)`` in CRM
    data cannot run when a sales manager opens the file.
    """
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column].dtype):
            safe[column] = safe[column].map(_defuse)
    return safe


def _defuse(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
