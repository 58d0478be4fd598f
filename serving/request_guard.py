"""ASGI middleware in front of every service route: request id, bearer auth, body size limit, log line.

For each HTTP request it

1. takes the caller's ``X-Request-ID`` when it is a short token, else makes a new one, and
   returns it in the ``X-Request-ID`` response header;
2. rejects a request to a protected path without the right bearer token (401);
3. rejects a ``locale`` query parameter that names no supported locale (422);
4. rejects a body over the size limit (413), by ``Content-Length`` before reading anything
   and, for a chunked body, by counting bytes and stopping at the first chunk past the limit.
   It also rejects a body in UTF-16 or UTF-32 (400), which Python's JSON parser would
   otherwise decode silently;
5. writes one log line with the request id, method, path, status, duration and the lead ids
   that the endpoint recorded in ``request.state.lead_ids``. Bodies, names and phone numbers
   never reach the log;
6. turns an exception that escapes the app into an ordinary JSON 500 response. Starlette sends
   its 500 and then re-raises, and uvicorn closes the keep-alive connection when the exception
   reaches it, so the guard keeps it from the server.

Health, readiness, metrics and the API docs are public, and probes of them are not logged.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from leadscore.errors import PayloadTooLargeError
from leadscore.i18n import DEFAULT_LOCALE, SUPPORTED_LOCALES, Locale, translate
from serving.auth import BearerTokenVerifier
from serving.errors_http import (
    INTERNAL_CODE,
    UNREADABLE_BODY_CODE,
    VALIDATION_CODE,
    Problem,
    choice_problem,
    error_body,
    register_error_messages,
    routing_error_text,
    trailing_slash_text,
    wrong_encoding_message,
)
from serving.metrics import ServiceMetrics
from serving.public_pages import DOCS_PATH, INDEX_PATH, send_index_page, with_service_info
from serving.request_locale import QUERY_LOCALE, invalid_query_locale, locale_from_headers

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
PUBLIC_PATHS = frozenset({"/", "/healthz", "/livez", "/readyz", "/metrics", "/docs.json", "/schema.json"})
PUBLIC_PREFIXES = ("/static_content/", "/assets/")
UNLOGGED_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})
MAX_LOGGED_LEAD_IDS = 20
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
# Encodings that json.detect_encoding (which json.loads uses on bytes) finds, by display name.
_NON_UTF8_ENCODINGS = {
    "utf-16": "UTF-16",
    "utf-16-be": "UTF-16BE",
    "utf-16-le": "UTF-16LE",
    "utf-32": "UTF-32",
    "utf-32-be": "UTF-32BE",
    "utf-32-le": "UTF-32LE",
}


class StreamedBodyTooLargeError(PayloadTooLargeError):
    """A body without ``Content-Length`` that passed the limit; ``received`` counts the bytes read."""

    def __init__(self, received: int, limit: int) -> None:
        super().__init__(f"request body is over {limit} bytes: {received} bytes received")
        self.received = received


@dataclass(frozen=True)
class GuardConfig:
    """Settings the guard enforces. ``verifier`` None means insecure mode: no authentication."""

    verifier: BearerTokenVerifier | None
    max_body_bytes: int
    default_locale: Locale
    metrics: ServiceMetrics | None = None


class RequestGuard:
    """Pure ASGI middleware; ``config_provider`` is called per request, after the service has started."""

    def __init__(self, app: ASGIApp, *, config_provider: Callable[[], GuardConfig]) -> None:
        self.app = app
        self.config_provider = config_provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        headers = _header_map(scope)
        request_id = _request_id(headers.get(REQUEST_ID_HEADER))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        path = str(scope.get("path", ""))
        outcome: dict[str, Any] = {"status": 500, "started": False}

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                outcome["started"] = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("ascii"))]
            await send(message)

        try:
            await self._guarded(scope, receive, send_with_request_id, headers, request_id, path)
        except Exception as error:
            await self._answer_unexpected(error, scope, headers, send_with_request_id, outcome, request_id)
        finally:
            if path not in UNLOGGED_PATHS:
                _log_request(scope, state, outcome["status"], time.perf_counter() - started, request_id)

    async def _answer_unexpected(
        self,
        error: Exception,
        scope: Scope,
        headers: dict[str, str],
        send: Send,
        outcome: dict[str, Any],
        request_id: str,
    ) -> None:
        """Log an exception that escaped the app once, and send a JSON 500 unless a response started.

        The error ends here on purpose. Re-raising it would make the ASGI server close the
        connection, and the client's next request on it would be reset.
        """
        state = scope["state"]
        if not state.get("error_logged"):
            logger.error(
                "request %s failed with an unexpected %s", request_id, type(error).__name__, exc_info=error
            )
        state["error_code"] = INTERNAL_CODE
        if outcome["started"]:
            # The app's own 500 handler (or a response cut short) went out already.
            return

        locale = state.get("locale") or self._locale(scope, headers)
        await _send_error(
            send, 500, INTERNAL_CODE, _message("http.internal", locale, request_id=request_id), request_id
        )

    def _locale(self, scope: Scope, headers: dict[str, str]) -> Locale:
        """Return the locale of the query or Accept-Language, else the service default (en before start)."""
        try:
            default = self.config_provider().default_locale
        except Exception:
            # The config provider needs the started service, but an error page must render before that.
            default = DEFAULT_LOCALE
        return locale_from_headers(scope.get("query_string", b""), headers, default)

    async def _guarded(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        request_id: str,
        path: str,
    ) -> None:
        if _is_public(path):
            await self._public(scope, receive, send, headers, request_id, path)
            return

        config = self.config_provider()
        query_string = scope.get("query_string", b"")
        locale = locale_from_headers(query_string, headers, config.default_locale)
        send = _routing_errors_as_json(send, scope, locale, request_id)

        if config.verifier is not None:
            problem = config.verifier.check(headers.get("authorization"))
            if problem is not None:
                if config.metrics is not None:
                    config.metrics.auth_failures.labels(reason=problem.value).inc()
                scope["state"]["error_code"] = "unauthorized"
                await _send_error(
                    send,
                    401,
                    "unauthorized",
                    _message(f"http.auth_{problem.value}", locale),
                    request_id,
                    extra_headers=[(b"www-authenticate", b'Bearer realm="leadscore"')],
                )
                return

        bad_locale = invalid_query_locale(query_string)
        if bad_locale is not None:
            locale_problem = choice_problem(QUERY_LOCALE, bad_locale, SUPPORTED_LOCALES, locale)
            await self._reject_problem(send, config, request_id, scope, path, locale_problem)
            return

        await self._forward_with_body(scope, receive, send, headers, config, locale, request_id)

    async def _forward_with_body(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        config: GuardConfig,
        locale: Locale,
        request_id: str,
    ) -> None:
        """Pass the request to the app with its body read, unless the body is too large or not UTF-8."""
        limit = config.max_body_bytes
        declared = headers.get("content-length")
        # isdigit() alone accepts digits such as "²" that int() rejects.
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
            await self._reject_too_large(
                send, config, locale, request_id, scope, int(declared), streamed=False
            )
            return
        if scope.get("method") in _BODYLESS_METHODS and declared is None:
            await self.app(scope, receive, send)
            return
        try:
            body, replay = await _buffer_body(receive, limit)
        except StreamedBodyTooLargeError as error:
            await self._reject_too_large(
                send, config, locale, request_id, scope, error.received, streamed=True
            )
            return

        encoding = _non_utf8_encoding(body)
        if encoding is not None:
            scope["state"]["error_code"] = UNREADABLE_BODY_CODE
            message = wrong_encoding_message(encoding, locale)
            await _send_error(send, 400, UNREADABLE_BODY_CODE, message, request_id)
            return
        await self.app(scope, replay, send)

    async def _public(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], request_id: str, path: str
    ) -> None:
        """Serve a public path: the index page here, anything else by the app with JSON routing errors."""
        method = str(scope.get("method", ""))
        if path == INDEX_PATH and method in ("GET", "HEAD"):
            await send_index_page(send, method)
            return

        if path == DOCS_PATH:
            send = with_service_info(send)
        locale = self._locale(scope, headers)
        await self.app(scope, receive, _routing_errors_as_json(send, scope, locale, request_id))

    async def _reject_problem(
        self, send: Send, config: GuardConfig, request_id: str, scope: Scope, path: str, problem: Problem
    ) -> None:
        """Send the 422 of one problem found before the app runs, counted like a body validation error."""
        if config.metrics is not None:
            config.metrics.validation_errors.labels(path=path).inc()
        scope["state"]["error_code"] = VALIDATION_CODE
        await _send_error(send, 422, VALIDATION_CODE, problem.message, request_id, problems=[problem])

    async def _reject_too_large(
        self,
        send: Send,
        config: GuardConfig,
        locale: Locale,
        request_id: str,
        scope: Scope,
        size: int,
        *,
        streamed: bool,
    ) -> None:
        """Send the 413 of a body of ``size`` bytes: as declared, or as read until the limit was passed."""
        if config.metrics is not None:
            config.metrics.payloads_rejected.inc()
        scope["state"]["error_code"] = "payload_too_large"
        key = "http.too_large_streamed" if streamed else "http.too_large"
        message = _message(key, locale, size=size, limit=config.max_body_bytes)
        await _send_error(send, 413, "payload_too_large", message, request_id)


async def _buffer_body(receive: Receive, limit: int) -> tuple[bytes, Receive]:
    """Read the whole body, raising StreamedBodyTooLargeError at the first chunk past ``limit`` bytes.

    Returns the body and a receive callable that replays it to the app.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            # The client disconnected, so the disconnect message is passed on to the app.
            pending: Message | None = message
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise StreamedBodyTooLargeError(size, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            pending = None
            break

    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            if pending is not None:
                return pending
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _non_utf8_encoding(body: bytes) -> str | None:
    """Return the display name of the UTF-16 or UTF-32 encoding the JSON parser would decode ``body`` with.

    A UTF-8 body, with or without a byte order mark, returns None. RFC 8259 lets a parser
    ignore that mark, so it is accepted.
    """
    if not body:
        return None
    return _NON_UTF8_ENCODINGS.get(json.detect_encoding(body))


def _routing_errors_as_json(send: Send, scope: Scope, locale: Locale, request_id: str) -> Send:
    """Wrap ``send`` so the framework's plain-text 404 and 405 responses become JSON error bodies.

    The endpoints' own 404 responses are JSON already and pass through. For an unknown path
    the framework sends a short text body, which the wrapper drops and replaces. BentoML's
    router responds to a path with a trailing slash, such as ``/score/``, with an empty 307
    redirect to ``/score``. That becomes a 404 naming the endpoint, because a client that does
    not follow redirects would see no error at all.
    """
    replaced: dict[str, Any] = {}

    async def send_json_errors(message: Message) -> None:
        if message["type"] == "http.response.start":
            status = int(message["status"])
            response_headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in message.get("headers", [])
            }
            is_json = response_headers.get("content-type", "").startswith("application/json")
            if status in (404, 405) and not is_json:
                replaced.update(status=status, allow=response_headers.get("allow", ""), suggested=None)
                return
            suggested = _slash_redirect_target(scope, status, response_headers.get("location", ""))
            if suggested is not None:
                replaced.update(status=404, allow="", suggested=suggested)
                return
        elif message["type"] == "http.response.body" and replaced:
            if message.get("more_body", False):
                return
            await _send_routing_error(send, scope, locale, request_id, replaced)
            return
        await send(message)

    return send_json_errors


def _slash_redirect_target(scope: Scope, status: int, location: str) -> str | None:
    """Return the path a redirect points to when it only drops the request path's trailing slash."""
    path = str(scope.get("path", ""))
    if status not in (307, 308) or len(path) < 2 or not path.endswith("/"):
        return None
    target = urllib.parse.urlsplit(location).path
    return target if target == path.rstrip("/") else None


async def _send_routing_error(
    send: Send, scope: Scope, locale: Locale, request_id: str, replaced: dict[str, Any]
) -> None:
    method, path = str(scope.get("method", "")), str(scope.get("path", ""))
    status, allow = int(replaced["status"]), str(replaced["allow"])
    code: str | None
    if replaced["suggested"] is not None:
        code, message = "not_found", trailing_slash_text(locale, path, replaced["suggested"])
    else:
        code, message = routing_error_text(status, locale, method, path, allow)
    code = code or f"http_{status}"
    scope.setdefault("state", {})["error_code"] = code
    extra = [(b"allow", allow.encode("latin-1"))] if allow else None
    await _send_error(send, status, code, message, request_id, extra_headers=extra)


def _header_map(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        headers[raw_name.decode("latin-1").lower()] = raw_value.decode("latin-1")
    return headers


def _request_id(offered: str | None) -> str:
    """Return the caller's request id when it is a short safe token, else a new random one."""
    if offered and _REQUEST_ID_PATTERN.match(offered):
        return offered
    return uuid.uuid4().hex


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _message(key: str, locale: Locale, **params: object) -> str:
    register_error_messages()
    return translate(key, locale, **params)


async def _send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    request_id: str,
    *,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    problems: list[Problem] | None = None,
) -> None:
    body = error_body(code, message, request_id=request_id, problems=problems or ())
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(payload)).encode("ascii")),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


def _log_request(
    scope: Scope, state: MutableMapping[str, Any], status: int, seconds: float, request_id: str
) -> None:
    lead_ids = [str(lead_id) for lead_id in state.get("lead_ids", ())]
    logged_ids = lead_ids[:MAX_LOGGED_LEAD_IDS]
    more = f"(+{len(lead_ids) - len(logged_ids)} more)" if len(lead_ids) > len(logged_ids) else ""
    logger.info(
        "request_id=%s method=%s path=%s status=%d duration_ms=%.1f leads=%d lead_ids=%s%s error=%s",
        request_id,
        scope.get("method", "-"),
        scope.get("path", "-"),
        status,
        seconds * 1000.0,
        len(lead_ids),
        ",".join(logged_ids) or "-",
        more,
        state.get("error_code", "-"),
    )
