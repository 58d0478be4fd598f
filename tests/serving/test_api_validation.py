"""Request validation against a real server (SQLite, and PostgreSQL when set up).

Control characters in ids, containers as custom attributes, rep changes that carry only some
fields, reps listed twice, keys repeated in a JSON object, bodies over the size limit, an
unsupported ``locale`` query value, UTF-16 bodies, and hostile inputs that once returned 500.
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from typing import Any

import httpx
import pytest

from tests.serving.service_harness import RunningServer
from tests.serving.test_service_api import (  # noqa: F401 (fixtures)
    MAX_REQUEST_BYTES,
    champion,
    client,
    server,
)

pytestmark = pytest.mark.slow

JAN = "2026-01-01T00:00:00Z"
UTF8_ONLY = "but JSON sent between systems must be UTF-8 (RFC 8259); send a JSON object encoded as UTF-8"


def _lead(lead_id: str, **fields: Any) -> dict[str, Any]:
    return {"lead_id": lead_id, "created_at": JAN, **fields}


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def _reps(client: httpx.Client) -> dict[str, dict[str, Any]]:  # noqa: F811
    response = client.get("/reps")
    assert response.status_code == 200, response.text
    return {rep["rep_id"]: rep for rep in response.json()["reps"]}


# --- control characters in ids -------------------------------------------------------------------


def test_tab_in_lead_id_named(client: httpx.Client) -> None:  # noqa: F811
    body = _error(client.post("/score", json={"leads": [_lead("L\t1")]}), 422)

    assert body["code"] == "invalid_request"
    assert body["field"] == "leads[0].lead_id"
    assert body["value"] == "L\\t1"
    assert body["allowed"].startswith("printable text without control characters")
    assert body["message"] == (
        "leads[0].lead_id='L\\t1' contains the control or invisible character U+0009; "
        "send the id as printable text without control characters, invisible characters or line breaks"
    )


def test_nul_in_activity_id_named_in_chinese(client: httpx.Client) -> None:  # noqa: F811
    activity = {
        "activity_id": "A\x00" + "x" * 200,
        "lead_id": "L-1",
        "occurred_at": JAN,
        "type": "call",
        "direction": "outbound",
    }

    response = client.post(
        "/activities", json={"activities": [activity]}, headers={"Accept-Language": "zh-CN"}
    )

    body = _error(response, 422)
    assert body["field"] == "activities[0].activity_id"
    assert body["value"] == "A\\x00" + "x" * 118 + "…"
    assert body["message"].startswith("activities[0].activity_id='A\\x00xxx")
    assert body["message"].endswith(
        "含有控制字符或不可见字符 U+0000，请发送不含控制字符、不可见字符和换行符的可打印文本"
    )


def test_newline_in_rep_id_rejected_not_stored(client: httpx.Client) -> None:  # noqa: F811
    rep = {"rep_id": "R-NL\n", "name": "周六", "tier": "regular", "capacity": 1}

    body = _error(client.put("/reps", json={"reps": [rep]}, params={"locale": "zh-CN"}), 422)

    assert body["field"] == "reps[0].rep_id"
    assert body["message"].startswith("reps[0].rep_id='R-NL\\n' 含有控制字符或不可见字符 U+000A")
    assert "R-NL" not in _reps(client)


# --- custom attributes ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [[1, 2], {"tier": "gold"}])
def test_container_attribute_named_by_lead(client: httpx.Client, value: Any) -> None:  # noqa: F811
    leads = [_lead(_unique("ATTR")), _lead(_unique("ATTR"), attributes={"segment_hint": value})]

    body = _error(client.post("/score", json={"leads": leads}), 422)

    assert len(body["errors"]) == 1
    assert body["field"] == "leads[1].attributes.segment_hint"
    assert body["allowed"] == "a string, a finite number, true, false or null"
    assert body["message"].startswith("leads[1].attributes.segment_hint has the invalid value '<")


# --- PUT /reps with some fields ------------------------------------------------------------------


def test_rep_change_keeps_fields_not_sent(client: httpx.Client, server: RunningServer) -> None:  # noqa: F811
    rep_id = _unique("PART")
    full = {
        "rep_id": rep_id,
        "name": "吴七",
        "tier": "regular",
        "capacity": 7,
        "regions": ["华东"],
        "skills": ["软件", "制造"],
        "hired_at": "2024-07-01T09:30:00+08:00",
        "active": True,
        "manager_id": "M-1",
    }
    assert client.put("/reps", json={"reps": [full]}).status_code == 200

    response = client.put("/reps", json={"reps": [{"rep_id": rep_id, "active": False}]})

    assert response.status_code == 200, response.text
    expected = {"inserted": [], "updated": [rep_id], "deactivated": [], "assigned_from_queue": []}
    assert response.json() == expected
    stored = _reps(client)[rep_id]
    assert stored["active"] is False
    assert stored["available"] is False
    assert stored["capacity"] == 7
    assert stored["regions"] == ["华东"]
    assert stored["skills"] == ["软件", "制造"]
    assert stored["hired_at"] == "2024-07-01T01:30:00Z"
    assert stored["manager_id"] == "M-1"
    assert f"roster change to stored reps: {rep_id}(active)" in server.log_tail(400)


def test_rep_change_null_clears_regions(client: httpx.Client) -> None:  # noqa: F811
    rep_id = _unique("CLR")
    rep = {"rep_id": rep_id, "name": "郑八", "tier": "newcomer", "capacity": 2, "regions": ["华北"]}
    assert client.put("/reps", json={"reps": [rep]}).status_code == 200

    response = client.put("/reps", json={"reps": [{"rep_id": rep_id, "regions": None, "capacity": 3}]})

    assert response.status_code == 200, response.text
    stored = _reps(client)[rep_id]
    assert stored["regions"] == []
    assert stored["capacity"] == 3
    assert stored["name"] == "郑八"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            {},
            "2 problems in the request; the first: reps[1].name is required because '{rep_id}' is a new "
            "rep; a new rep needs name, tier, capacity",
        ),
        (
            {"Accept-Language": "zh-CN"},
            "请求中有 2 处问题，第一处：缺少必填字段 reps[1].name：'{rep_id}' 是新销售，"
            "新销售须提供 name, tier, capacity",
        ),
    ],
    ids=["en", "zh-CN"],
)
def test_new_rep_missing_fields_named(
    client: httpx.Client,  # noqa: F811
    headers: dict[str, str],
    message: str,
) -> None:
    rep_id = _unique("NEWREP")
    reps = [{"rep_id": "M-1", "capacity": 0}, {"rep_id": rep_id, "capacity": 5}]

    body = _error(client.put("/reps", json={"reps": reps}, headers=headers), 422)

    assert body["code"] == "invalid_request"
    assert [problem["field"] for problem in body["errors"]] == ["reps[1].name", "reps[1].tier"]
    assert body["message"] == message.format(rep_id=rep_id)
    assert rep_id not in _reps(client)


def test_rep_listed_twice_named(client: httpx.Client) -> None:  # noqa: F811
    new_rep = {"rep_id": _unique("TWICE"), "name": "陈十", "tier": "regular", "capacity": 3}
    reps = [
        {"rep_id": "R-REG", "capacity": 50},
        {"rep_id": "R-SEN", "capacity": 50},
        new_rep,
        {"rep_id": "R-SEN", "active": False},
    ]

    body = _error(client.put("/reps", json={"reps": reps}), 422)

    assert body["code"] == "invalid_request"
    assert body["field"] == "reps[3].rep_id"
    assert body["value"] == "R-SEN"
    assert body["message"] == (
        "reps[3].rep_id='R-SEN' repeats the rep_id of reps[1]; list each rep once per request, "
        "with all of its changes in one entry"
    )
    stored = _reps(client)
    assert new_rep["rep_id"] not in stored
    assert stored["R-SEN"]["active"] is True


def test_rep_listed_twice_named_in_chinese(client: httpx.Client) -> None:  # noqa: F811
    reps = [{"rep_id": "R-NEW", "capacity": 50}, {"rep_id": "R-NEW", "capacity": 50}]

    body = _error(client.put("/reps", json={"reps": reps}, params={"locale": "zh-CN"}), 422)

    assert body["field"] == "reps[1].rep_id"
    assert body["message"].startswith("reps[1].rep_id='R-NEW' 与 reps[0] 的 rep_id 重复")


# --- keys repeated inside a JSON object ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "content", "field"),
    [
        (
            "POST",
            "/score",
            b'{"leads": [{"lead_id": "a", "created_at": "2026-01-01", "lead_id": "b"}]}',
            "leads[0].lead_id",
        ),
        (
            "POST",
            "/route",
            b'{"leads": [{"lead_id": "RK-1", "created_at": "2026-01-01"}], "as_of": null, "as_of": null}',
            "as_of",
        ),
        (
            "PUT",
            "/reps",
            b'{"reps": [{"rep_id": "R-REG", "capacity": 1, "capacity": 50}]}',
            "reps[0].capacity",
        ),
        (
            "POST",
            "/activities",
            b'{"stage_changes": [], "activities": [], "stage_changes": []}',
            "stage_changes",
        ),
    ],
    ids=["score", "route", "reps", "activities"],
)
def test_repeated_json_key_rejected(
    client: httpx.Client,  # noqa: F811
    method: str,
    path: str,
    content: bytes,
    field: str,
) -> None:
    response = client.request(method, path, content=content, headers={"Content-Type": "application/json"})

    body = _error(response, 422)
    assert body["code"] == "invalid_request"
    assert body["field"] == field
    assert body["errors"][0]["type"] == "repeated_key"
    key = field.rsplit(".", 1)[-1]
    assert f"contains the key '{key}' 2 times; send each key of a JSON object once" in body["message"]


def test_repeated_json_key_in_chinese_not_routed(client: httpx.Client) -> None:  # noqa: F811
    lead_id = _unique("RKZH")
    content = (
        f'{{"locale": "zh-CN", "leads": [{{"lead_id": "{lead_id}", "created_at": "{JAN}", '
        f'"region": "华东", "region": "华南"}}]}}'
    ).encode()

    response = client.post("/route", content=content, headers={"Content-Type": "application/json"})

    body = _error(response, 422)
    assert body["field"] == "leads[0].region"
    assert body["value"] == "华南"
    assert body["message"] == (
        "leads[0] 中的键 'region' 出现了 2 次；JSON 对象中的每个键只能出现一次，否则只会读取其中一个值"
    )
    routed = client.post("/route", json={"leads": [_lead(lead_id, region="华东")]})
    assert routed.status_code == 200, routed.text
    assert routed.json()["results"][0]["replayed"] is False


# --- bodies over the size limit ------------------------------------------------------------------


def _exchange(server: RunningServer, head: bytes, parts: list[bytes]) -> tuple[int, dict[str, Any]]:  # noqa: F811
    """Send a hand-made request over a socket until the response is complete; return its status and body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as connection:
        connection.sendall(head)
        for part in parts:
            try:
                connection.sendall(part)
            except OSError:
                break
        received = b""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
            header_block, separator, payload = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", header_block)
            if separator and length is not None and len(payload) >= int(length.group(1)):
                break
    header_block, _, payload = received.partition(b"\r\n\r\n")
    return int(header_block.split(b" ", 2)[1]), json.loads(payload)


def test_chunked_body_over_limit_names_sizes(server: RunningServer) -> None:  # noqa: F811
    head = (
        "POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.token}\r\nAccept-Language: zh-CN\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode("latin-1")
    piece = b" " * 1_000_000
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"

    status, body = _exchange(server, head, [chunk] * (MAX_REQUEST_BYTES // len(piece) + 3))

    assert status == 413
    assert body["code"] == "payload_too_large"
    found = re.fullmatch(
        rf"请求体超过上限 {MAX_REQUEST_BYTES} 字节：服务读到 (\d+) 字节时已停止读取；请拆分为更小的批次，"
        r"大批线索文件请用 'leadscore rescore' 评分",
        body["message"],
    )
    assert found is not None, body["message"]
    assert MAX_REQUEST_BYTES < int(found.group(1)) <= MAX_REQUEST_BYTES + len(piece)


# --- locale query parameter ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "payload", "value"),
    [
        ("GET", "/reps?locale=fr", None, "fr"),
        ("POST", "/score?locale=fr", {"leads": [_lead("LOC-1")]}, "fr"),
        ("GET", "/sla/overdue?locale=", None, ""),
    ],
    ids=["reps", "score", "blank"],
)
def test_bad_query_locale_rejected(
    client: httpx.Client,  # noqa: F811
    method: str,
    path: str,
    payload: dict[str, Any] | None,
    value: str,
) -> None:
    body = _error(client.request(method, path, json=payload), 422)

    assert body["code"] == "invalid_request"
    assert body["field"] == "locale"
    assert body["value"] == value
    assert body["allowed"] == ["en", "zh-CN"]
    assert body["message"] == f"locale has the invalid value '{value}'; expected one of en, zh-CN"


def test_bad_query_locale_message_in_chinese(client: httpx.Client) -> None:  # noqa: F811
    response = client.get("/reps", params={"locale": "ja"}, headers={"Accept-Language": "zh-CN"})

    assert _error(response, 422)["message"] == "locale 的值 'ja' 无效，可选值：en, zh-CN"


# --- body encoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "shown"), [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16LE"), ("utf-32", "UTF-32")]
)
def test_utf16_body_rejected(client: httpx.Client, encoding: str, shown: str) -> None:  # noqa: F811
    content = json.dumps({"leads": [_lead(_unique("U16"))]}).encode(encoding)

    response = client.post("/score", content=content, headers={"Content-Type": "application/json"})

    body = _error(response, 400)
    assert body["code"] == "unreadable_body"
    assert body["message"] == f"the request body is encoded as {shown}, {UTF8_ONLY}"


def test_utf8_body_with_byte_order_mark_scored(client: httpx.Client) -> None:  # noqa: F811
    lead_id = _unique("BOM")
    content = json.dumps({"leads": [_lead(lead_id)]}).encode("utf-8-sig")

    response = client.post("/score", content=content, headers={"Content-Type": "application/json"})

    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["lead_id"] == lead_id


# --- hostile inputs that once returned 500 -------------------------------------------------------


@pytest.mark.parametrize(
    ("rep", "field", "message"),
    [
        (
            {"rep_id": "R" * 65, "name": "冯九", "tier": "senior", "capacity": 1},
            "reps[0].rep_id",
            "reps[0].rep_id has 65 characters, more than the maximum of 64; send at most 64",
        ),
        (
            {"rep_id": "R-BIG", "name": "冯九", "tier": "senior", "capacity": 2**63},
            "reps[0].capacity",
            "reps[0].capacity=9223372036854775808 is out of range; expected a value <= 2147483647",
        ),
    ],
    ids=["rep-id-over-column", "capacity-over-int32"],
)
def test_rep_values_beyond_columns_rejected(
    client: httpx.Client,  # noqa: F811
    rep: dict[str, Any],
    field: str,
    message: str,
) -> None:
    body = _error(client.put("/reps", json={"reps": [rep]}), 422)

    assert body["field"] == field
    assert body["message"] == message


def test_many_mistakes_listed_up_to_100(client: httpx.Client) -> None:  # noqa: F811
    unknown = {f"k{number}": number for number in range(20_000)}
    content = json.dumps({"leads": [_lead("MANY", **unknown)]}).encode()

    response = client.post("/score", content=content, headers={"Content-Type": "application/json"})

    body = _error(response, 422)
    assert len(body["errors"]) == 100
    assert body["message"].startswith("20000 problems in the request, of which errors lists the first 100")
    assert len(response.content) < len(content)
