"""Send a request's windows to its model, a few at a time, and hand their results on in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence

from theo.errors import InternalServerError
from theo.http.backend import TranscriptionBackend
from theo.transcription import TranscriptionJob, TranscriptionResult

logger = logging.getLogger(__name__)


async def results_in_order(
    backend: TranscriptionBackend,
    model: str,
    jobs: Sequence[TranscriptionJob],
    *,
    in_flight: int,
    first_alone: bool = False,
) -> AsyncGenerator[TranscriptionResult, None]:
    """Each job's result, in the jobs' order, with at most ``in_flight`` jobs at the runner.

    A job that finishes early waits for the ones before it. A failed job raises (its
    ``TheoError``, or a 500 for a result that carries an error). Closing the iterator
    early (the client left, a job failed) cancels the jobs in progress, and the jobs not
    yet sent are never sent.

    ``first_alone``: the other jobs go once the first one's result is in. Sent together,
    the first windows share a batch and arrive together; alone, the first is decoded by
    itself (on an idle runner with all its threads), so a stream's first delta comes
    sooner at little cost to the whole.
    """
    gate = asyncio.Semaphore(in_flight)
    closed = False

    async def run(index: int, job: TranscriptionJob) -> TranscriptionResult:
        if first_alone and index > 0:
            await asyncio.wait({tasks[0]})
        # A long file's windows go to the runner a few at a time, so they interleave
        # with other requests' windows instead of queueing ahead of all of them.
        async with gate:
            if closed:  # its turn came as the request was being stopped
                raise asyncio.CancelledError()
            return await backend.transcribe(model, job)

    tasks = [asyncio.ensure_future(run(index, job)) for index, job in enumerate(jobs)]
    try:
        for task in tasks:
            # Shielded: cancelling this request must not cancel one window alone, whose
            # slot would pass to the next window before the rest are cancelled below.
            result = await asyncio.shield(task)
            if result.error is not None:
                logger.error("runner failed: %s", result.error)
                raise InternalServerError()
            yield result
    finally:
        closed = True
        for task in tasks:
            task.cancel()
        # Wait until every call has let go (a job at the runner is abandoned, not waited for).
        await asyncio.gather(*tasks, return_exceptions=True)
