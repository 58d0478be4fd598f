"""Payload values that score_payload rejects with the same DataValidationError on both paths.

Each case once escaped as a pandas or Python error (HTTP 500 in the service), or the row path
scored a value that the table path cannot store.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from data.folder import CustomAttribute
from leadscore.errors import DataValidationError
from tests.training import scorer_setup
from training.bundle import ScorerBundle
from training.scorer import score_payload

CASES: dict[str, tuple[dict[str, Any], str]] = {
    # A whole float outside the int64 range passes the row path's int check.
    "int attribute 1e20": ({"employees": 1e20}, scorer_setup.AS_OF),
    "int attribute -1e20": ({"employees": -1e20}, scorer_setup.AS_OF),
    # Asia/Shanghai observed daylight saving time from 1986 to 1991.
    "created_at in a DST gap": (
        {"created_at": "1988-04-17T02:30:00", "activities": []},
        "1988-05-01T00:00:00+08:00",
    ),
    "created_at in a repeated hour": (
        {"created_at": "1988-09-11T01:30:00", "activities": []},
        "1988-10-01T00:00:00+08:00",
    ),
    # pandas nanosecond timestamps end in April 2262.
    "as_of after 2262": ({}, "2300-01-01T00:00:00Z"),
    "created_at after 2262": ({"created_at": "2300-01-01T00:00:00Z"}, scorer_setup.AS_OF),
    # Numbers and words are not guessed as seconds, nanoseconds or the machine's clock.
    "as_of as a number": ({}, 1741136400),  # type: ignore[dict-item]
    "as_of as a word": ({}, "now"),
}


def _bundle() -> ScorerBundle:
    return dataclasses.replace(scorer_setup.bundle(), attributes=(CustomAttribute("employees", "int"),))


@pytest.mark.parametrize("case", list(CASES))
def test_payload_error_same_on_both_paths(case: str) -> None:
    fields, as_of = CASES[case]
    record = scorer_setup.open_lead("FOUND-1", **fields)

    with pytest.raises(DataValidationError) as table_error:
        score_payload(_bundle(), [record], as_of=as_of, row_path=False)
    with pytest.raises(DataValidationError) as row_error:
        score_payload(_bundle(), [record], as_of=as_of, row_path=True)

    assert str(row_error.value) == str(table_error.value)
