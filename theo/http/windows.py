"""Send a request's windows to its model, a few at a time, and hand their results on in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable

from theo.errors import InternalServerError
from theo.http.backend import TranscriptionBackend
from theo.transcription import TranscriptionJob, TranscriptionResult

logger = logging.getLogger(__name__)


async def results_in_order(
    backend: TranscriptionBackend,
    model: str,
    jobs: AsyncIterable[TranscriptionJob] | Iterable[TranscriptionJob],
    *,
    in_flight: int,
    first_alone: bool = False,
    ahead: int = 1,
    per_call: int = 1,
) -> AsyncGenerator[TranscriptionResult, None]:
    """Each job's result, in the jobs' order, with at most ``in_flight`` jobs at the runner.

    ``jobs`` may still be arriving (windows cut as the upload is decoded): the next one is
    asked for only while fewer than ``in_flight + ahead`` results are outstanding, so a long
    file is never decoded far ahead of the runner. A job that finishes early waits for the
    ones before it. A failed job raises (its ``TheoError``, or a 500 for a result that
    carries an error); so does a failure of ``jobs`` itself, in its place. Closing the
    iterator early (the client left, a job failed) cancels the jobs in progress, and the
    jobs not yet sent are never sent (nor cut).

    ``per_call``: consecutive jobs go to the runner this many at a time, in one call
    (``transcribe_many``), so the runner decodes them as one batch however they arrive;
    the calls go in rounds of ``in_flight // per_call``. A last call that would start a
    round of its own goes as one call per job, to be decoded side by side.

    ``first_alone``: the first job goes in a call of its own, so the runner decodes it by
    itself and a stream's first delta comes sooner; the next calls go beside it, not
    after it. (Held back until its result was in, the rest of a 231 s file waited 1.3-1.7 s
    with one core's worth of work: streams took 1.07-1.20x the plain request's time.)
    """
    per_call = max(1, min(per_call, in_flight))
    slots = max(1, in_flight // per_call)  # calls at the runner at once: a round
    gate = asyncio.Semaphore(slots)
    room = asyncio.Semaphore(in_flight + ahead)
    order: asyncio.Queue[tuple[asyncio.Future[list[TranscriptionResult]], int] | None] = (
        asyncio.Queue()
    )
    calls: list[asyncio.Future[list[TranscriptionResult]]] = []
    closed = False

    async def run(call: list[TranscriptionJob]) -> list[TranscriptionResult]:
        # A long file's windows go to the runner a few at a time, so they interleave
        # with other requests' windows instead of queueing ahead of all of them.
        async with gate:
            if closed:  # its turn came as the request was being stopped
                raise asyncio.CancelledError()
            if len(call) == 1:
                return [await backend.transcribe(model, call[0])]
            return await backend.transcribe_many(model, call)

    def send(call: list[TranscriptionJob]) -> None:
        task = asyncio.ensure_future(run(call))
        calls.append(task)
        for index in range(len(call)):
            order.put_nowait((task, index))

    async def produce() -> None:
        source = aiter(jobs) if isinstance(jobs, AsyncIterable) else _from_iterable(jobs)
        call: list[TranscriptionJob] = []
        # A full call that would start a round (one call per slot): sent once another job
        # shows it is not the request's last.
        held: list[TranscriptionJob] | None = None
        try:
            async for job in source:
                if held is not None:
                    send(held)
                    held = None
                await room.acquire()
                call.append(job)
                if first_alone and not calls:
                    send(call)
                elif len(call) == per_call:
                    # (A first job alone counts as a call of the first round.)
                    starts_round = len(calls) % slots == 0
                    if per_call > 1 and starts_round:
                        held = call
                    else:
                        send(call)
                else:
                    continue
                call = []
            if held is not None:
                # The last call would run alone, one worker decoding its stack while the
                # others idle as their calls end: its jobs go one per call instead.
                for job in held:
                    send([job])
            if call:
                send(call)
        except Exception as exc:  # the jobs' source failed (e.g. undecodable audio)
            failed: asyncio.Future[list[TranscriptionResult]] = (
                asyncio.get_running_loop().create_future()
            )
            failed.set_exception(exc)
            order.put_nowait((failed, 0))
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()
        order.put_nowait(None)

    producer = asyncio.ensure_future(produce())
    try:
        while (next_result := await order.get()) is not None:
            call_results, index = next_result
            # Shielded: cancelling this request must not cancel one call alone, whose
            # slot would pass to the next call before the rest are cancelled below.
            result = (await asyncio.shield(call_results))[index]
            room.release()
            if result.error is not None:
                logger.error("runner failed: %s", result.error)
                raise InternalServerError()
            yield result
    finally:
        closed = True
        producer.cancel()
        for task in calls:
            task.cancel()
        # Wait until every call has let go (a job at the runner is abandoned, not waited for).
        await asyncio.gather(producer, *calls, return_exceptions=True)


async def _from_iterable(jobs: Iterable[TranscriptionJob]) -> AsyncIterator[TranscriptionJob]:
    for job in jobs:
        yield job
