"""How the windows of one request reach its model's runner: a long recording's as long-form work.

A request of one window (audio up to 30 s, or one stretch of speech) goes as it always
did. The windows of a longer recording go as *long-form* jobs (``TranscriptionJob.
long_form``): the engine decodes them as text whose words it aligns to the audio (no
decode of a window's end over again, true timestamps; theo/engine/passes.py), in groups
that make way for the runner's other work between model calls.

A recording's windows go :data:`LONG_FORM_WINDOWS_PER_CALL` at a time, in one call, which
the runner decodes as one stack. Per model and API process, at most
:data:`LONG_FORM_CALLS_IN_FLIGHT` such calls are at the runner at once, from all requests
together, in the order they were asked for: several long recordings share the runner a
call at a time, and a runner lane always holds little long-form work for a short request
to wait behind (a lane runs one batch at a time). A long-form window also carries the
language its recording was heard in so far, which it keeps unless its own detection is
sure of another, and asks the encoder for less than 30 s of input where it is short
(``THEO_LONG_FORM_ENCODER_SECONDS``: chains of short talks are cut into windows of 5-20 s).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable

from theo.http.backend import TranscriptionBackend
from theo.http.windows import results_in_order
from theo.transcription import TranscriptionJob, TranscriptionResult

# A stack of two windows costs less per window than a window alone. Sent one by one as
# the results before them came back, a file's windows reached the runner's lanes one at
# a time and were decoded alone (8 of 9 batches of the LJ chapter): calls of two make
# every stack (but a file's odd last window) two windows.
LONG_FORM_WINDOWS_PER_CALL = 2
# One call for each of a CPU runner's two workers (and its two long-form lanes): both
# cores busy, and the most a long recording gets alone.
LONG_FORM_CALLS_IN_FLIGHT = 2
LONG_FORM_WINDOWS_IN_FLIGHT = LONG_FORM_WINDOWS_PER_CALL * LONG_FORM_CALLS_IN_FLIGHT

# Each model's long-form calls at the runner, per event loop (a semaphore is bound to
# the loop it first waits on; tests run several).
_in_flight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _long_form_slots(model: str) -> asyncio.Semaphore:
    slots = _in_flight.setdefault(asyncio.get_running_loop(), {})
    if model not in slots:
        slots[model] = asyncio.Semaphore(LONG_FORM_CALLS_IN_FLIGHT)
    return slots[model]


class _LongForm:
    """The backend, as one long recording's windows see it: each call of long-form jobs
    within the model's long-form slots, with the recording's language so far."""

    def __init__(self, backend: TranscriptionBackend, encoder_seconds: float | None):
        self._backend = backend
        self._encoder_seconds = encoder_seconds
        self.language: str | None = None  # of the last window heard with speech

    async def transcribe(self, model: str, job: TranscriptionJob) -> TranscriptionResult:
        (result,) = await self.transcribe_many(model, [job])
        return result

    async def transcribe_many(
        self, model: str, jobs: list[TranscriptionJob]
    ) -> list[TranscriptionResult]:
        jobs = [
            job.model_copy(
                update={
                    "long_form": True,
                    "language_hint": None if job.language else self.language,
                    "encoder_seconds": self._encoder_seconds,
                }
            )
            for job in jobs
        ]
        async with _long_form_slots(model):
            results = await self._backend.transcribe_many(model, jobs)
        for result in results:
            if result.segments and result.error is None:
                self.language = result.language
        return results

    async def readiness(self) -> dict[str, bool]:
        return await self._backend.readiness()

    async def warm_up(self) -> None:
        await self._backend.warm_up()


async def transcribe_in_order(
    backend: TranscriptionBackend,
    model: str,
    jobs: AsyncIterable[TranscriptionJob] | Iterable[TranscriptionJob],
    *,
    in_flight: int,
    first_alone: bool = False,
    encoder_seconds: float | None = None,
) -> AsyncGenerator[TranscriptionResult, None]:
    """Each window's result in order, as :func:`theo.http.windows.results_in_order` gives
    them (the same arguments, errors and cancellation): a request with a second window
    is a long recording, whose windows go as long-form jobs, two per call, each giving
    the encoder at least ``encoder_seconds`` of input (None: 30 s)."""
    source = aiter(jobs) if isinstance(jobs, AsyncIterable) else _from_iterable(jobs)
    first = await anext(source, None)
    second = await anext(source, None) if first is not None else None
    to_send: TranscriptionBackend = (
        backend if second is None else _LongForm(backend, encoder_seconds)
    )
    # A long recording's calls are of two windows, and a call's results are taken in
    # order: two windows ahead, so a call that ends first can make way for the next at once.
    per_call = 1 if second is None else LONG_FORM_WINDOWS_PER_CALL
    results = results_in_order(
        to_send, model, _resumed(first, second, source), in_flight=in_flight,
        first_alone=first_alone, per_call=per_call, ahead=per_call,
    )  # fmt: skip
    try:
        async for result in results:
            yield result
    finally:
        await results.aclose()


async def _resumed(
    first: TranscriptionJob | None,
    second: TranscriptionJob | None,
    rest: AsyncIterator[TranscriptionJob],
) -> AsyncGenerator[TranscriptionJob, None]:
    """The jobs again, the two already taken first."""
    try:
        for job in (first, second):
            if job is not None:
                yield job
        if second is not None:
            async for job in rest:
                yield job
    finally:
        close = getattr(rest, "aclose", None)
        if close is not None:
            await close()


async def _from_iterable(jobs: Iterable[TranscriptionJob]) -> AsyncIterator[TranscriptionJob]:
    for job in jobs:
        yield job
