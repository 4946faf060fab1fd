"""``GET /v1/realtime``: the WebSocket of OpenAI's Realtime API, for transcription sessions.

The handshake checks the key (``Authorization: Bearer`` or, for browsers, the
``openai-insecure-api-key.<key>`` subprotocol) before accepting, selects the ``realtime``
subprotocol when offered, and picks the event shapes: beta with ``OpenAI-Beta:
realtime=v1``, GA otherwise. A session is a transcription session from
``?intent=transcription`` or from a first update of transcription type; anything else gets
an ``error`` event and a normal close.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse

from theo.errors import (
    AuthenticationError,
    InvalidRequestError,
    ServiceUnavailableError,
    TheoError,
)
from theo.http.auth import bearer_token
from theo.http.backend import BackendProvider
from theo.realtime.config import Dialect, SessionConfig, Transcription, resolve_model
from theo.realtime.decoder import LiveDecoder
from theo.realtime.events import (
    ClientEvent,
    ClientEventError,
    ErrorDetail,
    ErrorEvent,
    new_id,
    parse_client_event,
)
from theo.realtime.session import LiveSession, ModelSlots
from theo.realtime.shutdown import ShutdownHook
from theo.registry import ModelRegistry
from theo.serving.runner import LIVE_GROUP_SIZE
from theo.settings import Settings
from theo.streaming_vad import silero_model

logger = logging.getLogger(__name__)

PATH = "/v1/realtime"
SUBPROTOCOL = "realtime"
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
# WebSocket close codes (RFC 6455 and IANA's registry).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013

_ONLY_TRANSCRIPTION = (
    "Only transcription sessions are supported: connect with ?intent=transcription, or send "
    "a session.update with session.type 'transcription' (beta: transcription_session.update) "
    "first."
)


@dataclass
class _Close:
    code: int
    reason: str


def add_realtime_routes(
    app: FastAPI, settings: Settings, registry: ModelRegistry, get_backend: BackendProvider
) -> RealtimeEndpoint:
    """Serve live transcription sessions on ``/v1/realtime``."""
    endpoint = RealtimeEndpoint(settings, registry, get_backend)
    app.add_api_websocket_route(PATH, endpoint.serve)
    return endpoint


class RealtimeEndpoint:
    """What the live sessions of one API worker process share: the decoder, the per-model
    session counts, and the connections to finish when the server stops."""

    def __init__(self, settings: Settings, registry: ModelRegistry, get_backend: BackendProvider):
        self.settings = settings
        self.registry = registry
        # A partial batch of one engine group leaves the live instance's other worker free
        # for final decodes (batches of 4, two groups, took both: 8 sessions' p95 1.37 -> 1.11 s).
        self.decoder = LiveDecoder(get_backend, partial_batch=LIVE_GROUP_SIZE)
        self.slots = ModelSlots(settings.realtime_max_sessions_per_model)
        self.connections: set[Connection] = set()
        self.draining = False
        self._shutdown = ShutdownHook(self.drain)
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        self._key = key.encode()

    async def serve(self, websocket: WebSocket) -> None:
        offered = list(websocket.scope.get("subprotocols") or [])
        if self._key and not self._authorized(websocket, offered):
            token_sent = websocket.headers.get("authorization") or any(
                p.startswith(KEY_SUBPROTOCOL_PREFIX) for p in offered
            )
            message = (
                "Incorrect API key provided. Check the key the server was started with "
                "(THEO_API_KEY)."
                if token_sent
                else "You didn't provide an API key. Send 'Authorization: Bearer YOUR_KEY' or, "
                "from a browser, the subprotocol 'openai-insecure-api-key.YOUR_KEY'."
            )
            await _deny(websocket, AuthenticationError(message), [("WWW-Authenticate", "Bearer")])
            return
        if self.draining:
            await _deny(websocket, ServiceUnavailableError("The server is shutting down."), [])
            return
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        self._shutdown.install()
        beta = "realtime=v1" in websocket.headers.get("openai-beta", "").replace(" ", "")
        connection = Connection(self, websocket, "beta" if beta else "ga")
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)

    def _authorized(self, websocket: WebSocket, offered: list[str]) -> bool:
        header = websocket.headers.get("authorization")
        candidates = [bearer_token(header.encode("latin-1")) if header else None]
        candidates += [
            p[len(KEY_SUBPROTOCOL_PREFIX) :].encode("latin-1")
            for p in offered
            if p.startswith(KEY_SUBPROTOCOL_PREFIX)
        ]
        return any(c is not None and hmac.compare_digest(c, self._key) for c in candidates)

    async def drain(self) -> None:
        """Finish every session's utterances (within the grace period) and close it with 1001."""
        self.draining = True
        connections = list(self.connections)
        if connections:
            logger.info("closing %d live sessions", len(connections))
            await asyncio.gather(*(c.drain() for c in connections), return_exceptions=True)


class Connection:
    """One WebSocket: its session (once there is one), its outgoing events, its close."""

    def __init__(self, endpoint: RealtimeEndpoint, websocket: WebSocket, dialect: Dialect):
        self.endpoint = endpoint
        self.websocket = websocket
        self.dialect = dialect
        self.session: LiveSession | None = None
        self._outbox: asyncio.Queue[dict[str, Any] | _Close] = asyncio.Queue()
        self._closed = asyncio.Event()  # the close was sent, or the client is gone
        self._closed_wait: asyncio.Task[Any] | None = None
        self.close_code: int | None = None
        self._draining = False
        self._disconnected = False

    # -- Output -------------------------------------------------------------------------------

    def send(self, event: dict[str, Any]) -> None:
        if self.close_code is None:
            self._outbox.put_nowait(event)

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
            self._outbox.put_nowait(_Close(code, reason))

    def error(self, error: TheoError, event_id: str | None = None) -> None:
        event = ErrorEvent(event_id=new_id("event"), error=ErrorDetail.of(error, event_id))
        self.send(event.model_dump(mode="json"))

    async def _send_loop(self) -> None:
        try:
            while True:
                item = await self._outbox.get()
                if isinstance(item, _Close):
                    await self.websocket.close(item.code, item.reason)
                    return
                await self.websocket.send_text(json.dumps(item))
        except Exception:  # the client is gone: the receive loop sees it too
            return
        finally:
            self._closed.set()

    # -- Input --------------------------------------------------------------------------------

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        started = time.monotonic()
        try:
            first = await self._open()
            if self.session is not None:
                if first is not None:
                    self.session.handle(first)
                await self._receive_loop(self.session)
        except Exception:
            logger.exception("live session failed")
            self.close(CLOSE_ERROR, "internal error")
        finally:
            await self._finish(sender, started)

    async def _open(self) -> ClientEvent | None:
        """Start the session; the first event, if it had to be read to know the session type."""
        settings, endpoint = self.endpoint.settings, self.endpoint
        query = self.websocket.query_params
        first: ClientEvent | None = None
        if query.get("intent") != "transcription":
            first = await self._first_event()
            if first is None:
                return None
            if first.type == "transcription_session.update":
                self.dialect = "beta"
        model = settings.default_model
        if query.get("model"):
            # Optional; OpenAI's transcription sessions ignore it. An installed model's
            # name (or whisper-1) picks the session's model, anything else is ignored.
            with contextlib.suppress(TheoError):
                model = resolve_model(
                    query["model"],
                    endpoint.registry,
                    settings.default_model,
                    settings.model_aliases,
                )
        try:
            endpoint.slots.take(model)
        except TheoError as error:
            self.error(error, first.event_id if first else None)
            self.close(CLOSE_TRY_AGAIN_LATER, "too many live sessions")
            return None
        self.session = LiveSession(
            config=SessionConfig(transcription=Transcription(model=model)),
            dialect=self.dialect,
            decoder=endpoint.decoder,
            slots=endpoint.slots,
            registry=endpoint.registry,
            settings=settings,
            vad_model=silero_model(),
            send=self.send,
        )
        self.session.start()
        return first

    async def _first_event(self) -> ClientEvent | None:
        """Read the first event; None (after an error and a close) unless it makes this a
        transcription session."""
        while True:
            data = await self._receive()
            if data is None:
                return None
            try:
                event = parse_client_event(data)
            except ClientEventError as error:
                self.error(error, error.event_id)
                continue
            except TheoError as error:
                self.error(error)
                continue
            session = event.fields.get("session")
            if event.type == "transcription_session.update" or (
                event.type == "session.update"
                and isinstance(session, dict)
                and session.get("type") == "transcription"
            ):
                return event
            self.error(
                InvalidRequestError(_ONLY_TRANSCRIPTION, code="unsupported_session_type"),
                event.event_id,
            )
            self.close(CLOSE_NORMAL, "only transcription sessions are supported")
            return None

    async def _receive(self) -> str | bytes | None:
        """The next message's data; None once the client is gone or the session timed out."""
        timeout = self.endpoint.settings.realtime_idle_timeout_seconds
        limit = self.endpoint.settings.realtime_max_message_bytes
        if self._closed_wait is None:  # one waiter for the whole session, not one a message
            self._closed_wait = asyncio.create_task(self._closed.wait())
        closed_wait = self._closed_wait
        while True:
            receive: asyncio.Task[Any] = asyncio.create_task(self.websocket.receive())
            done, _ = await asyncio.wait(
                {receive, closed_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if receive not in done:
                receive.cancel()
                with contextlib.suppress(BaseException):
                    await receive
                if self._closed.is_set():
                    return None
                if self.session is not None and self.session.busy:
                    continue  # waiting for transcriptions is not idling
                self.error(
                    InvalidRequestError(
                        f"The session was idle for {timeout:g} seconds.", code="idle_timeout"
                    )
                )
                self.close(CLOSE_NORMAL, "idle timeout")
                return None
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                self._disconnected = True
                if self.close_code is None:
                    self.close_code = message.get("code", CLOSE_NORMAL)
                return None
            data: str | bytes | None = message.get("text")
            if data is None:
                data = message.get("bytes")
            if data is None:
                continue
            if len(data) > limit:
                self.error(
                    InvalidRequestError(
                        f"The event is larger than the maximum of "
                        f"{self.endpoint.settings.realtime_max_message_mb:g} MB.",
                        code="message_too_large",
                    )
                )
                continue
            return data

    async def _receive_loop(self, session: LiveSession) -> None:
        while True:
            data = await self._receive()
            if data is None:
                return
            if self._draining:
                continue  # the server stops: what is in flight finishes, nothing new starts
            try:
                event = parse_client_event(data)
            except ClientEventError as error:
                session.error(error, error.event_id)
                continue
            except TheoError as error:
                session.error(error)
                continue
            session.handle(event)

    # -- Ending -------------------------------------------------------------------------------

    async def drain(self) -> None:
        """Server shutdown: finish the utterances in flight, then close with 1001."""
        self._draining = True
        if self.session is not None:
            grace = self.endpoint.settings.realtime_shutdown_grace_seconds
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.session.finish(), grace)
        self.close(CLOSE_GOING_AWAY, "server shutting down")
        await self._closed.wait()

    async def _finish(self, sender: asyncio.Task[None], started: float) -> None:
        if not self._disconnected:
            self.close(CLOSE_NORMAL)  # no-op if a close (and its reason) is queued already
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(sender), 5)
        sender.cancel()
        if self._closed_wait is not None:
            self._closed_wait.cancel()
        session = self.session
        if session is not None:
            await session.close()
            self.endpoint.slots.release(session.config.transcription.model)
        logger.info(
            "live session",
            extra={
                "session_id": session.id if session else None,
                "model": session.config.transcription.model if session else None,
                "dialect": self.dialect,
                "seconds": round(time.monotonic() - started, 1),
                "utterances": session.utterances if session else 0,
                "audio_seconds": round(session.audio_seconds, 1) if session else 0.0,
                "failed": session.failed if session else 0,
                "close_code": self.close_code,
            },
        )


async def _deny(websocket: WebSocket, error: TheoError, headers: list[tuple[str, str]]) -> None:
    """Refuse the handshake with an HTTP error in OpenAI's shape (403 where not supported)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = JSONResponse(
            error.to_openai(), status_code=error.status_code, headers=dict(headers)
        )
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=1008)
