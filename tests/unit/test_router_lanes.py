"""theo/serving/router.py's dedicated lanes: long recordings' windows and live jobs never
take a file lane (a lane runs one batch at a time), live partials take their own."""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np

from theo.serving.router import RunnerRouter
from theo.serving.runner import DEDICATED_LANES, LIVE_API_NAMES, LONG_FORM_LANES
from theo.transcription import TranscriptionJob

JOB = TranscriptionJob.from_samples(np.zeros(1600, dtype=np.float32))
FILE_LANES = ["transcribe", "transcribe_1"]


class LaneRunner:
    """A runner whose lanes record their calls and hold them until released."""

    def __init__(self) -> None:
        self.to_async = self
        self.calls: list[tuple[str, int]] = []
        self.release = anyio.Event()

    async def is_ready(self, timeout: int | None = None) -> bool:
        return True

    def __getattr__(self, lane: str) -> Any:
        async def call(jobs: list[TranscriptionJob]) -> list[Any]:
            self.calls.append((lane, len(jobs)))
            await self.release.wait()
            return [{"text": lane} for _ in jobs]

        return call


def router(runner: LaneRunner, lanes: list[str]) -> RunnerRouter:
    return RunnerRouter({"tiny": runner}, lanes={"tiny": lanes})


def test_live_finals_spread_over_the_live_lanes_and_partials_take_theirs() -> None:
    runner = LaneRunner()
    pool = router(runner, [*FILE_LANES, *LIVE_API_NAMES])

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(2):
                group.start_soon(pool.transcribe_live, "tiny", [JOB])
                await anyio.sleep(0)
            group.start_soon(lambda: pool.transcribe_live("tiny", [JOB, JOB], partial=True))
            await anyio.sleep(0)
            group.start_soon(pool.transcribe, "tiny", JOB)
            await anyio.sleep(0)
            runner.release.set()

    anyio.run(main)
    assert runner.calls == [
        ("transcribe_live", 1),
        ("transcribe_live_1", 1),
        ("transcribe_partial", 2),  # one call: batched as one
        ("transcribe", 1),  # a file's window: a file lane
    ]


def test_a_runner_without_live_lanes_runs_live_jobs_on_its_file_lanes() -> None:
    runner = LaneRunner()
    runner.release.set()
    pool = router(runner, FILE_LANES)

    async def main() -> list[str]:
        finals = await pool.transcribe_live("tiny", [JOB])
        partials = await pool.transcribe_live("tiny", [JOB], partial=True)
        return [r.text for r in finals + partials]

    assert anyio.run(main) == ["transcribe", "transcribe"]


def test_warm_up_trains_the_dedicated_lanes_too() -> None:
    runner = LaneRunner()
    runner.release.set()
    pool = router(runner, [*FILE_LANES, *DEDICATED_LANES])
    anyio.run(pool.warm_up)
    assert {lane for lane, _ in runner.calls} == {*FILE_LANES, *DEDICATED_LANES}


LONG_FORM_JOB = JOB.model_copy(update={"long_form": True})


def test_long_recordings_windows_take_their_lanes_and_a_short_job_a_free_file_lane() -> None:
    runner = LaneRunner()
    pool = router(runner, [*FILE_LANES, *DEDICATED_LANES])

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(pool.transcribe, "tiny", LONG_FORM_JOB)
                await anyio.sleep(0)
            group.start_soon(pool.transcribe, "tiny", JOB)
            await anyio.sleep(0)
            runner.release.set()

    anyio.run(main)
    assert [lane for lane, _ in runner.calls] == [
        *LONG_FORM_LANES,
        LONG_FORM_LANES[0],  # the least busy long-form lane, not an idle file lane
        "transcribe",
    ]


def test_a_long_recordings_windows_sent_together_are_one_call_on_one_long_form_lane() -> None:
    runner = LaneRunner()
    pool = router(runner, [*FILE_LANES, *DEDICATED_LANES])

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(2):
                group.start_soon(pool.transcribe_many, "tiny", [LONG_FORM_JOB, LONG_FORM_JOB])
                await anyio.sleep(0)
            group.start_soon(pool.transcribe_many, "tiny", [JOB, LONG_FORM_JOB])
            await anyio.sleep(0)
            runner.release.set()

    anyio.run(main)
    assert runner.calls == [
        (LONG_FORM_LANES[0], 2),
        (LONG_FORM_LANES[1], 2),
        ("transcribe", 2),  # not all long-form: a file lane
    ]


def test_a_runner_without_long_form_lanes_runs_their_windows_on_its_file_lanes() -> None:
    runner = LaneRunner()
    runner.release.set()
    pool = router(runner, [*FILE_LANES, *LIVE_API_NAMES])
    result = anyio.run(pool.transcribe, "tiny", LONG_FORM_JOB)
    assert result.text == "transcribe"
