"""``stream=true``: a transcript as server-sent events, in OpenAI's event types.

Events (``openai.types.audio.TranscriptionStreamEvent``), one ``data: <json>`` line each:

- ``transcript.text.delta`` with ``delta``: a window's text, in audio order, as soon as it
  and every window before it are decoded. The deltas add up to the final text.
- ``transcript.text.done`` with ``text`` (and ``usage`` on transcriptions), last.
- ``error`` with OpenAI's ``{"error": {...}}`` body when the work fails after the stream
  started; the SDKs raise it as an ``APIError``. Nothing follows it.

There is no ``data: [DONE]`` sentinel: OpenAI's transcription streams end with the done
event, and the SDKs stop when the body ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from theo.errors import InternalServerError, TheoError
from theo.formats import duration_usage
from theo.transcription import TranscriptionResult

logger = logging.getLogger(__name__)

Event = dict[str, Any]


def encode_event(event: Event) -> bytes:
    """One server-sent event: a ``data:`` line of compact JSON and a blank line."""
    return (
        b"data: " + json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    )


def error_event(error: TheoError) -> Event:
    """The event that ends a failed stream: OpenAI's error body, with the event's type."""
    return {"type": "error", **error.to_openai()}


async def transcript_events(
    results: AsyncIterator[TranscriptionResult],
    finish: Callable[[list[TranscriptionResult]], TranscriptionResult],
    *,
    usage: bool,
) -> AsyncGenerator[Event, None]:
    """A delta per window with text, then the done event; an error event if a window fails.

    ``finish`` merges the windows' results into the request's; ``usage``: whether the
    done event carries it (transcriptions do, as OpenAI's).
    """
    windows: list[TranscriptionResult] = []
    sent_text = False
    try:
        async for result in results:
            windows.append(result)
            # The same rule as join_window_texts: stripped, one space between windows.
            text = result.text.strip()
            if text:
                yield {"type": "transcript.text.delta", "delta": " " + text if sent_text else text}
                sent_text = True
        merged = finish(windows)
    except TheoError as error:
        yield error_event(error)
        return
    except Exception:
        logger.exception("stream failed")
        yield error_event(InternalServerError())
        return
    done: Event = {"type": "transcript.text.done", "text": merged.text}
    if usage:
        done["usage"] = duration_usage(merged.duration)
    yield done


class EventStreamResponse(StreamingResponse):
    """``text/event-stream`` of ``events``; it ends when they do or the client leaves.

    The body runs after the route returned, so what the request holds (its admission
    slot, its windows in progress) is handed over with :meth:`hold` and released when the
    stream ends, however it ends.
    """

    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[Event, None]):
        super().__init__(
            self._encoded(events),
            # Proxies (nginx) must pass each event on at once rather than buffer the body.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._events = events
        self._resources = AsyncExitStack()

    def hold(self, resources: AsyncExitStack) -> None:
        """Release ``resources`` when the stream ends."""
        self._resources = resources

    @staticmethod
    async def _encoded(events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
        async for event in events:
            yield encode_event(event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stop_when_the_client_leaves() -> None:
                    # Listen whatever ASGI version the server speaks (Starlette only does
                    # below 2.4), so a client that leaves stops the work before the next
                    # event is due rather than when it is sent.
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(stop_when_the_client_leaves)
                with contextlib.suppress(OSError):  # the client is gone (ASGI 2.4 servers)
                    await self.stream_response(send)
                group.cancel_scope.cancel()
        finally:
            # Shielded: a cancelled request must still give its slot back.
            with anyio.CancelScope(shield=True):
                await self._events.aclose()  # first: it reads what the others hold
                await self._resources.aclose()
