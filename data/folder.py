"""The data folder: one Parquet file per canonical table, plus lead-attribute metadata.

Layout (every command that takes ``--data DIR`` reads this)::

    DIR/leads.parquet  DIR/activities.parquet  DIR/stage_changes.parquet
    DIR/orders.parquet DIR/reps.parquet        DIR/leads.attributes.json

``leads.attributes.json`` lists the custom lead attributes kept beside the canonical
columns: their type and whether they are known only after sales contact (``post_contact``),
which at-intake feature pipelines must exclude.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast, get_args

import pandas as pd
import pyarrow as pa

from data.schema import TABLE_NAMES
from leadscore.errors import InputFileError

AttributeType = Literal["category", "float", "int", "bool", "text", "timestamp"]
ATTRIBUTES_FILE = "leads.attributes.json"


@dataclass(frozen=True)
class CustomAttribute:
    """A lead column outside the canonical model, declared with its type."""

    name: str
    type: AttributeType
    post_contact: bool = False
    description: str = ""


@dataclass
class CanonicalTables:
    """The five canonical tables of one CRM history; a missing table is an empty frame."""

    leads: pd.DataFrame
    activities: pd.DataFrame
    stage_changes: pd.DataFrame
    orders: pd.DataFrame
    reps: pd.DataFrame
    attributes: list[CustomAttribute] = field(default_factory=list)

    def table(self, name: str) -> pd.DataFrame:
        frame: pd.DataFrame = getattr(self, name)
        return frame


def table_path(directory: Path, table: str) -> Path:
    """Return the Parquet path of ``table`` inside a data folder."""
    return Path(directory) / f"{table}.parquet"


def write_attributes(directory: Path, attributes: list[CustomAttribute]) -> None:
    """Write the custom-attribute declarations next to leads.parquet."""
    payload = [attribute.__dict__ for attribute in attributes]
    (Path(directory) / ATTRIBUTES_FILE).write_text(json.dumps(payload, ensure_ascii=False, indent=2), "utf-8")


def read_attributes(directory: Path) -> list[CustomAttribute]:
    """Read custom-attribute declarations; a folder without the file has none."""
    path = Path(directory) / ATTRIBUTES_FILE
    if not path.exists():
        return []
    try:
        payload = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputFileError(f"{path} is not valid UTF-8 JSON: {error}") from error
    if not isinstance(payload, list):
        raise InputFileError(
            f"{path} must hold a JSON list of attribute declarations, found {type(payload).__name__}"
        )
    return [_parse_attribute(item, path, position) for position, item in enumerate(payload, start=1)]


def _parse_attribute(item: object, path: Path, position: int) -> CustomAttribute:
    where = f"{path}, declaration {position}"
    if not isinstance(item, dict):
        raise InputFileError(f"{where}: expected an object with name and type, found {item!r}")
    unknown = sorted(set(item) - {"name", "type", "post_contact", "description"})
    if unknown:
        raise InputFileError(
            f"{where}: unknown key(s) {unknown}; allowed: name, type, post_contact, description"
        )
    name, kind = item.get("name"), item.get("type")
    if not isinstance(name, str) or not name.strip():
        raise InputFileError(f"{where}: 'name' must be a non-empty string, found {name!r}")
    allowed_types = get_args(AttributeType)
    if kind not in allowed_types:
        raise InputFileError(
            f"{where}: attribute {name!r} has type {kind!r}; expected one of {allowed_types}"
        )
    post_contact = item.get("post_contact", False)
    if not isinstance(post_contact, bool):
        raise InputFileError(
            f"{where}: 'post_contact' of {name!r} must be true or false, found {post_contact!r}"
        )
    description = item.get("description", "")
    return CustomAttribute(
        name=name, type=cast(AttributeType, kind), post_contact=post_contact, description=str(description)
    )


def read_table(directory: Path, table: str, *, required: bool = False) -> pd.DataFrame | None:
    """Read one table's Parquet file, or return None when it is absent and not required."""
    path = table_path(directory, table)
    if not path.exists():
        if required:
            raise InputFileError(
                f"{path} not found; a data folder needs {table}.parquet "
                f"(create it with 'leadscore data import ... --table {table}')"
            )
        return None
    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError) as error:
        raise InputFileError(
            f"{path} is not a readable Parquet file ({error}); re-create it with 'leadscore data import'"
        ) from error


def read_data_dir(directory: Path, *, require: tuple[str, ...] = ("leads",)) -> CanonicalTables:
    """Read every canonical table from a data folder.

    Tables named in ``require`` must exist. The others default to empty frames with the
    canonical columns, so a team without order history can still score conversion.
    """
    from data.validate import empty_table  # the validator owns the canonical dtypes

    directory = Path(directory)
    if not directory.is_dir():
        raise InputFileError(
            f"data folder {directory} not found; "
            "create it with 'leadscore data import' or 'leadscore data generate'"
        )
    frames: dict[str, pd.DataFrame] = {}
    for name in TABLE_NAMES:
        frame = read_table(directory, name, required=name in require)
        frames[name] = frame if frame is not None else empty_table(name)
    return CanonicalTables(**frames, attributes=read_attributes(directory))


def write_table(frame: pd.DataFrame, directory: Path, table: str) -> Path:
    """Write one table atomically (temporary file, then rename) and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = table_path(directory, table)
    temporary = path.with_suffix(".parquet.tmp")
    frame.to_parquet(temporary, index=False)
    temporary.replace(path)
    return path
