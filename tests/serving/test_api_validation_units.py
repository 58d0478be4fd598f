"""Request validation that needs no running server: ids, custom attributes, rep changes, locale, encoding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from serving.api_models import (
    MAX_REP_CAPACITY,
    MAX_REP_ID_CHARS,
    RepIn,
    ReportedActivity,
    RosterUpdateRequest,
    ScoreRequest,
)
from serving.errors_http import (
    MAX_LISTED_PROBLEMS,
    escape_control_characters,
    format_location,
    validation_error_body,
)
from serving.request_locale import invalid_query_locale
from serving.roster import MissingRepFields
from serving.roster_views import NewRepFieldsProblemsError
from tests.serving.test_service_units import TOKEN, _call_guard, _EchoApp, _guard

CONTROL_ALLOWED = (
    "printable text without control characters (U+0000 to U+001F, U+007F to U+009F), "
    "line separators (U+2028, U+2029) or invisible format characters (U+200B to U+200F, "
    "U+202A to U+202E, U+2060 to U+2064, U+2066 to U+206F, U+FEFF)"
)
AUTHORIZED = ("Authorization", f"Bearer {TOKEN}")


def _body(model: type[BaseModel], payload: Any, locale: Any = "en") -> dict[str, Any]:
    """Return the 422 body that ``payload`` gets from ``model``'s validation."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(payload)
    errors = [dict(error) for error in caught.value.errors()]
    return validation_error_body(errors, locale=locale, request_id="req-1", body_model=model)


def _lead(**fields: Any) -> dict[str, Any]:
    return {"lead_id": "L1", "created_at": "2026-03-01T09:30:00+08:00", **fields}


def _activity(**fields: Any) -> dict[str, Any]:
    return {
        "activity_id": "A1",
        "lead_id": "L1",
        "occurred_at": "2026-03-01T10:00:00+08:00",
        "type": "call",
        "direction": "outbound",
        **fields,
    }


# --- control characters in ids -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "payload", "field", "shown", "character"),
    [
        (ScoreRequest, {"leads": [_lead(lead_id="L\t1")]}, "leads[0].lead_id", "L\\t1", "U+0009"),
        (ScoreRequest, {"leads": [_lead(lead_id="L-1\n")]}, "leads[0].lead_id", "L-1\\n", "U+000A"),
        (ReportedActivity, _activity(activity_id="A\x001"), "activity_id", "A\\x001", "U+0000"),
        (RepIn, {"rep_id": "R\u20281"}, "rep_id", "R\\u20281", "U+2028"),
        (RepIn, {"rep_id": "R-1", "manager_id": "M\x851"}, "manager_id", "M\\x851", "U+0085"),
        (ScoreRequest, {"leads": [_lead(lead_id="L\u200b1")]}, "leads[0].lead_id", "L\\u200b1", "U+200B"),
        (RepIn, {"rep_id": "R\u202e1"}, "rep_id", "R\\u202e1", "U+202E"),
        (ScoreRequest, {"leads": [_lead(lead_id="\ufeffL1")]}, "leads[0].lead_id", "\\ufeffL1", "U+FEFF"),
    ],
    ids=["tab", "trailing-newline", "nul", "line-separator", "next-line", "zero-width", "bidi", "bom"],
)
def test_control_character_in_id_named(
    model: type[BaseModel], payload: dict[str, Any], field: str, shown: str, character: str
) -> None:
    body = _body(model, payload)

    assert len(body["errors"]) == 1
    assert body["field"] == field
    assert body["value"] == shown
    assert body["allowed"] == CONTROL_ALLOWED
    assert body["errors"][0]["type"] == "control_character"
    assert body["message"] == (
        f"{field}='{shown}' contains the control or invisible character {character}; "
        "send the id as printable text without control characters, invisible characters or line breaks"
    )


def test_control_character_message_in_chinese() -> None:
    body = _body(ScoreRequest, {"leads": [_lead(lead_id="a\nforged")]}, locale="zh-CN")

    assert body["message"] == (
        "leads[0].lead_id='a\\nforged' 含有控制字符或不可见字符 U+000A，"
        "请发送不含控制字符、不可见字符和换行符的可打印文本"
    )


def test_control_character_value_cut() -> None:
    body = _body(ScoreRequest, {"leads": [_lead(lead_id="\t" + "x" * 300)]})

    assert body["value"] == "\\t" + "x" * 119 + "…"
    assert "x" * 120 not in body["message"]


def test_id_spaces_still_stripped() -> None:
    request = ScoreRequest.model_validate({"leads": [_lead(lead_id="  L-7  ")]})

    assert request.leads[0].lead_id == "L-7"


def test_location_names_escaped() -> None:
    assert format_location(("body", "leads", 0, "a\nb")) == "leads[0].a\\nb"
    assert (
        format_location(("body", "leads", 0, "attributes", "x\x00", "[key]")) == "leads[0].attributes.x\\x00"
    )
    assert escape_control_characters("a\rb\x7fc\u2029") == "a\\rb\\x7fc\\u2029"
    assert escape_control_characters("线索-1") == "线索-1"


# --- custom attribute values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [([1, 2], "<array of 2 items>"), ({"a": 1}, "<object with 1 keys>"), ([[[]]], "<array of 1 items>")],
    ids=["list", "object", "nested"],
)
def test_container_attribute_named_by_lead_and_name(value: Any, shown: str) -> None:
    body = _body(ScoreRequest, {"leads": [_lead(), _lead(lead_id="L2", attributes={"行业细分": value})]})

    assert len(body["errors"]) == 1
    assert body["field"] == "leads[1].attributes.行业细分"
    assert body["value"] == shown
    assert body["allowed"] == "a string, a finite number, true, false or null"
    assert body["message"] == (
        f"leads[1].attributes.行业细分 has the invalid value '{shown}'; "
        "expected a string, a finite number, true, false or null"
    )


def test_container_attribute_message_in_chinese() -> None:
    body = _body(ScoreRequest, {"leads": [_lead(attributes={"x": [1]})]}, locale="zh-CN")

    assert body["message"] == (
        "leads[0].attributes.x 的值 '<array of 1 items>' 无效，应为字符串、有限数值、true、false 或 null"
    )


@pytest.mark.parametrize(
    ("value", "error_type"),
    [("x" * 2001, "string_too_long"), (float("nan"), "finite_number"), ("\ud800", "string_unicode")],
    ids=["long-text", "nan", "lone-surrogate"],
)
def test_bad_scalar_attribute_has_one_problem(value: Any, error_type: str) -> None:
    body = _body(ScoreRequest, {"leads": [_lead(attributes={"x": value})]})

    assert [problem["field"] for problem in body["errors"]] == ["leads[0].attributes.x"]
    assert body["errors"][0]["type"] == error_type


def test_scalar_attributes_kept_as_sent() -> None:
    attributes = {"flag": True, "count": 3, "share": 0.25, "note": "老客户转介绍", "empty": None}

    request = ScoreRequest.model_validate({"leads": [_lead(attributes=attributes)]})

    kept = request.leads[0].attributes
    assert kept == attributes
    assert type(kept["flag"]) is bool
    assert type(kept["count"]) is int


def test_attribute_name_with_control_character() -> None:
    body = _body(ScoreRequest, {"leads": [_lead(attributes={"x\ty": 1})]})

    assert body["field"] == "leads[0].attributes.x\\ty"
    assert body["value"] == "x\\ty"


# --- rep changes ---------------------------------------------------------------------------------


def test_rep_sends_only_given_fields() -> None:
    rep = RepIn.model_validate({"rep_id": " R-1 ", "active": False, "regions": None})

    assert rep.sent_fields() == {"rep_id": "R-1", "active": False, "regions": None}


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("name", "reps[0].name must not be null; send a string"),
        ("tier", "reps[0].tier has the invalid value null; expected one of senior, regular, newcomer"),
        ("capacity", "reps[0].capacity must not be null; send an integer"),
        ("active", "reps[0].active must not be null; send true or false"),
    ],
)
def test_rep_null_rejected_where_absent_keeps(field: str, message: str) -> None:
    body = _body(RosterUpdateRequest, {"reps": [{"rep_id": "R-1", field: None}]})

    assert body["field"] == f"reps[0].{field}"
    assert body["message"] == message


def test_rep_limits_follow_store_columns() -> None:
    long_id = _body(RosterUpdateRequest, {"reps": [{"rep_id": "R" * (MAX_REP_ID_CHARS + 1)}]})
    big_capacity = _body(RosterUpdateRequest, {"reps": [{"rep_id": "R-1", "capacity": 2**63}]})
    activity = _body(ReportedActivity, _activity(rep_id="R" * (MAX_REP_ID_CHARS + 1)))

    assert (
        long_id["message"] == "reps[0].rep_id has 65 characters, more than the maximum of 64; send at most 64"
    )
    assert big_capacity["field"] == "reps[0].capacity"
    assert big_capacity["allowed"] == f"<= {MAX_REP_CAPACITY}"
    assert activity["field"] == "rep_id"


def test_rep_schema_hides_null_of_kept_fields() -> None:
    properties = RepIn.model_json_schema()["properties"]

    assert properties["capacity"]["type"] == "integer"
    assert "default" not in properties["capacity"]
    assert "Left out: a stored rep keeps its value." in properties["capacity"]["description"]
    assert {"type": "null"} in properties["regions"]["anyOf"]


def test_new_rep_problems_in_each_locale() -> None:
    error = NewRepFieldsProblemsError([MissingRepFields(2, "R-9", ("name", "capacity"))])

    english = error.problems_in("en")
    chinese = error.problems_in("zh-CN")

    assert [problem.field for problem in english] == ["reps[2].name", "reps[2].capacity"]
    assert english[0].message == (
        "reps[2].name is required because 'R-9' is a new rep; a new rep needs name, tier, capacity"
    )
    assert (
        chinese[1].message
        == "缺少必填字段 reps[2].capacity：'R-9' 是新销售，新销售须提供 name, tier, capacity"
    )


# --- size of error bodies ------------------------------------------------------------------------


def test_error_body_lists_at_most_100_problems() -> None:
    unknown = {f"k{number}": number for number in range(250)}

    body = _body(ScoreRequest, {"leads": [_lead(**unknown)]})

    assert len(body["errors"]) == MAX_LISTED_PROBLEMS
    assert body["message"].startswith(
        f"250 problems in the request, of which errors lists the first {MAX_LISTED_PROBLEMS}; the first: "
    )


# --- locale query parameter ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "invalid"),
    [
        (b"locale=fr", "fr"),
        (b"locale=", ""),
        (b"locale=en&locale=xx", "xx"),
        (b"locale=%E4%B8%AD", "中"),
        (b"locale=zh-CN", None),
        (b"locale=zh", None),
        (b"other=1", None),
    ],
)
def test_invalid_query_locale_found(query: bytes, invalid: str | None) -> None:
    assert invalid_query_locale(query) == invalid


def test_guard_rejects_bad_query_locale() -> None:
    app = _EchoApp()

    status, _, body = _call_guard(_guard(app), headers=[AUTHORIZED], query=b"locale=fr")

    assert status == 422
    assert app.calls == 0
    assert body["code"] == "invalid_request"
    assert body["field"] == "locale"
    assert body["value"] == "fr"
    assert body["allowed"] == ["en", "zh-CN"]
    assert body["message"] == "locale has the invalid value 'fr'; expected one of en, zh-CN"


def test_guard_query_locale_error_in_chinese() -> None:
    headers = [AUTHORIZED, ("Accept-Language", "zh-CN")]

    status, _, body = _call_guard(_guard(_EchoApp()), method="GET", headers=headers, query=b"locale=de")

    assert status == 422
    assert body["message"] == "locale 的值 'de' 无效，可选值：en, zh-CN"


def test_guard_checks_token_before_locale() -> None:
    status, _, body = _call_guard(_guard(_EchoApp()), query=b"locale=fr")

    assert status == 401
    assert body["code"] == "unauthorized"


# --- body encoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "shown"),
    [
        ("utf-16", "UTF-16"),
        ("utf-16-le", "UTF-16LE"),
        ("utf-16-be", "UTF-16BE"),
        ("utf-32", "UTF-32"),
        ("utf-32-le", "UTF-32LE"),
    ],
)
def test_guard_rejects_utf16_and_utf32(encoding: str, shown: str) -> None:
    app = _EchoApp()
    content = json.dumps({"leads": [_lead()]}).encode(encoding)

    status, _, body = _call_guard(_guard(app), headers=[AUTHORIZED], chunks=[content])

    assert status == 400
    assert app.calls == 0
    assert body["code"] == "unreadable_body"
    assert body["message"] == (
        f"the request body is encoded as {shown}, but JSON sent between systems must be UTF-8 "
        "(RFC 8259); send a JSON object encoded as UTF-8"
    )


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_guard_passes_utf8_with_or_without_bom(encoding: str) -> None:
    content = json.dumps({"leads": [_lead(channel="抖音")]}, ensure_ascii=False).encode(encoding)

    status, _, body = _call_guard(_guard(_EchoApp()), headers=[AUTHORIZED], chunks=[content])

    assert status == 200
    assert body == {"bytes": len(content)}


# --- custom attributes of the wrong type ------------------------------------------------------


class _LeadWithAttributes(BaseModel):
    lead_id: str
    attributes: dict[str, Any]


@pytest.mark.parametrize(
    ("kind", "value", "english", "chinese"),
    [
        ("category", 3, "so send a string", "请发送字符串"),
        ("float", "3.5", "so send a number", "请发送数字"),
        ("int", 2.5, "so send a whole number", "请发送整数"),
        ("bool", "yes", "so send true or false", "请发送true 或 false"),
        ("timestamp", 20250301, "so send an ISO 8601 timestamp string", "请发送ISO 8601 时间字符串"),
    ],
)
def test_attribute_type_says_what_to_send(kind: str, value: Any, english: str, chinese: str) -> None:
    from data.folder import CustomAttribute
    from serving.payloads import lead_problems

    leads = [_LeadWithAttributes(lead_id="L1", attributes={"rating": value})]
    declared = [CustomAttribute("rating", kind)]

    (problem_en,) = lead_problems(leads, declared, "en")
    (problem_zh,) = lead_problems(leads, declared, "zh-CN")

    assert problem_en.field == "leads[0].attributes.rating"
    assert f"the model declares it as {kind}, {english}" in problem_en.message
    assert chinese in problem_zh.message
