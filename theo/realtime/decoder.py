"""Live decodes to the model's runner: final decodes at once, partial re-decodes when there is room.

Every decode is a job for the runner, through the backend the HTTP routes use. A final
decode (a committed utterance) goes out at once, on the runner's live lanes, where it is
batched with other sessions' final decodes. Partial re-decodes queue here, per model, and
go out in batches, one batch at a time, and only while no final decode of the model runs:
text while someone talks uses spare capacity, not the capacity that finishes utterances.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from theo.http.backend import BackendProvider, TranscriptionBackend
from theo.transcription import TranscriptionJob, TranscriptionResult

# Final decodes of a model that may run while a partial batch starts. On CPU two decodes at
# once slow each other down (a 2-core machine ran a decode 1.8x slower beside another), so
# a partial batch waits until the final decodes are done.
FINALS_BESIDE_PARTIALS = 0


@runtime_checkable
class LiveBackend(Protocol):
    """A backend with lanes for live decodes (theo/serving/router.py's RunnerRouter)."""

    async def transcribe_live(
        self, model: str, jobs: list[TranscriptionJob], *, partial: bool = False
    ) -> list[TranscriptionResult]: ...


async def run_live(
    backend: TranscriptionBackend, model: str, jobs: list[TranscriptionJob], *, partial: bool
) -> list[TranscriptionResult]:
    """Run ``jobs`` on the backend's live lanes, or as file jobs if it has none."""
    if isinstance(backend, LiveBackend):
        return await backend.transcribe_live(model, jobs, partial=partial)
    return list(await asyncio.gather(*(backend.transcribe(model, job) for job in jobs)))


@dataclass
class _Partial:
    job: TranscriptionJob
    result: asyncio.Future[TranscriptionResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class _ModelQueue:
    finals: int = 0  # final decodes running now
    partials: deque[_Partial] = field(default_factory=deque)
    pump: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class LiveDecoder:
    """Sends the live sessions' decodes of each model to its runner, finals first."""

    def __init__(self, get_backend: BackendProvider, *, partial_batch: int):
        self._get_backend = get_backend
        self.partial_batch = partial_batch  # partial re-decodes per runner call, at most
        self._models: dict[str, _ModelQueue] = {}

    def _queue(self, model: str) -> _ModelQueue:
        if model not in self._models:
            self._models[model] = _ModelQueue()
        return self._models[model]

    def finals_running(self, model: str) -> int:
        return self._queue(model).finals

    async def final(self, model: str, job: TranscriptionJob) -> TranscriptionResult:
        """Decode a committed utterance; raises TheoError when the runner cannot."""
        queue = self._queue(model)
        queue.finals += 1
        try:
            (result,) = await run_live(self._get_backend(), model, [job], partial=False)
            return result
        finally:
            queue.finals -= 1
            queue.changed.set()

    async def partial(self, model: str, job: TranscriptionJob) -> TranscriptionResult:
        """Re-decode a growing utterance when there is room; raises TheoError on failure."""
        queue = self._queue(model)
        request = _Partial(job)
        queue.partials.append(request)
        if queue.pump is None or queue.pump.done():
            queue.pump = asyncio.create_task(self._pump(model, queue))
        try:
            return await asyncio.shield(request.result)
        except asyncio.CancelledError:
            request.result.cancel()  # the pump skips it
            raise

    async def _pump(self, model: str, queue: _ModelQueue) -> None:
        while queue.partials:
            while queue.finals > FINALS_BESIDE_PARTIALS:
                queue.changed.clear()
                await queue.changed.wait()
            batch: list[_Partial] = []
            while queue.partials and len(batch) < self.partial_batch:
                request = queue.partials.popleft()
                if not request.result.done():
                    batch.append(request)
            if not batch:
                continue
            try:
                backend = self._get_backend()
                results = await run_live(backend, model, [r.job for r in batch], partial=True)
            except Exception as exc:  # TheoError from the router, or the backend starting
                for request in batch:
                    if not request.result.done():
                        request.result.set_exception(exc)
                continue
            for request, result in zip(batch, results, strict=True):
                if not request.result.done():
                    request.result.set_result(result)

    async def close(self) -> None:
        """Stop the pumps (tests; the server's process ends instead)."""
        for queue in self._models.values():
            if queue.pump is not None:
                queue.pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await queue.pump
