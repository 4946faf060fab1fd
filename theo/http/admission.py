"""Per-model admission: a bounded number of requests in progress, and a FIFO queue before it.

A request is admitted before its audio is decoded (decoding is CPU; a waiting request
costs only the memory of its upload). It waits its turn in its model's queue, and is
refused with 503 + Retry-After only when the queue is full (by count or by bytes of
uploads) or it waited too long. Counts are per API worker process.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from theo.errors import ClientDisconnectedError, ServiceUnavailableError

# How often a waiting request checks whether its client hung up.
DISCONNECT_POLL_SECONDS = 0.5
# Completions older than this no longer count towards the drain rate.
DRAIN_WINDOW_SECONDS = 60.0
# The OpenAI SDKs honour a Retry-After of at most 60 s (longer ones fall back to backoff).
MAX_RETRY_AFTER_SECONDS = 60


@dataclass
class _Waiter:
    size: int
    admitted: asyncio.Future[None]


@dataclass
class _ModelQueue:
    in_flight: int = 0
    waiting: deque[_Waiter] = field(default_factory=deque)
    waiting_bytes: int = 0
    # When recent requests ended (enough of them to measure a drain rate).
    finished: deque[float] = field(default_factory=lambda: deque(maxlen=1024))


@dataclass(frozen=True)
class QueueLimits:
    """How much work one model takes: in progress, waiting (count and bytes), and for how long."""

    max_in_flight: int
    max_queued: int = 0
    max_queued_bytes: int = 0
    max_wait_seconds: float = 60.0


@dataclass(frozen=True)
class Admitted:
    """What the admission of one request cost it."""

    waited_seconds: float


Disconnected = Callable[[], Awaitable[bool]]


class ModelAdmission:
    """Lets at most ``max_in_flight`` requests per model run at once; the next ones queue.

    All windows of a request count once. A slot freed by a finished request goes to the
    request that has waited longest for that model.
    """

    def __init__(
        self,
        limits: QueueLimits,
        *,
        on_refused: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limits = limits
        self._models: dict[str, _ModelQueue] = {}
        self._on_refused = on_refused
        self._clock = clock

    def _queue(self, model: str) -> _ModelQueue:
        return self._models.setdefault(model, _ModelQueue())

    def active(self, model: str) -> int:
        """Requests for ``model`` in progress now."""
        return self._queue(model).in_flight

    def queued(self, model: str) -> int:
        """Requests waiting for ``model`` now."""
        return len(self._queue(model).waiting)

    def queued_bytes(self, model: str) -> int:
        """Bytes of uploads waiting for ``model`` now."""
        return self._queue(model).waiting_bytes

    def retry_after(self, model: str) -> int | None:
        """Seconds until the requests waiting now should be done, from the recent drain rate.

        None until two requests have finished recently (nothing to measure the rate on).
        """
        queue = self._queue(model)
        now = self._clock()
        while queue.finished and now - queue.finished[0] > DRAIN_WINDOW_SECONDS:
            queue.finished.popleft()
        if len(queue.finished) < 2:
            return None
        # Requests finished per second since the oldest one counted (a stall lowers it).
        per_second = (len(queue.finished) - 1) / max(now - queue.finished[0], 1.0)
        seconds = math.ceil((len(queue.waiting) + 1) / per_second)
        return max(1, min(MAX_RETRY_AFTER_SECONDS, seconds))

    @asynccontextmanager
    async def admit(
        self, model: str, *, size: int = 0, disconnected: Disconnected | None = None
    ) -> AsyncIterator[Admitted]:
        """Hold one of ``model``'s slots for the block, waiting in line for it if need be.

        Raises 503 when the queue is full or the wait exceeds the limit, and
        :class:`ClientDisconnectedError` when ``disconnected()`` turns true while waiting.
        """
        queue = self._queue(model)
        started = self._clock()
        if queue.in_flight < self.limits.max_in_flight and not queue.waiting:
            queue.in_flight += 1
        else:
            await self._wait(model, queue, size, disconnected)
        try:
            yield Admitted(waited_seconds=self._clock() - started)
        finally:
            self._release(queue)

    async def _wait(
        self, model: str, queue: _ModelQueue, size: int, disconnected: Disconnected | None
    ) -> None:
        limits = self.limits
        if len(queue.waiting) >= limits.max_queued:
            self._refuse(model, "queue_full", f"{len(queue.waiting)} requests already wait")
        if queue.waiting_bytes + size > limits.max_queued_bytes:
            self._refuse(model, "queue_bytes", "the uploads waiting for it fill its queue")
        waiter = _Waiter(size, asyncio.get_running_loop().create_future())
        queue.waiting.append(waiter)
        queue.waiting_bytes += size
        deadline = self._clock() + limits.max_wait_seconds
        try:
            while not waiter.admitted.done():
                remaining = deadline - self._clock()
                if remaining <= 0:
                    self._refuse(
                        model,
                        "queue_timeout",
                        f"the request waited {limits.max_wait_seconds:g} s for it",
                    )
                await asyncio.wait(
                    {waiter.admitted}, timeout=min(DISCONNECT_POLL_SECONDS, remaining)
                )
                if not waiter.admitted.done() and disconnected and await disconnected():
                    raise ClientDisconnectedError("The client disconnected while queued.")
        except BaseException:
            if waiter.admitted.done() and not waiter.admitted.cancelled():
                self._release(queue)  # a slot was handed over as we gave up: pass it on
            else:
                waiter.admitted.cancel()
                self._forget(queue, waiter)
            raise

    def _refuse(self, model: str, reason: str, why: str) -> None:
        if self._on_refused is not None:
            self._on_refused(model, reason)
        raise ServiceUnavailableError(
            f"The model '{model}' is overloaded: {why}; retry shortly.",
            code="model_overloaded",
            retry_after=self.retry_after(model),
        )

    @staticmethod
    def _forget(queue: _ModelQueue, waiter: _Waiter) -> None:
        if waiter in queue.waiting:
            queue.waiting.remove(waiter)
            queue.waiting_bytes -= waiter.size

    def _release(self, queue: _ModelQueue) -> None:
        """End one request: its slot goes to the longest-waiting request, if any."""
        queue.finished.append(self._clock())
        while queue.waiting:
            waiter = queue.waiting.popleft()
            queue.waiting_bytes -= waiter.size
            if not waiter.admitted.done():
                waiter.admitted.set_result(None)  # the slot changes hands: in_flight stays
                return
        queue.in_flight -= 1
