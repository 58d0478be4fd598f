"""A lean keep-alive HTTP/1.1 client for load tests on loopback.

The servers under test share the machine's CPUs with the load generator. httpx spends
about 1.0 ms of CPU per request (measured on a 2-CPU VM), about half of what a bare
BentoML endpoint spends. That CPU time is taken from the servers and lowers every
server's throughput. This client writes a prepared
request with one ``sendall`` and reads the response with plain socket calls: status line,
headers up to the blank line, then ``Content-Length`` bytes of body. It speaks only what the
benchmark needs: JSON POST bodies, responses with ``Content-Length`` (no chunked encoding),
and one connection that stays open. Anything else raises ``ProtocolError``.
"""

from __future__ import annotations

import json as jsonlib
import socket
from typing import Any
from urllib.parse import urlsplit

HEADER_END = b"\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024


class ProtocolError(RuntimeError):
    """The server answered in a way this client does not handle (for example chunked encoding)."""


class Response:
    """Status code and body of one response."""

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.content = body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class LoopbackClient:
    """One keep-alive connection to ``base_url`` (http only), reopened after the server closes it."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"expected http://HOST:PORT, got {base_url!r}")
        self.address = (parts.hostname, parts.port)
        self.timeout = timeout
        fixed = {"Host": f"{parts.hostname}:{parts.port}", "Connection": "keep-alive", **(headers or {})}
        self._fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._socket: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> LoopbackClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._buffer = b""

    def post(self, path: str, json: Any) -> Response:
        """POST ``json`` (a JSON-ready value) to ``path`` and return the response, as httpx does."""
        body = jsonlib.dumps(json, ensure_ascii=False).encode("utf-8")
        head = (
            f"POST {path} HTTP/1.1\r\n{self._fixed_headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return self._exchange(head.encode("latin-1") + body)

    def _exchange(self, request: bytes) -> Response:
        connection = self._connection()
        connection.sendall(request)
        status, headers = self._read_head()
        response = Response(status, self._read_exactly(_content_length(headers)))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return response

    def _connection(self) -> socket.socket:
        if self._socket is None:
            self._socket = socket.create_connection(self.address, timeout=self.timeout)
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._socket

    def _read_head(self) -> tuple[int, dict[str, str]]:
        while HEADER_END not in self._buffer:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise ProtocolError("response headers are over 64 KiB")
            self._receive()
        head, self._buffer = self._buffer.split(HEADER_END, 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"unexpected status line {status_line[:80]!r}")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._receive()
        body, self._buffer = self._buffer[:size], self._buffer[size:]
        return body

    def _receive(self) -> None:
        if self._socket is None:
            raise ProtocolError("the connection is closed")
        chunk = self._socket.recv(65536)
        if not chunk:
            self.close()
            raise ProtocolError("the server closed the connection in the middle of a response")
        self._buffer += chunk


def _content_length(headers: dict[str, str]) -> int:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise ProtocolError("chunked responses are not supported by this client")
    value = headers.get("content-length")
    if value is None or not value.isdigit():
        raise ProtocolError(f"response without a usable Content-Length: {value!r}")
    return int(value)
