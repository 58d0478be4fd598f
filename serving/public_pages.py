"""The service's own index page and API description header, in place of BentoML's defaults.

BentoML 1.4.40 serves at ``/`` a Swagger page titled "BentoML Prediction Service" that loads a
Google Tag Manager script from googletagmanager.com. Its ``/docs.json`` has ``info.version:
"None"`` unless the service runs from a built bento, and a BentoML README with links to
BentoML's sites as ``info.description``. BentoML has no setting for either, so the request
guard serves ``/`` itself and rewrites ``info`` in ``/docs.json``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from leadscore import __version__

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

INDEX_PATH = "/"
DOCS_PATH = "/docs.json"
API_DESCRIPTION = (
    "Score sales leads (conversion probability, lifetime value, reasons) and route them to reps. "
    "Send 'Authorization: Bearer <token>' with every request."
)


def index_page() -> bytes:
    """Return a small self-contained HTML page: no scripts, no styles or fonts from other hosts."""
    version = html.escape(__version__)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>leadscore API {version}</title></head>
<body>
<h1>leadscore API {version}</h1>
<p>Scores sales leads and routes them to reps. / 线索评分与分配服务。</p>
<p>The OpenAPI description of every endpoint and field is at <a href="docs.json">/docs.json</a>.
Every endpoint except health, metrics and these pages needs the header
<code>Authorization: Bearer &lt;token&gt;</code>.</p>
<p>Health: <code>GET /healthz</code>, <code>GET /readyz</code>. Metrics: <code>GET /metrics</code>.</p>
</body>
</html>
"""
    return page.encode("utf-8")


async def send_index_page(send: Send, method: str) -> None:
    """Send the index page as a 200 response (headers only for HEAD)."""
    body = index_page()
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body, "more_body": False})


def with_service_info(send: Send) -> Send:
    """Wrap ``send`` so a 200 JSON API description carries leadscore's version and description."""
    pending: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def send_versioned(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 200:
            pending["start"] = message
            return
        if message["type"] != "http.response.body" or "start" not in pending:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = _set_service_info(b"".join(chunks))
        start = pending["start"]
        start["headers"] = [
            (name, value) for name, value in start.get("headers", []) if name.lower() != b"content-length"
        ]
        start["headers"].append((b"content-length", str(len(body)).encode("ascii")))
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return send_versioned


def _set_service_info(body: bytes) -> bytes:
    """Return the API description with leadscore's ``info``. A body that is not JSON passes unchanged."""
    try:
        spec = json.loads(body)
    except ValueError:
        return body
    info = spec.get("info") if isinstance(spec, dict) else None
    if not isinstance(info, dict):
        return body
    info["version"] = __version__
    info["description"] = API_DESCRIPTION
    info.pop("contact", None)
    return json.dumps(spec, ensure_ascii=False).encode("utf-8")
