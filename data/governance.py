"""Data-governance rules of the importer: placeholder values and duplicate keys.

Placeholders
    Cells such as ``Select``, ``unknown``, ``-``, ``N/A``, ``无``, ``null`` or ``--`` (see
    ``DEFAULT_PLACEHOLDERS``; a cell of punctuation only counts too) are CRM filler, not
    data: they are treated as missing and counted per column. In a column that requires a
    person's name (``reps.name``) a title with no given name (``经理``, ``张经理``, ``王总``,
    ``李老师``) is a placeholder as well.

Duplicate keys and the merge policy
    Rows with the same key (``Table.key``: lead_id for leads, ...) are the same record, for
    example the same lead exported from two sources, or a file imported into a folder that
    already has the table. Within each group of rows with one key:

    1. Identical rows collapse into one and are counted as ``duplicates_collapsed``.
    2. Of rows that differ, one is kept: the one with the earliest event time
       (``Table.time_column``, e.g. leads.created_at), then the most complete one (most
       non-missing values), then the one seen first (rows already in the folder come before
       the file's rows, and the file's rows in file order).
    3. Missing values of the kept row are filled from the other rows in that same order.
    4. Every other row is reported as a reject with the reason
       ``duplicate of lead_id X (merged)``, naming the kept row and the values that differed,
       and counted as ``duplicates_merged``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data.schema import Table

DEFAULT_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "select",
        "--select--",
        "please select",
        "unknown",
        "n/a",
        "na",
        "#n/a",
        "null",
        "none",
        "nil",
        "nan",
        "无",
        "空",
        "(空)",
        "未知",
        "不详",
        "暂无",
        "未填",
        "未填写",
        "待定",
        "面议",
        "请选择",
        # Excel error values: a formula that failed has no value.
        "#null!",
        "#div/0!",
        "#value!",
        "#ref!",
        "#name?",
        "#num!",
        "#spill!",
        "#calc!",
        "#getting_data",
    }
)
_PUNCTUATION_ONLY = re.compile(r"^[-—–_/\\.·?？!！*#~]+$")
_EXCEL_TEXT_FORMULA = re.compile(r'^="(.*)"$', re.DOTALL)

# A title with at most a surname (one or two Han characters) before it and no given name.
_TITLES = ("经理", "总监", "主管", "老师", "先生", "女士", "小姐", "总")
_TITLE_ONLY_NAME = re.compile(r"^[\u4e00-\u9fff]{0,2}(" + "|".join(_TITLES) + r")$")


def placeholder_key(text: str) -> str:
    """Return the form of a cell that placeholder matching compares: NFKC, case-folded, stripped."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


def is_placeholder(text: str, placeholders: frozenset[str] = DEFAULT_PLACEHOLDERS) -> bool:
    """Return whether ``text`` is a placeholder; ``placeholders`` hold ``placeholder_key`` forms."""
    key = placeholder_key(text)
    return key in placeholders or bool(_PUNCTUATION_ONLY.match(key))


def is_title_only_name(text: str) -> bool:
    """Return whether ``text`` is a title (``经理``) or a surname plus a title (``张经理``), not a name."""
    return bool(_TITLE_ONLY_NAME.match(text.strip()))


@dataclass
class CleanedCells:
    """Cell texts after cleaning, the placeholders found by position, and the Excel formulas unwrapped."""

    values: list[str | None]
    placeholders: dict[int, str] = field(default_factory=dict)  # position -> placeholder text
    unwrapped_formulas: int = 0


def clean_cells(
    cells: Iterable[str | None],
    *,
    placeholders: frozenset[str] = DEFAULT_PLACEHOLDERS,
    person_name: bool = False,
) -> CleanedCells:
    """Strip cells, unwrap Excel text formulas (``="00123"``) and turn placeholders into None.

    With ``person_name`` a title-only name (``张经理``) is a placeholder too.
    """
    cleaned = CleanedCells(values=[])
    for cell in cells:
        if cell is None:
            cleaned.values.append(None)
            continue
        text = cell.strip()
        formula = _EXCEL_TEXT_FORMULA.match(text)
        if formula:
            text = formula.group(1).strip()
            cleaned.unwrapped_formulas += 1
        if not text:
            cleaned.values.append(None)
        elif is_placeholder(text, placeholders) or (person_name and is_title_only_name(text)):
            cleaned.placeholders[len(cleaned.values)] = text
            cleaned.values.append(None)
        else:
            cleaned.values.append(text)
    return cleaned


def placeholder_set(extra: Iterable[str] = ()) -> frozenset[str]:
    """Return the built-in placeholders plus ``extra`` ones, in ``placeholder_key`` form."""
    return DEFAULT_PLACEHOLDERS | {placeholder_key(value) for value in extra}


# ---------------------------------------------------------------------------------------
# Duplicate keys


@dataclass(frozen=True)
class RowOrigin:
    """Source of a row in a merged frame: the existing table or a row of the imported file."""

    existing: bool
    row: int  # 1-based row in the existing table or the file

    def describe(self) -> str:
        return f"existing row {self.row}" if self.existing else f"row {self.row}"


@dataclass
class DuplicateOutcome:
    """A row removed by the merge policy: the row, its key, the row kept and why.

    ``reason`` is English, and ``label`` and ``differences`` are its parts for rendering it
    in another language.
    """

    origin: RowOrigin
    key_column: str
    key_value: str
    kept: RowOrigin
    reason: str
    identical: bool
    label: str = ""  # the key as "lead_id L1" or "lead_id L1, stage won, changed_at ..."
    differences: list[Difference] = field(default_factory=list)  # at most 5, see more_differences
    more_differences: int = 0


@dataclass(frozen=True)
class Difference:
    """A value of a removed duplicate that differs from the kept row, both quoted and shortened."""

    column: str
    value: str
    kept_value: str


@dataclass
class MergeResult:
    """The frame after the merge policy and one outcome per removed row."""

    frame: pd.DataFrame
    origins: list[RowOrigin]
    removed: list[DuplicateOutcome] = field(default_factory=list)
    filled_values: int = 0

    @property
    def collapsed(self) -> list[DuplicateOutcome]:
        return [outcome for outcome in self.removed if outcome.identical]

    @property
    def merged(self) -> list[DuplicateOutcome]:
        return [outcome for outcome in self.removed if not outcome.identical]


def merge_duplicates(table: Table, frame: pd.DataFrame, origins: Sequence[RowOrigin]) -> MergeResult:
    """Apply the merge policy of the module docstring to rows with the same key.

    ``frame`` contains the rows in precedence order (existing rows first, then the file's rows)
    with ``origins`` giving each row's source. Returns the frame with one row per key.
    """
    if len(origins) != len(frame):
        raise ValueError(f"{len(origins)} origins for {len(frame)} rows")
    frame = frame.reset_index(drop=True)
    key_columns = list(table.key)
    duplicated = frame.duplicated(key_columns, keep=False)
    if not duplicated.any():
        return MergeResult(frame=frame, origins=list(origins))

    result = MergeResult(frame=frame, origins=list(origins))
    drop: list[int] = []
    for _, group in frame[duplicated].groupby(key_columns, sort=False, dropna=False):
        positions = list(group.index)
        kept, removed, filled = _merge_group(table, frame, positions, origins)
        result.removed.extend(removed)
        result.filled_values += filled
        drop.extend(position for position in positions if position != kept)

    keep_mask = ~frame.index.isin(drop)
    result.frame = frame[keep_mask].reset_index(drop=True)
    result.origins = [origin for origin, keep in zip(origins, keep_mask, strict=True) if keep]
    return result


def _merge_group(
    table: Table, frame: pd.DataFrame, positions: list[int], origins: Sequence[RowOrigin]
) -> tuple[int, list[DuplicateOutcome], int]:
    key_column = table.key[0]
    rows = {position: list(frame.iloc[position].tolist()) for position in positions}
    names = list(frame.columns)
    first = dict(zip(names, rows[positions[0]], strict=True))
    key_value = _short(first[key_column])
    label = ", ".join(f"{name} {_short(first[name])}" for name in table.key)
    removed: list[DuplicateOutcome] = []

    # Step 1: identical rows collapse onto the first of them.
    distinct: list[int] = []
    signatures: dict[tuple[object, ...], int] = {}
    for position in positions:
        signature = tuple(_normalize(value) for value in rows[position])
        if signature in signatures:
            kept = origins[signatures[signature]]
            removed.append(
                DuplicateOutcome(
                    origins[position],
                    key_column,
                    key_value,
                    kept,
                    f"identical duplicate of {label} ({kept.describe()}), collapsed",
                    identical=True,
                    label=label,
                )
            )
        else:
            signatures[signature] = position
            distinct.append(position)
    if len(distinct) == 1:
        return distinct[0], removed, 0

    # Step 2: earliest event time, then most complete, then first seen.
    time_index = names.index(table.time_column) if table.time_column in names else None

    def rank(position: int) -> tuple[float, int, int]:
        time_value = rows[position][time_index] if time_index is not None else None
        time_rank = math.inf if _is_missing(time_value) else float(pd.Timestamp(time_value).value)  # type: ignore[arg-type]
        completeness = sum(not _is_missing(value) for value in rows[position])
        return (time_rank, -completeness, position)

    ordered = sorted(distinct, key=rank)
    kept_position, others = ordered[0], ordered[1:]
    kept_origin = origins[kept_position]
    rule = f"earliest {table.time_column}, then most complete" if table.time_column else "most complete"

    # Step 3: fill the kept row's missing values from the others, in rank order.
    filled = 0
    for index in range(len(names)):
        if not _is_missing(rows[kept_position][index]):
            continue
        for other in others:
            value = rows[other][index]
            if not _is_missing(value):
                frame.iat[kept_position, index] = value
                rows[kept_position][index] = value
                filled += 1
                break

    # Step 4: the other rows become rejects naming what differed.
    for other in others:
        differences, more = _differences(names, rows[kept_position], rows[other])
        removed.append(
            DuplicateOutcome(
                origins[other],
                key_column,
                key_value,
                kept_origin,
                f"duplicate of {label} (merged): kept {kept_origin.describe()} ({rule})"
                + _describe_differences(differences, more),
                identical=False,
                label=label,
                differences=differences,
                more_differences=more,
            )
        )
    return kept_position, removed, filled


def _differences(
    names: list[str], kept: list[object], other: list[object], limit: int = 5
) -> tuple[list[Difference], int]:
    """Return the first ``limit`` values of ``other`` that differ from ``kept``, and how many more do."""
    found = []
    for column, theirs, mine in zip(names, kept, other, strict=True):
        if _is_missing(mine) or _normalize(mine) == _normalize(theirs):
            continue
        found.append(Difference(column, repr(_short(mine)), repr(_short(theirs))))
    return found[:limit], max(len(found) - limit, 0)


def _describe_differences(differences: list[Difference], more: int) -> str:
    parts = [f"{item.column}={item.value} (kept {item.kept_value})" for item in differences]
    if more:
        parts.append(f"and {more} more")
    return f"; differing values: {', '.join(parts)}" if parts else ""


def _normalize(value: object) -> object:
    if _is_missing(value):
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(value)
    return value


def _is_missing(value: object) -> bool:
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) == 0
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _short(value: object, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
