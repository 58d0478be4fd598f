"""The demo starts its service again on another port when the first one was taken."""

from __future__ import annotations

from typing import Any

import pytest

from leadscore import demo
from leadscore.errors import LeadscoreError


def _starter(failures: list[str]) -> Any:
    """Return a start_service stand-in that fails with each of ``failures`` in turn, then succeeds."""
    ports: list[int] = []

    def start(paths: Any, port: int, echo: Any) -> str:
        ports.append(port)
        if len(ports) <= len(failures):
            raise LeadscoreError(failures[len(ports) - 1])
        return "server"

    start.ports = ports  # type: ignore[attr-defined]
    return start


def test_taken_port_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    start = _starter(["the service exited with status 1:\nZMQError: Address already in use"])
    monkeypatch.setattr(demo, "start_service", start)

    server, port = demo.start_service_on_free_port(None, lambda line: None)  # type: ignore[arg-type]

    assert server == "server"
    assert len(start.ports) == 2
    assert port == start.ports[-1]


def test_other_failure_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    start = _starter(["the service exited with status 1:\nmodel not found"])
    monkeypatch.setattr(demo, "start_service", start)

    with pytest.raises(LeadscoreError, match="model not found"):
        demo.start_service_on_free_port(None, lambda line: None)  # type: ignore[arg-type]
    assert len(start.ports) == 1


def test_gives_up_after_three_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    start = _starter(["Address already in use"] * 3)
    monkeypatch.setattr(demo, "start_service", start)

    with pytest.raises(LeadscoreError, match="Address already in use"):
        demo.start_service_on_free_port(None, lambda line: None)  # type: ignore[arg-type]
    assert len(start.ports) == 3
