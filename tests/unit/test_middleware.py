"""theo/http/middleware.py, driven as raw ASGI so the body can arrive in many chunks."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from starlette.types import Message, Receive, Scope, Send

from theo.http.middleware import (
    FORM_OVERHEAD_BYTES,
    RequestContextMiddleware,
    UploadLimitMiddleware,
)

MAX_BYTES = 10_000
LIMIT = MAX_BYTES + FORM_OVERHEAD_BYTES


@dataclass
class Exchange:
    """What an ASGI app sent back for one request."""

    messages: list[Message] = field(default_factory=list)

    @property
    def status(self) -> int:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        return int(starts[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        return {k.decode(): v.decode() for k, v in start["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )


class BodyReader:
    """A downstream app that reads the whole body, then answers 200 with how much it saw."""

    def __init__(self) -> None:
        self.called = False
        self.seen = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        while True:
            message = await receive()
            self.seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = json.dumps({"seen": self.seen}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def run(
    app: Any,
    *,
    path: str = "/v1/audio/transcriptions",
    chunks: list[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> Exchange:
    """Send one HTTP request through ``app``, its body as ``chunks``; return what came back."""
    pending = list(chunks or [b""])

    async def receive() -> Message:
        if not pending:
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    exchange = Exchange()

    async def send(message: Message) -> None:
        exchange.messages.append(message)

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    anyio.run(app, scope, receive, send)
    return exchange


def limited(inner: Any) -> UploadLimitMiddleware:
    return UploadLimitMiddleware(inner, max_bytes=MAX_BYTES)


# --- UploadLimitMiddleware --------------------------------------------------------------------


def test_body_under_the_limit_passes_untouched() -> None:
    inner = BodyReader()
    chunks = [b"x" * 8192] * 4
    exchange = run(limited(inner), chunks=chunks)
    assert exchange.status == 200
    assert json.loads(exchange.body) == {"seen": 4 * 8192}


def test_declared_content_length_over_the_limit() -> None:
    inner = BodyReader()
    chunks = [b"x" * 8192] * 12
    exchange = run(limited(inner), chunks=chunks, headers={"content-length": str(12 * 8192)})
    assert exchange.status == 413
    assert not inner.called
    error = json.loads(exchange.body)["error"]
    assert error["param"] == "file"
    assert error["code"] == "file_too_large"
    assert exchange.headers["content-type"] == "application/json"
    assert int(exchange.headers["content-length"]) == len(exchange.body)


def test_streamed_body_over_the_limit_is_cut_off() -> None:
    inner = BodyReader()
    chunk = 8192
    chunks = [b"x" * chunk] * 50  # 400 KB without a Content-Length
    exchange = run(limited(inner), chunks=chunks)

    assert exchange.status == 413
    assert json.loads(exchange.body)["error"]["code"] == "file_too_large"
    # The app never got more than the cap (plus the chunk that crossed it) ...
    assert inner.seen <= LIMIT
    # ... and its own 200 was replaced, not sent after or alongside the 413.
    assert b"seen" not in exchange.body


def test_other_paths_are_not_limited() -> None:
    inner = BodyReader()
    chunks = [b"x" * 8192] * 12
    exchange = run(
        limited(inner), path="/v1/models", chunks=chunks, headers={"content-length": "98304"}
    )
    assert exchange.status == 200
    assert json.loads(exchange.body) == {"seen": 12 * 8192}


def test_non_numeric_content_length_falls_back_to_counting() -> None:
    inner = BodyReader()
    exchange = run(limited(inner), chunks=[b"x" * (LIMIT + 1)], headers={"content-length": "x"})
    assert exchange.status == 413


# --- RequestContextMiddleware -----------------------------------------------------------------


async def crashing_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("secret internals")


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    scope["state"]["model"] = "m"
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})


def test_escaped_exception_becomes_openai_500(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="theo.request"):
        exchange = run(RequestContextMiddleware(crashing_app))
    assert exchange.status == 500
    body = json.loads(exchange.body)
    assert body["error"]["type"] == "server_error"
    assert b"secret internals" not in exchange.body
    assert exchange.headers["x-request-id"]
    [line] = [r for r in caplog.records if r.getMessage() == "request"]
    assert line.__dict__["status"] == 500
    assert line.__dict__["request_id"] == exchange.headers["x-request-id"]


def test_request_id_echoed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="theo.request"):
        exchange = run(RequestContextMiddleware(ok_app), headers={"x-request-id": "abc"})
    assert exchange.status == 201
    assert exchange.headers["x-request-id"] == "abc"
    [line] = caplog.records
    assert (line.__dict__["request_id"], line.__dict__["model"]) == ("abc", "m")
    assert line.__dict__["status"] == 201
    assert line.__dict__["latency_ms"] >= 0


def test_overlong_request_id_is_truncated() -> None:
    exchange = run(RequestContextMiddleware(ok_app), headers={"x-request-id": "a" * 500})
    assert exchange.headers["x-request-id"] == "a" * 64


def test_only_v1_routes_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="theo.request"):
        exchange = run(RequestContextMiddleware(ok_app), path="/health")
    assert exchange.headers["x-request-id"]
    assert caplog.records == []
