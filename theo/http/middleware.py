"""ASGI middleware: the upload cap, the request timeout, and the request context.

The request context middleware gives each request an id, a catch-all 500 and one log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from theo.errors import FileTooLargeError, InternalServerError, RequestTimeoutError, TheoError
from theo.log import REQUEST_LOGGER

logger = logging.getLogger(REQUEST_LOGGER)

# Room for the other form fields and multipart boundaries on top of the file cap.
FORM_OVERHEAD_BYTES = 64 * 1024


async def send_error(
    send: Send, error: TheoError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send ``error`` as a complete OpenAI-shaped JSON response."""
    body = json.dumps(error.to_openai()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    """Raised into the app when the body passes the cap, so it stops reading."""


class UploadLimitMiddleware:
    """413 for request bodies past the cap: from Content-Length up front, else while streaming.

    A body without a length (chunked) is never read past the cap: the app's next read
    fails, whatever it answers is replaced by the 413, and the connection is closed.
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
        close = [(b"connection", b"close")]
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._drain(receive, budget=4 * limit)
            await send_error(send, error, close)
            return

        received = 0
        exceeded = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded and not response_started:
                return  # the app's answer to a cut-off body; the 413 replaces it
            response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            # FastAPI wraps a failed body read in its own error; either way it is ours.
            if not exceeded:
                raise
        if exceeded and not response_started:
            await send_error(send, error, close)

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


class RequestTimeoutMiddleware:
    """504 in OpenAI's shape when a request is not answered within ``timeout_seconds``.

    The clock covers the upload, decoding and the runner call; on expiry the request's
    work is cancelled (decoding in a thread finishes first) and the client is answered.
    """

    def __init__(self, app: ASGIApp, *, timeout_seconds: float, path_prefix: str = "/v1/audio/"):
        self.app = app
        self.timeout_seconds = timeout_seconds
        self.path_prefix = path_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.path_prefix):
            await self.app(scope, receive, send)
            return
        timed_out = False
        response_started = False

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if timed_out:
                return
            response_started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout_seconds)
        except BaseException:
            task.cancel()  # the server is cancelling us (shutdown, disconnect)
            raise
        if done or response_started:
            await task  # finished (or answering): propagate its outcome
            return
        timed_out = True
        task.cancel()
        task.add_done_callback(_consume_outcome)
        error = RequestTimeoutError(
            f"The request did not complete within {self.timeout_seconds:g} seconds."
        )
        await send_error(send, error, [(b"connection", b"close")])


def _consume_outcome(task: asyncio.Future[None]) -> None:
    # A cancelled request may still end with an error; it was already answered with the 504.
    if not task.cancelled() and task.exception() is not None:
        logger.debug("request failed after its timeout", exc_info=task.exception())


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
                await send_error(send_with_id, InternalServerError(), [(b"connection", b"close")])
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
