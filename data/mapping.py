"""The mapping file of ``leadscore data import``: how one CRM's exports map onto the canonical tables.

TOML or YAML, validated strictly: an unknown key is an error naming it. Example (TOML)::

    timezone = "Asia/Shanghai"          # for timestamps without an offset
    date_formats = ["%d.%m.%Y %H:%M"]   # tried before the built-in formats
    placeholders = ["待跟进"]            # cell values treated as missing, besides the built-in ones

    [tables.leads.columns]              # header in the file -> canonical column or attribute
    "客户编码" = "lead_id"
    "预算区间" = "budget_band"

    [[tables.leads.attributes]]         # custom lead attributes kept beside the canonical columns
    name = "budget_band"
    type = "category"                   # category, float, int, bool, text or timestamp
    post_contact = false                # true when the value is known only after sales contact

    [tables.activities.values.type]     # value in the file -> canonical value
    "上门" = "visit"
"""

from __future__ import annotations

import difflib
import re
import tomllib
import zoneinfo
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data.folder import AttributeType, CustomAttribute
from data.import_messages import Message, MessageList, import_error
from data.schema import TABLE_NAMES, get_table
from leadscore.errors import ConfigError

_ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(import_error("unknown_timezone", zone=repr(value))) from error
    return value


def check_date_formats(formats: list[str]) -> list[str]:
    """Return ``formats`` unchanged; raise ``ValueError`` naming a format without a % directive.

    The error's only argument is a ``Message``, so its text can be rendered in another locale.
    """
    for date_format in formats:
        if "%" not in date_format:
            raise ValueError(import_error("date_format", format=repr(date_format)))
    return formats


class AttributeDeclaration(BaseModel):
    """A custom lead attribute: a column outside the canonical model that is kept, with its type."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Column name in leads.parquet: lowercase letters, digits and _.")
    type: AttributeType = Field(description="Value type: category, float, int, bool, text or timestamp.")
    post_contact: bool = Field(
        False, description="True when the value is known only after sales contact (excluded at intake)."
    )
    description: str = Field("", description="What the attribute means, for the docs and reports.")
    source: str | None = Field(None, description="Header of the column in the file; defaults to name.")

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        if not _ATTRIBUTE_NAME.match(value):
            raise ValueError(import_error("attribute_name", name=repr(value)))
        return value

    def to_attribute(self) -> CustomAttribute:
        """Return the declaration as stored in leads.attributes.json."""
        return CustomAttribute(self.name, self.type, self.post_contact, self.description)


class TableMapping(BaseModel):
    """Column renames, custom attributes, value maps and date settings of one table's export."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = Field(
        default_factory=dict, description="Header in the file -> canonical column or attribute name."
    )
    attributes: list[AttributeDeclaration] = Field(
        default_factory=list, description="Custom attributes to keep (leads only)."
    )
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Column -> {value in the file: canonical value}."
    )
    date_formats: list[str] = Field(
        default_factory=list, description="strptime formats tried first for this table."
    )
    timezone: str | None = Field(None, description="Time zone of naive timestamps in this table.")

    @field_validator("timezone")
    @classmethod
    def _timezone_exists(cls, value: str | None) -> str | None:
        return _check_timezone(value)

    @field_validator("date_formats")
    @classmethod
    def _formats_have_directives(cls, value: list[str]) -> list[str]:
        return check_date_formats(value)


class ImportMapping(BaseModel):
    """A mapping file: defaults for every table plus one ``TableMapping`` per table."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(None, description="Time zone of naive timestamps (default Asia/Shanghai).")
    date_formats: list[str] = Field(
        default_factory=list, description="strptime formats tried before the built-in ones."
    )
    placeholders: list[str] = Field(
        default_factory=list, description="Extra cell values treated as missing, besides the built-in list."
    )
    tables: dict[str, TableMapping] = Field(
        default_factory=dict, description="Per-table mappings by table name."
    )

    @field_validator("timezone")
    @classmethod
    def _timezone_exists(cls, value: str | None) -> str | None:
        return _check_timezone(value)

    @field_validator("date_formats")
    @classmethod
    def _formats_have_directives(cls, value: list[str]) -> list[str]:
        return check_date_formats(value)

    @model_validator(mode="after")
    def _check_tables(self) -> ImportMapping:
        for table_name, table_mapping in self.tables.items():
            if table_name not in TABLE_NAMES:
                raise ValueError(
                    import_error("unknown_table", table=repr(table_name), tables=", ".join(TABLE_NAMES))
                )
            _check_table_mapping(table_name, table_mapping)
        return self

    def for_table(self, table: str) -> TableMapping:
        """Return the mapping of ``table`` (an empty one when the file has none)."""
        return self.tables.get(table) or TableMapping.model_validate({})

    def renames(self, table: str) -> dict[str, str]:
        """Return header -> target renames of ``table``, attribute ``source`` headers included."""
        table_mapping = self.for_table(table)
        renames = dict(table_mapping.columns)
        for attribute in table_mapping.attributes:
            if attribute.source:
                renames[attribute.source] = attribute.name
        return renames


def _check_table_mapping(table_name: str, table_mapping: TableMapping) -> None:
    table = get_table(table_name)
    attribute_names = [attribute.name for attribute in table_mapping.attributes]
    if attribute_names and not table.allows_custom_attributes:
        raise ValueError(import_error("attributes_leads_only", table=table_name))
    for name in attribute_names:
        if name in table.column_names:
            raise ValueError(import_error("attribute_is_column", table=table_name, name=repr(name)))
    if len(set(attribute_names)) != len(attribute_names):
        raise ValueError(import_error("attribute_twice", table=table_name))

    targets = set(table.column_names) | set(attribute_names)
    for header, target in table_mapping.columns.items():
        if target not in targets:
            raise ValueError(
                import_error(
                    "column_target",
                    table=table_name,
                    header=repr(header),
                    target=repr(target),
                    columns=", ".join(table.column_names),
                )
            )

    category_targets = {column.name for column in table.columns if column.kind == "category"}
    category_targets |= {
        attribute.name for attribute in table_mapping.attributes if attribute.type == "category"
    }
    for column_name, value_map in table_mapping.values.items():
        if column_name not in category_targets:
            raise ValueError(
                import_error(
                    "value_map_column",
                    table=table_name,
                    column=repr(column_name),
                    columns=", ".join(sorted(category_targets)),
                )
            )
        allowed = table.column(column_name).allowed if column_name in table.column_names else None
        for source, target in value_map.items():
            if allowed is not None and target not in allowed:
                raise ValueError(
                    import_error(
                        "value_map_target",
                        table=table_name,
                        column=column_name,
                        source=repr(source),
                        target=repr(target),
                        allowed=", ".join(allowed),
                    )
                )


_ALL_KEYS = sorted(
    set(ImportMapping.model_fields) | set(TableMapping.model_fields) | set(AttributeDeclaration.model_fields)
)


def load_mapping(path: Path) -> ImportMapping:
    """Read and validate a TOML or YAML mapping file; raise ``ConfigError`` naming each bad key."""
    path = Path(path)
    try:
        text = path.read_text("utf-8-sig")
    except OSError as error:
        raise ConfigError(import_error("mapping_unreadable", path=path, detail=str(error))) from error
    except UnicodeDecodeError as error:
        raise ConfigError(import_error("mapping_not_utf8", path=path, offset=error.start)) from error

    suffix = path.suffix.lower()
    payload: Any
    try:
        if suffix == ".toml":
            payload = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            payload = yaml.safe_load(text) or {}
        else:
            raise ConfigError(import_error("mapping_suffix", path=path))
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ConfigError(
            import_error("mapping_syntax", path=path, syntax=suffix[1:].upper(), detail=str(error))
        ) from error
    return parse_mapping(payload, source=str(path))


def parse_mapping(payload: Any, *, source: str = "mapping") -> ImportMapping:
    """Validate an already parsed mapping document; raise ``ConfigError`` listing every problem."""
    if not isinstance(payload, dict):
        raise ConfigError(import_error("mapping_top_level", source=source, found=type(payload).__name__))
    try:
        return ImportMapping.model_validate(payload)
    except ValidationError as error:
        problems = MessageList(tuple(_describe(item) for item in error.errors()), "import.line_separator")
        raise ConfigError(import_error("mapping_invalid", source=source, problems=problems)) from None


def _describe(item: Any) -> Message:
    location: object = ".".join(str(part) for part in item["loc"]) or import_error("mapping_top")
    return import_error("mapping_problem", location=location, detail=_problem_detail(item))


def _problem_detail(item: Any) -> Message | str:
    """Return what is wrong at one location of a mapping file."""
    if item["type"] == "extra_forbidden":
        key = str(item["loc"][-1])
        close = difflib.get_close_matches(key, _ALL_KEYS, n=1)
        hint: object = import_error("mapping_close_key", name=repr(close[0])) if close else ""
        return import_error("mapping_unknown_key", name=repr(key), hint=hint)
    raised = item.get("ctx", {}).get("error")
    if isinstance(raised, ValueError) and len(raised.args) == 1 and isinstance(raised.args[0], Message):
        return raised.args[0]  # raised by the validators above, so it has a zh-CN text
    # NOTE: pydantic's own messages (wrong type, value not in a Literal) exist in English only,
    # so a zh-CN error shows them in English after the Chinese location.
    detail = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "string_type":
        return import_error("mapping_quote", detail=detail)
    return detail
