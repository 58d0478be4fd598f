"""Request bodies without a running server: the size limit, repeated JSON keys, reps listed twice."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from leadscore.settings import Settings
from serving.api_models import MAX_LEADS_PER_REQUEST, RosterUpdateRequest, ScoreRequest
from serving.errors_http import MAX_LISTED_PROBLEMS, ErrorHooks, install_error_handlers
from serving.json_body import JsonBodyRoute, RepeatedKeysError, parse_json_body
from serving.roster import RepeatedRep, repeated_reps
from serving.roster_views import RepeatedRepsProblemsError
from tests.serving.test_service_units import TOKEN, _EchoApp, _guard

AUTHORIZED = (b"authorization", f"Bearer {TOKEN}".encode())
# The /score example lead of docs/api.md: a custom attribute, two activities and a stage change.
DOCS_EXAMPLE_LEAD: dict[str, Any] = {
    "lead_id": "L-1001",
    "created_at": "2026-03-01T09:30:00+08:00",
    "channel": "百度推广",
    "region": "华东",
    "industry": "制造",
    "company_size": "21-100",
    "declared_budget": 50000,
    "attributes": {"contact_title": "采购经理"},
    "activities": [
        {"occurred_at": "2026-03-01T10:00:00+08:00", "type": "call", "direction": "outbound"},
        {"occurred_at": "2026-03-02T15:30:00+08:00", "type": "wechat", "direction": "inbound"},
    ],
    "stage_changes": [{"stage": "初步沟通", "changed_at": "2026-03-01T10:05:00+08:00"}],
}


def _repeated_key_error(body: bytes) -> RepeatedKeysError:
    with pytest.raises(RepeatedKeysError) as caught:
        parse_json_body(body)
    return caught.value


# --- body size limit -----------------------------------------------------------------------------


def test_default_limit_fits_full_score_batch() -> None:
    leads = [{**DOCS_EXAMPLE_LEAD, "lead_id": f"L-{number:05d}"} for number in range(MAX_LEADS_PER_REQUEST)]
    # json.dumps escapes Chinese as \uXXXX, which makes the body larger than httpx would send it.
    body = json.dumps({"leads": leads, "as_of": "2026-03-05T09:00:00+08:00"}).encode()

    assert len(body) * 1.5 < Settings().max_request_bytes


class _CountingReceive:
    """An ASGI receive callable that hands out ``chunks`` and counts how many it handed out."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        chunk = self.chunks[self.calls - 1]
        return {"type": "http.request", "body": chunk, "more_body": self.calls < len(self.chunks)}


def _send_through_guard(
    headers: list[tuple[bytes, bytes]], receive: _CountingReceive, *, limit: int, app: _EchoApp
) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/score", "query_string": b"", "headers": headers}
    asyncio.run(_guard(app, limit=limit)(scope, receive, send))
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return sent[0]["status"], json.loads(body)


def test_guard_rejects_by_content_length_before_reading() -> None:
    app = _EchoApp()
    receive = _CountingReceive([b"x" * 2000])

    status, body = _send_through_guard(
        [AUTHORIZED, (b"content-length", b"2000")], receive, limit=1000, app=app
    )

    assert status == 413
    assert receive.calls == 0
    assert app.calls == 0
    assert body["message"] == (
        "the request body has 2000 bytes, more than the limit of 1000 bytes; split the request into "
        "smaller batches, or score a large lead file with 'leadscore rescore'"
    )


def test_guard_stops_reading_chunked_body_at_limit() -> None:
    app = _EchoApp()
    receive = _CountingReceive([b"x" * 400] * 10)

    status, body = _send_through_guard([AUTHORIZED], receive, limit=1000, app=app)

    assert status == 413
    assert receive.calls == 3
    assert app.calls == 0
    assert body["code"] == "payload_too_large"
    assert body["message"] == (
        "the request body is over the limit of 1000 bytes: the service stopped reading it after 1200 "
        "bytes; split the request into smaller batches, or score a large lead file with 'leadscore rescore'"
    )


def test_guard_too_large_message_in_chinese() -> None:
    headers = [AUTHORIZED, (b"accept-language", b"zh-CN")]

    status, body = _send_through_guard(
        headers, _CountingReceive([b"x" * 600] * 2), limit=1000, app=_EchoApp()
    )

    assert status == 413
    assert body["message"] == (
        "请求体超过上限 1000 字节：服务读到 1200 字节时已停止读取；请拆分为更小的批次，"
        "大批线索文件请用 'leadscore rescore' 评分"
    )


def test_guard_reads_body_at_limit() -> None:
    app = _EchoApp()
    receive = _CountingReceive([b"x" * 500, b"y" * 500])

    status, body = _send_through_guard(
        [AUTHORIZED, (b"content-length", b"1000")], receive, limit=1000, app=app
    )

    assert status == 200
    assert body == {"bytes": 1000}


def test_guard_ignores_non_ascii_digits_in_content_length() -> None:
    # "²" is a digit to str.isdigit() but not to int(); the guard counts the bytes instead.
    receive = _CountingReceive([b"x" * 10])

    status, body = _send_through_guard(
        [AUTHORIZED, (b"content-length", "²".encode("latin-1"))], receive, limit=1000, app=_EchoApp()
    )

    assert status == 200
    assert body == {"bytes": 10}


# --- repeated JSON keys --------------------------------------------------------------------------


def test_body_without_repeats_parsed_as_json() -> None:
    body = json.dumps({"leads": [DOCS_EXAMPLE_LEAD], "locale": "zh-CN"}, ensure_ascii=False).encode()

    assert parse_json_body(body) == json.loads(body)


def test_repeated_lead_key_named_with_path() -> None:
    body = b'{"leads": [{"lead_id": "a"}, {"lead_id": "a", "created_at": "x", "lead_id": "b"}]}'

    error = _repeated_key_error(body)

    (problem,) = error.problems_in("en")
    assert problem.field == "leads[1].lead_id"
    assert problem.value == "b"
    assert problem.type == "repeated_key"
    assert problem.message == (
        "leads[1] contains the key 'lead_id' 2 times; send each key of a JSON object once, "
        "because only one of the values would be read"
    )


def test_repeated_key_message_in_chinese() -> None:
    error = _repeated_key_error(b'{"leads": [{"activities": [{"type": "call", "type": "visit"}]}]}')

    (problem,) = error.problems_in("zh-CN")
    assert problem.field == "leads[0].activities[0].type"
    assert problem.message == (
        "leads[0].activities[0] 中的键 'type' 出现了 2 次；"
        "JSON 对象中的每个键只能出现一次，否则只会读取其中一个值"
    )


def test_repeated_top_level_key() -> None:
    error = _repeated_key_error(b'{"as_of": "2026-01-01", "leads": [], "as_of": "2026-02-01", "as_of": null}')

    (problem,) = error.problems_in("en")
    assert problem.field == "as_of"
    assert problem.value == "2026-02-01"
    assert problem.message.startswith("the request body contains the key 'as_of' 3 times;")


def test_repeat_spelled_with_escape_found() -> None:
    error = _repeated_key_error(b'{"leads": [{"lead_id": "a", "lead\\u005fid": "b"}]}')

    assert [problem.field for problem in error.problems_in("en")] == ["leads[0].lead_id"]


def test_every_repeat_listed_outer_first() -> None:
    body = b'{"leads": [{"region": "x", "region": "y", "channel": 1, "channel": 2}], "leads": []}'

    error = _repeated_key_error(body)

    assert [problem.field for problem in error.problems_in("en")] == [
        "leads",
        "leads[0].region",
        "leads[0].channel",
    ]
    assert error.more_problems is False


def test_repeats_listed_up_to_limit() -> None:
    objects = ",".join(['{"lead_id": "a", "lead_id": "b"}'] * (MAX_LISTED_PROBLEMS + 20))

    error = _repeated_key_error(f'{{"leads": [{objects}]}}'.encode())

    assert len(error.problems_in("en")) == MAX_LISTED_PROBLEMS
    assert error.more_problems is True


def test_repeated_key_with_control_character_escaped() -> None:
    error = _repeated_key_error(b'{"leads": [{"a\\nb": 1, "a\\nb": 2}]}')

    (problem,) = error.problems_in("en")
    assert problem.field == "leads[0].a\\nb"
    assert "the key 'a\\nb' 2 times" in problem.message


def test_repeat_under_deep_nesting_found() -> None:
    body = b"[" * 900 + b'{"k": 1, "k": 2}' + b"]" * 900

    error = _repeated_key_error(body)

    (problem,) = error.problems_in("en")
    assert problem.field == "[0]" * 900 + ".k"


def test_syntax_error_after_repeat_still_json_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        parse_json_body(b'{"leads": [{"a": 1, "a": 2}], "as_of": }')


def test_repeat_error_keeps_body_locale() -> None:
    error = _repeated_key_error(b'{"locale": "zh-CN", "leads": [{"a": 1, "a": 2}]}')

    assert error.body is not None
    assert error.body["locale"] == "zh-CN"


def _score_app() -> FastAPI:
    """Return a FastAPI app with the service's route class and error handlers and one endpoint."""
    app = FastAPI()
    app.router.route_class = JsonBodyRoute
    install_error_handlers(
        app, ErrorHooks(default_locale=lambda: "en", on_validation_error=lambda path: None)
    )

    @app.post("/score")
    def score(body: ScoreRequest) -> dict[str, int]:
        return {"leads": len(body.leads)}

    return app


def _post(app: FastAPI, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.post(
                "/score", content=content, headers={"Content-Type": "application/json", **(headers or {})}
            )

    return asyncio.run(call())


def test_route_rejects_repeated_key_with_422() -> None:
    content = b'{"leads": [{"lead_id": "a", "created_at": "2026-01-01T00:00:00Z", "lead_id": "b"}]}'

    response = _post(_score_app(), content)

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_request"
    assert body["field"] == "leads[0].lead_id"
    assert body["errors"][0]["type"] == "repeated_key"


def test_route_repeated_key_in_body_locale() -> None:
    content = b'{"locale": "zh-CN", "leads": [{"lead_id": "a", "lead_id": "b"}]}'

    response = _post(_score_app(), content, headers={"Accept-Language": "en"})

    assert response.status_code == 422
    assert response.json()["message"].startswith("leads[0] 中的键 'lead_id' 出现了 2 次")


def test_route_many_repeats_message_says_more() -> None:
    objects = ",".join(['{"lead_id": "a", "lead_id": "b"}'] * (MAX_LISTED_PROBLEMS + 1))

    response = _post(_score_app(), f'{{"leads": [{objects}]}}'.encode())

    body = response.json()
    assert len(body["errors"]) == MAX_LISTED_PROBLEMS
    assert body["message"].startswith(
        f"more than {MAX_LISTED_PROBLEMS} problems in the request, of which errors lists the first "
        f"{MAX_LISTED_PROBLEMS}; the first: leads[0] contains the key 'lead_id' 2 times"
    )


def test_route_scores_body_without_repeats() -> None:
    content = json.dumps({"leads": [DOCS_EXAMPLE_LEAD]}, ensure_ascii=False).encode()

    response = _post(_score_app(), content)

    assert response.status_code == 200
    assert response.json() == {"leads": 1}


def test_route_invalid_json_still_json_invalid() -> None:
    response = _post(_score_app(), b'{"leads": [}')

    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "json_invalid"


# --- reps listed twice ---------------------------------------------------------------------------


def test_repeated_reps_found_at_second_entry() -> None:
    changes = [{"rep_id": "R-1"}, {"rep_id": "R-2"}, {"rep_id": "R-3"}, {"rep_id": "R-1"}, {"rep_id": "R-1"}]

    assert repeated_reps(changes) == [RepeatedRep(3, 0, "R-1"), RepeatedRep(4, 0, "R-1")]


def test_repeated_rep_problems_in_each_locale() -> None:
    error = RepeatedRepsProblemsError([RepeatedRep(3, 1, "R-07")])

    (english,) = error.problems_in("en")
    (chinese,) = error.problems_in("zh-CN")

    assert english.field == "reps[3].rep_id"
    assert english.value == "R-07"
    assert english.message == (
        "reps[3].rep_id='R-07' repeats the rep_id of reps[1]; list each rep once per request, "
        "with all of its changes in one entry"
    )
    assert chinese.message == (
        "reps[3].rep_id='R-07' 与 reps[1] 的 rep_id 重复；"
        "每位销售在一个请求中只能列出一次，其所有改动请写在同一条中"
    )


def test_reps_compared_after_spaces_stripped() -> None:
    request = RosterUpdateRequest.model_validate({"reps": [{"rep_id": "R-1"}, {"rep_id": " R-1 "}]})

    changes = [rep.sent_fields() for rep in request.reps]

    assert repeated_reps(changes) == [RepeatedRep(1, 0, "R-1")]
