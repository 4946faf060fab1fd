"""theo/realtime/decoder.py: final decodes go at once; partial re-decodes wait for room."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from theo.errors import ServiceUnavailableError
from theo.realtime.decoder import LiveDecoder
from theo.transcription import TranscriptionJob, TranscriptionResult


def job(seconds: float) -> TranscriptionJob:
    return TranscriptionJob.from_samples(np.zeros(int(seconds * 16000), dtype=np.float32))


class Recorder:
    """A live backend that logs its calls and lets the test finish final decodes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.finals = asyncio.Event()
        self.fail_partials = False

    async def transcribe(self, model: str, job: TranscriptionJob) -> TranscriptionResult:
        self.calls.append(("file", 1))
        return TranscriptionResult(text="file")

    async def transcribe_many(
        self, model: str, jobs: list[TranscriptionJob]
    ) -> list[TranscriptionResult]:
        self.calls.append(("file", len(jobs)))
        return [TranscriptionResult(text="file") for _ in jobs]

    async def transcribe_live(
        self, model: str, jobs: list[TranscriptionJob], *, partial: bool = False
    ) -> list[TranscriptionResult]:
        self.calls.append(("partial" if partial else "final", len(jobs)))
        if partial and self.fail_partials:
            raise ServiceUnavailableError("down")
        if not partial:
            await self.finals.wait()
        return [TranscriptionResult(text=f"{j.duration:.0f}") for j in jobs]

    async def readiness(self) -> dict[str, bool]:
        return {}

    async def warm_up(self) -> None:
        return None


def test_partials_wait_for_finals_then_go_in_batches() -> None:
    backend = Recorder()
    decoder = LiveDecoder(lambda: backend, partial_batch=4)

    async def main() -> list[str]:
        final = asyncio.create_task(decoder.final("tiny", job(1)))
        await asyncio.sleep(0)
        partials = [asyncio.create_task(decoder.partial("tiny", job(s))) for s in range(2, 8)]
        await asyncio.sleep(0.05)
        assert backend.calls == [("final", 1)]  # the partials wait for the final decode
        backend.finals.set()
        results = await asyncio.gather(final, *partials)
        return [r.text for r in results]

    assert asyncio.run(main()) == ["1", "2", "3", "4", "5", "6", "7"]
    assert backend.calls == [("final", 1), ("partial", 4), ("partial", 2)]


def test_a_cancelled_partial_is_not_sent_and_failures_reach_the_caller() -> None:
    backend = Recorder()
    backend.finals.set()
    decoder = LiveDecoder(lambda: backend, partial_batch=2)

    async def main() -> None:
        gone = asyncio.create_task(decoder.partial("tiny", job(1)))
        gone.cancel()
        backend.fail_partials = True
        with pytest.raises(ServiceUnavailableError):
            await decoder.partial("tiny", job(2))
        await decoder.close()

    asyncio.run(main())
    assert backend.calls == [("partial", 1)]


def test_a_backend_without_live_lanes_gets_file_jobs() -> None:
    class FileOnly:
        async def transcribe(self, model: str, job: TranscriptionJob) -> TranscriptionResult:
            return TranscriptionResult(text="file")

        async def transcribe_many(
            self, model: str, jobs: list[TranscriptionJob]
        ) -> list[TranscriptionResult]:
            return [TranscriptionResult(text="file") for _ in jobs]

        async def readiness(self) -> dict[str, bool]:
            return {}

        async def warm_up(self) -> None:
            return None

    decoder = LiveDecoder(lambda: FileOnly(), partial_batch=2)

    async def main() -> list[str]:
        return [(await decoder.final("m", job(1))).text, (await decoder.partial("m", job(1))).text]

    assert asyncio.run(main()) == ["file", "file"]
