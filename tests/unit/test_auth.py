"""theo/http/auth.py: the optional bearer token, driven as raw ASGI."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from starlette.types import Message, Receive, Scope, Send

from theo.http.auth import PUBLIC_PATHS, BearerAuthMiddleware, bearer_token

KEY = "sk-unit-test-key"


class Recorder:
    """A downstream app that answers 200 and remembers that it was reached."""

    def __init__(self) -> None:
        self.reached = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.reached = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(path: str, authorization: str | None) -> tuple[int, dict[str, str], Any, bool]:
    inner = Recorder()
    app = BearerAuthMiddleware(inner, api_key=KEY)
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    scope: Scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    anyio.run(app, scope, receive, send)
    start = messages[0]
    body = b"".join(m.get("body", b"") for m in messages[1:])
    head = {k.decode(): v.decode() for k, v in start["headers"]}
    parsed = json.loads(body) if head.get("content-type") == "application/json" else body
    return start["status"], head, parsed, inner.reached


def test_the_right_key_passes() -> None:
    status, _, _, reached = call("/v1/models", f"Bearer {KEY}")
    assert (status, reached) == (200, True)


@pytest.mark.parametrize(
    "authorization", [None, "", KEY, f"Basic {KEY}", "Bearer", f"Bearer {KEY}0", "Bearer sk-unit"]
)
def test_anything_else_is_openais_401(authorization: str | None) -> None:
    status, headers, body, reached = call("/v1/audio/transcriptions", authorization)
    assert (status, reached) == (401, False)
    assert headers["www-authenticate"] == "Bearer"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["param"] is None
    assert KEY not in json.dumps(body)


def test_missing_and_wrong_keys_are_told_apart() -> None:
    assert "didn't provide" in call("/v1/models", None)[2]["error"]["message"]
    assert "Incorrect API key" in call("/v1/models", "Bearer nope")[2]["error"]["message"]


@pytest.mark.parametrize("path", sorted(PUBLIC_PATHS))
def test_public_paths_need_no_key(path: str) -> None:
    assert call(path, None)[3]


def test_unknown_paths_are_protected_by_default() -> None:
    assert call("/v1/something-new", None)[0] == 401


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        (b"Bearer abc", b"abc"),
        (b"bearer   abc  ", b"abc"),
        (b"BEARER abc", b"abc"),
        (b"Bearer", None),
        (b"Token abc", None),
    ],
)
def test_bearer_token_parsing(header: bytes | None, token: bytes | None) -> None:
    assert bearer_token(header) == token
