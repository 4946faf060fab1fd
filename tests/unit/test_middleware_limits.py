"""theo/http/middleware.py: the request timeout, and that a body past the cap is not read on."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from theo.http.middleware import (
    FORM_OVERHEAD_BYTES,
    RequestTimeoutMiddleware,
    UploadLimitMiddleware,
)


async def answer(send: Send, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})


def run(app: Any, path: str = "/v1/audio/transcriptions", body: list[bytes] | None = None) -> Any:
    """One request through ``app``; returns (status, body, how many body chunks were read)."""
    chunks = list(body or [b""])
    reads = 0
    messages: list[Message] = []

    async def receive() -> Message:
        nonlocal reads
        if reads >= len(chunks):
            await asyncio.sleep(3600)  # a client that never sends more
        reads += 1
        return {"type": "http.request", "body": chunks[reads - 1], "more_body": reads < len(chunks)}

    async def send(message: Message) -> None:
        messages.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in messages if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], content, reads


class Sleeper:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.cancelled = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        await answer(send)


def test_a_slow_request_gets_openais_504_on_time() -> None:
    inner = Sleeper(30)
    started = time.monotonic()
    status, body, _ = run(RequestTimeoutMiddleware(inner, timeout_seconds=0.2))
    assert time.monotonic() - started < 2
    assert status == 504
    error = json.loads(body)["error"]
    assert (error["type"], error["code"]) == ("server_error", "timeout")
    assert "0.2 seconds" in error["message"]
    assert inner.cancelled


def test_a_fast_request_is_untouched() -> None:
    assert run(RequestTimeoutMiddleware(Sleeper(0), timeout_seconds=5))[:2] == (200, b"done")


def test_other_paths_have_no_timeout() -> None:
    status, _, _ = run(RequestTimeoutMiddleware(Sleeper(0.3), timeout_seconds=0.05), path="/health")
    assert status == 200


def test_errors_inside_the_time_propagate() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run(RequestTimeoutMiddleware(broken, timeout_seconds=5))


def test_a_body_past_the_cap_is_not_read_further() -> None:
    async def reader(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await answer(send)

    chunk = b"\0" * 4096
    cap = 10_000
    endless = [chunk] * ((cap + FORM_OVERHEAD_BYTES) // len(chunk) + 500)
    status, body, reads = run(UploadLimitMiddleware(reader, max_bytes=cap), body=endless)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "file_too_large"
    # Reading stopped at the first chunk past the cap, not at the end of the body.
    assert reads == (cap + FORM_OVERHEAD_BYTES) // len(chunk) + 1
