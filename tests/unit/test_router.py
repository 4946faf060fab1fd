"""theo/serving/router.py: runner failures become 503/500, and a recycled connection is retried."""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import numpy as np
import pytest
from bentoml.exceptions import BentoMLException, ServiceUnavailable

from theo.errors import InternalServerError, ModelNotFoundError, ServiceUnavailableError
from theo.serving.router import RunnerRouter
from theo.transcription import TranscriptionJob, TranscriptionResult

JOB = TranscriptionJob.from_samples(np.zeros(1600, dtype=np.float32))


class FakeRunner:
    """Stands in for a BentoML dependency: each call pops the next outcome."""

    def __init__(self, *outcomes: Any, ready: bool | Exception = True):
        self.outcomes = list(outcomes)
        self.ready = ready
        self.calls = 0
        self.to_async = self

    async def transcribe(self, jobs: list[TranscriptionJob]) -> list[Any]:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return [outcome]

    async def is_ready(self, timeout: int | None = None) -> bool:
        if isinstance(self.ready, Exception):
            raise self.ready
        return self.ready


def transcribe(runner: FakeRunner, model: str = "tiny") -> TranscriptionResult:
    pool = RunnerRouter({"tiny": runner})

    async def main() -> TranscriptionResult:
        return await pool.transcribe(model, JOB)

    return anyio.run(main)


def test_result_is_returned_and_validated() -> None:
    assert transcribe(FakeRunner({"text": "hello"})).text == "hello"


def test_a_dropped_connection_is_retried_once_when_the_runner_is_up() -> None:
    # What BentoML's client does every runner_connection.max_requests calls.
    runner = FakeRunner(aiohttp.ServerDisconnectedError(), TranscriptionResult(text="again"))
    assert transcribe(runner).text == "again"
    assert runner.calls == 2


def test_a_dead_runner_is_503_at_once() -> None:
    runner = FakeRunner(aiohttp.ServerDisconnectedError(), ready=False)
    with pytest.raises(ServiceUnavailableError, match="unreachable"):
        transcribe(runner)
    assert runner.calls == 1


def test_a_readiness_probe_that_times_out_counts_as_down() -> None:
    runner = FakeRunner(aiohttp.ServerDisconnectedError(), ready=TimeoutError())
    with pytest.raises(ServiceUnavailableError):
        transcribe(runner)


def test_a_second_drop_is_503() -> None:
    runner = FakeRunner(aiohttp.ServerDisconnectedError(), aiohttp.ClientOSError())
    with pytest.raises(ServiceUnavailableError):
        transcribe(runner)
    assert runner.calls == 2


@pytest.mark.parametrize("error", [ServiceUnavailable("busy"), TimeoutError()])
def test_an_unavailable_or_slow_runner_is_503(error: Exception) -> None:
    with pytest.raises(ServiceUnavailableError):
        transcribe(FakeRunner(error))


def test_any_other_runner_error_is_a_500_without_details() -> None:
    with pytest.raises(InternalServerError) as raised:
        transcribe(FakeRunner(BentoMLException("secret stack")))
    assert "secret" not in raised.value.message


def test_an_unknown_model_is_404() -> None:
    with pytest.raises(ModelNotFoundError):
        transcribe(FakeRunner(), model="nope")


def test_readiness_reports_each_model() -> None:
    pool = RunnerRouter({"up": FakeRunner(), "down": FakeRunner(ready=False)})
    assert anyio.run(pool.readiness) == {"down": False, "up": True}


def test_after_a_runner_is_lost_calls_are_probed_first() -> None:
    runner = FakeRunner(aiohttp.ServerDisconnectedError(), {"text": "back"}, ready=False)
    pool = RunnerRouter({"tiny": runner})

    async def main() -> list[str]:
        seen = []
        for _ in range(2):
            try:
                seen.append((await pool.transcribe("tiny", JOB)).text)
            except ServiceUnavailableError as error:
                seen.append(error.message)
        runner.ready = True  # respawned
        seen.append((await pool.transcribe("tiny", JOB)).text)
        return seen

    first, second, third = anyio.run(main)
    assert "unreachable" in first
    assert "down" in second  # refused after a probe, without a call into the dead socket
    assert third == "back"
    assert runner.calls == 2


class LaneRunner:
    """A runner with two batching lanes whose calls wait until released."""

    def __init__(self) -> None:
        self.to_async = self
        self.calls: list[str] = []
        self.release = anyio.Event()

    def __getattr__(self, lane: str) -> Any:
        async def call(jobs: list[TranscriptionJob]) -> list[Any]:
            self.calls.append(lane)
            await self.release.wait()
            return [{"text": lane}]

        return call


def test_concurrent_calls_spread_over_the_lanes() -> None:
    runner = LaneRunner()
    pool = RunnerRouter({"tiny": runner}, lanes={"tiny": ["transcribe", "transcribe_1"]})
    texts: list[str] = []

    async def one() -> None:
        texts.append((await pool.transcribe("tiny", JOB)).text)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(one)
                await anyio.sleep(0)  # each call picks its lane before the next starts
            runner.release.set()
        async with anyio.create_task_group() as group:
            group.start_soon(one)  # every lane is free again: the first one

    anyio.run(main)
    assert runner.calls == ["transcribe", "transcribe_1"] * 2 + ["transcribe"]
    assert sorted(texts) == ["transcribe"] * 3 + ["transcribe_1"] * 2


class WarmUpRunner:
    """Records the size of each group of concurrent calls per lane; ready after a probe."""

    def __init__(self, not_ready_probes: int = 0) -> None:
        self.to_async = self
        self.not_ready_probes = not_ready_probes
        self.groups: list[tuple[str, int]] = []
        self._running: dict[str, int] = {}

    async def is_ready(self, timeout: int | None = None) -> bool:
        if self.not_ready_probes:
            self.not_ready_probes -= 1
            return False
        return True

    def __getattr__(self, lane: str) -> Any:
        async def call(jobs: list[TranscriptionJob]) -> list[Any]:
            assert not any(jobs[0].samples()), "warm-up jobs are silent"
            self._running[lane] = self._running.get(lane, 0) + 1
            await anyio.sleep(0.01)  # the others of the group start meanwhile
            if self._running[lane]:
                self.groups.append((lane, self._running[lane]))
                self._running[lane] = 0
            return [{}]

        return call


def test_warm_up_waits_for_the_runner_then_trains_every_lane_batcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("theo.serving.router.asyncio.sleep", lambda _: anyio.sleep(0))
    runner = WarmUpRunner(not_ready_probes=2)
    pool = RunnerRouter({"tiny": runner}, lanes={"tiny": ["transcribe", "transcribe_1"]})
    anyio.run(pool.warm_up)
    expected = [1] * 9 + [2, 3]
    assert runner.groups == [("transcribe", n) for n in expected] + [
        ("transcribe_1", n) for n in expected
    ]
    assert runner.not_ready_probes == 0


def test_a_failed_warm_up_is_only_logged() -> None:
    runner = FakeRunner(ServiceUnavailable("busy"))
    anyio.run(RunnerRouter({"tiny": runner}).warm_up)
    assert runner.calls == 1
