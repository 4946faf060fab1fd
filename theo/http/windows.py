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
) -> AsyncGenerator[TranscriptionResult, None]:
    """Each job's result, in the jobs' order, with at most ``in_flight`` jobs at the runner.

    ``jobs`` may still be arriving (windows cut as the upload is decoded): the next one is
    asked for only while fewer than ``in_flight + ahead`` results are outstanding, so a long
    file is never decoded far ahead of the runner. A job that finishes early waits for the
    ones before it. A failed job raises (its ``TheoError``, or a 500 for a result that
    carries an error); so does a failure of ``jobs`` itself, in its place. Closing the
    iterator early (the client left, a job failed) cancels the jobs in progress, and the
    jobs not yet sent are never sent (nor cut).

    ``first_alone``: the other jobs go once the first one's result is in. Sent together,
    the first windows share a batch and arrive together; alone, the first is decoded by
    itself (on an idle runner with all its threads), so a stream's first delta comes
    sooner at little cost to the whole.
    """
    gate = asyncio.Semaphore(in_flight)
    room = asyncio.Semaphore(in_flight + ahead)
    order: asyncio.Queue[asyncio.Future[TranscriptionResult] | None] = asyncio.Queue()
    tasks: list[asyncio.Future[TranscriptionResult]] = []
    closed = False

    async def run(job: TranscriptionJob) -> TranscriptionResult:
        if first_alone and tasks and job is not first_job:
            await asyncio.wait({tasks[0]})
        # A long file's windows go to the runner a few at a time, so they interleave
        # with other requests' windows instead of queueing ahead of all of them.
        async with gate:
            if closed:  # its turn came as the request was being stopped
                raise asyncio.CancelledError()
            return await backend.transcribe(model, job)

    first_job: TranscriptionJob | None = None

    async def produce() -> None:
        nonlocal first_job
        source = aiter(jobs) if isinstance(jobs, AsyncIterable) else _from_iterable(jobs)
        try:
            async for job in source:
                await room.acquire()
                if first_job is None:
                    first_job = job
                task = asyncio.ensure_future(run(job))
                tasks.append(task)
                order.put_nowait(task)
        except Exception as exc:  # the jobs' source failed (e.g. undecodable audio)
            failed: asyncio.Future[TranscriptionResult] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            order.put_nowait(failed)
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()
        order.put_nowait(None)

    producer = asyncio.ensure_future(produce())
    try:
        while (next_result := await order.get()) is not None:
            # Shielded: cancelling this request must not cancel one window alone, whose
            # slot would pass to the next window before the rest are cancelled below.
            result = await asyncio.shield(next_result)
            room.release()
            if result.error is not None:
                logger.error("runner failed: %s", result.error)
                raise InternalServerError()
            yield result
    finally:
        closed = True
        producer.cancel()
        for task in tasks:
            task.cancel()
        # Wait until every call has let go (a job at the runner is abandoned, not waited for).
        await asyncio.gather(producer, *tasks, return_exceptions=True)


async def _from_iterable(jobs: Iterable[TranscriptionJob]) -> AsyncIterator[TranscriptionJob]:
    for job in jobs:
        yield job
