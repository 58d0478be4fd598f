"""The data folder: corrupt tables and attribute declarations fail with the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.folder import read_attributes, read_data_dir
from data.stages import parse_stage
from leadscore.errors import InputFileError


def test_corrupt_parquet_names_file(tmp_path: Path) -> None:
    (tmp_path / "leads.parquet").write_bytes(b"garbage")
    with pytest.raises(InputFileError, match=r"leads\.parquet is not a readable Parquet file"):
        read_data_dir(tmp_path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"x": 1}, r"must hold a JSON list"),
        (["x"], r"expected an object with name and type"),
        ([{"name": "x", "type": "integer"}], r"attribute 'x' has type 'integer'; expected one of"),
        (
            [{"name": "x", "type": "float", "post_contact": "no"}],
            r"'post_contact' of 'x' must be true or false",
        ),
        ([{"name": "x", "type": "float", "kind": "a"}], r"unknown key\(s\) \['kind'\]"),
        ([{"name": "", "type": "float"}], r"'name' must be a non-empty string"),
    ],
)
def test_attribute_file_rejects_bad_declarations(tmp_path: Path, payload: object, message: str) -> None:
    (tmp_path / "leads.attributes.json").write_text(json.dumps(payload), "utf-8")
    with pytest.raises(InputFileError, match=message):
        read_attributes(tmp_path)


def test_attribute_file_round_trip(tmp_path: Path) -> None:
    payload = [{"name": "Tags", "type": "category", "post_contact": True, "description": "after contact"}]
    (tmp_path / "leads.attributes.json").write_text(json.dumps(payload), "utf-8")
    (attribute,) = read_attributes(tmp_path)
    assert attribute.name == "Tags"
    assert attribute.post_contact is True


def test_won_synonym_accepted() -> None:
    assert parse_stage("赢单") == "won"
    assert parse_stage("签约执行") == "won"
