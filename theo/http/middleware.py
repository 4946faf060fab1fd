"""ASGI middleware: the upload cap, and the request context (id, catch-all, log line)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from theo.errors import FileTooLargeError, InternalServerError, TheoError
from theo.log import REQUEST_LOGGER

logger = logging.getLogger(REQUEST_LOGGER)

# Room for the other form fields and multipart boundaries on top of the file cap.
FORM_OVERHEAD_BYTES = 64 * 1024


async def _send_error(send: Send, error: TheoError, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(error.to_openai()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class UploadLimitMiddleware:
    """413 for request bodies past the cap: from Content-Length up front, else while streaming.

    A chunked upload is never buffered past the cap: once it is exceeded the rest of
    the body is dropped and whatever the app answers is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, path_prefix: str = "/v1/audio/"):
        self.app = app
        self.max_bytes = max_bytes
        self.path_prefix = path_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.path_prefix):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes + FORM_OVERHEAD_BYTES
        error = FileTooLargeError(self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._drain(receive, budget=4 * limit)
            await _send_error(send, error, [(b"connection", b"close")])
            return

        received = 0
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    message = {**message, "body": b""}
            return message

        replaced = False

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if exceeded:
                if not replaced:
                    replaced = True
                    await _send_error(send, error, [(b"connection", b"close")])
                return
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    @staticmethod
    async def _drain(receive: Receive, budget: int) -> None:
        # Read (and discard) the body so the client sees the 413 instead of a reset.
        seen = 0
        while seen <= budget:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


class RequestContextMiddleware:
    """Gives each request an id, turns any escaped exception into a 500, logs one line."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error", extra={"request_id": request_id})
            if not response_started:
                await _send_error(send_with_id, InternalServerError(), [(b"connection", b"close")])
        finally:
            if scope["path"].startswith("/v1/"):
                logger.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "model": state.get("model"),
                        "task": state.get("task"),
                        "format": state.get("response_format"),
                        "audio_seconds": state.get("audio_seconds"),
                        "batch_size": state.get("batch_size"),
                        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                        "status": status,
                    },
                )
