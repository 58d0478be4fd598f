"""Local times that a daylight-saving change skips or repeats are rejected by every endpoint.

POST /activities and GET /sla/overdue once read such a time in one of its two possible offsets
without a word. Asia/Shanghai skipped 02:00-03:00 on 1988-04-17 and repeated 01:00-02:00 on
1988-09-11.
"""

from __future__ import annotations

import httpx
import pytest

from tests.serving.test_service_api import champion, client, server  # noqa: F401 (fixtures)

LOCAL_TIMES = ["1988-04-17T02:30:00", "1988-09-11T01:30:00"]


@pytest.mark.parametrize("local_time", LOCAL_TIMES)
def test_activities_reject_dst_local_time(client: httpx.Client, local_time: str) -> None:  # noqa: F811
    body = {"stage_changes": [{"lead_id": "FOUND-DST-1", "stage": "初步沟通", "changed_at": local_time}]}

    response = client.post("/activities", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_data"
    assert "stage_changes[0].changed_at" in response.json()["message"]


@pytest.mark.parametrize("local_time", LOCAL_TIMES)
def test_sla_overdue_rejects_dst_as_of(client: httpx.Client, local_time: str) -> None:  # noqa: F811
    response = client.get("/sla/overdue", params={"as_of": local_time})

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_data"
