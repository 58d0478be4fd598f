"""Header matching and the mapping file."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.folder import CustomAttribute
from data.headers import header_lookup, normalize_header, resolve_headers
from data.mapping import load_mapping, parse_mapping
from data.schema import LEADS, TABLES
from leadscore.errors import ConfigError, SchemaError


@pytest.mark.parametrize(
    "header", ["线索ID", " 线索ID ", "　线索ＩＤ　", "\ufeff线索ID", "*线索ID", "线索id"]
)
def test_chinese_header_variants_match(header: str) -> None:
    resolution = resolve_headers(LEADS, [header, "创建时间"])
    assert resolution.columns[0] == "lead_id"


@pytest.mark.parametrize("header", ["Lead ID", "lead_id", "LEADID", "lead-id", "LeadId"])
def test_english_header_variants_match(header: str) -> None:
    assert normalize_header(header) == "leadid"


def test_trailing_note_is_ignored() -> None:
    resolution = resolve_headers(LEADS, ["线索ID", "创建时间（北京时间）", "预算（元）"])
    assert resolution.sources["created_at"] == "创建时间（北京时间）"
    assert resolution.sources["declared_budget"] == "预算（元）"


@pytest.mark.parametrize("header", ["预算（万元）", "Budget (USD)", "预算(千元)"])
def test_note_with_other_unit_raises(header: str) -> None:
    with pytest.raises(SchemaError, match="names a unit other than yuan"):
        resolve_headers(LEADS, ["线索ID", "创建时间", header])


def test_every_table_has_unambiguous_aliases() -> None:
    for table in TABLES.values():
        lookup = header_lookup(table)
        for column in table.columns:
            assert lookup[normalize_header(column.name)] == column.name


def test_unknown_headers_are_ignored() -> None:
    resolution = resolve_headers(LEADS, ["线索ID", "创建时间", "备注", ""])
    assert resolution.ignored == ["备注", "(unnamed column 4)"]


def test_two_headers_for_one_column_raise() -> None:
    with pytest.raises(SchemaError, match=r"'线索ID' and 'Lead ID' both map to 'lead_id'"):
        resolve_headers(LEADS, ["线索ID", "创建时间", "Lead ID"])


def test_missing_required_column_names_aliases() -> None:
    with pytest.raises(SchemaError) as raised:
        resolve_headers(LEADS, ["线索ID", "渠道"])
    message = str(raised.value)
    assert "created_at" in message
    assert "创建时间" in message
    assert "录入时间" in message
    assert "Headers in the file: '线索ID', '渠道'" in message


def test_renames_win_over_aliases() -> None:
    resolution = resolve_headers(
        LEADS, ["客户编码", "创建时间", "线索ID"], renames={"客户编码": "lead_id", "线索ID": "customer_id"}
    )
    assert resolution.columns == {0: "lead_id", 1: "created_at", 2: "customer_id"}


def test_declared_attribute_matches_by_name() -> None:
    attributes = [CustomAttribute("budget_band", "category")]
    resolution = resolve_headers(LEADS, ["线索ID", "创建时间", "Budget Band"], attributes=attributes)
    assert resolution.columns[2] == "budget_band"


MAPPING_TOML = """
timezone = "Asia/Shanghai"
date_formats = ["%d.%m.%Y %H:%M"]
placeholders = ["待跟进"]

[tables.leads.columns]
"客户编码" = "lead_id"
"预算区间" = "budget_band"

[[tables.leads.attributes]]
name = "budget_band"
type = "category"

[[tables.leads.attributes]]
name = "visit_count"
type = "int"
post_contact = true
source = "拜访次数"

[tables.activities.values.type]
"上门" = "visit"
"""

MAPPING_YAML = """
timezone: Asia/Shanghai
tables:
  activities:
    values:
      direction:
        来电: inbound
"""


def test_toml_mapping_loads(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(MAPPING_TOML, "utf-8")
    mapping = load_mapping(path)
    assert mapping.renames("leads") == {
        "客户编码": "lead_id",
        "预算区间": "budget_band",
        "拜访次数": "visit_count",
    }
    attributes = [declaration.to_attribute() for declaration in mapping.for_table("leads").attributes]
    assert attributes[1] == CustomAttribute("visit_count", "int", post_contact=True)
    assert mapping.for_table("activities").values == {"type": {"上门": "visit"}}
    assert mapping.for_table("orders").columns == {}


def test_yaml_mapping_loads(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MAPPING_YAML, "utf-8")
    assert load_mapping(path).for_table("activities").values == {"direction": {"来电": "inbound"}}


def test_typo_in_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[tables.leads]\ncolums = {"a" = "lead_id"}\n', "utf-8")
    with pytest.raises(
        ConfigError, match=r"tables\.leads\.colums: unknown key 'colums'; did you mean 'columns'"
    ):
        load_mapping(path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"date_formats": ["YYYY-MM-DD"]}, "no % directive"),
        ({"tables": {"deals": {}}}, "unknown table 'deals'"),
        ({"tables": {"leads": {"columns": {"x": "nothing"}}}}, "maps to 'nothing'"),
        (
            {"tables": {"orders": {"attributes": [{"name": "a", "type": "int"}]}}},
            "only leads take custom attributes",
        ),
        (
            {"tables": {"leads": {"attributes": [{"name": "channel", "type": "text"}]}}},
            "already a canonical column",
        ),
        ({"tables": {"leads": {"attributes": [{"name": "Bad Name", "type": "text"}]}}}, "lowercase letters"),
        (
            {"tables": {"leads": {"attributes": [{"name": "a", "type": "money"}]}}},
            "tables.leads.attributes.0.type",
        ),
        ({"tables": {"activities": {"values": {"type": {"电话": "phone"}}}}}, "not one of call"),
        ({"tables": {"activities": {"values": {"lead_id": {"a": "b"}}}}}, "not a category column"),
    ],
)
def test_invalid_mapping_is_explained(payload: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_mapping(payload)


def test_mapping_with_bad_syntax(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text("tables = [", "utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_mapping(path)


def test_mapping_with_other_suffix(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("{}", "utf-8")
    with pytest.raises(ConfigError, match=r"\.toml, \.yaml or \.yml"):
        load_mapping(path)


def test_example_mapping_in_docs_loads() -> None:
    path = Path(__file__).resolve().parents[2] / "docs" / "examples" / "crm-mapping.toml"
    mapping = load_mapping(path)
    assert mapping.for_table("leads").attributes[1].post_contact
    assert mapping.for_table("stage_changes").values == {"stage": {"意向客户": "qualified"}}
