"""theo/long_form.py: a long recording's windows go as long-form jobs, within the model's slots."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.unit.fakes import FakeBackend
from theo.errors import InternalServerError
from theo.long_form import (
    LONG_FORM_WINDOWS_IN_FLIGHT,
    LONG_FORM_WINDOWS_PER_CALL,
    transcribe_in_order,
)
from theo.transcription import TranscriptionJob, TranscriptionResult

MODEL = "faster-whisper-base"


def window(offset: float, **options: object) -> TranscriptionJob:
    return TranscriptionJob.from_pcm16(np.zeros(16_000, dtype=np.int16), offset=offset, **options)


class SlowBackend(FakeBackend):
    """Answers after ``delay`` s in the ``languages`` given per offset; counts calls at once."""

    def __init__(self, delay: float = 0.0, languages: dict[float, str] | None = None):
        super().__init__()
        self.delay = delay
        self.languages = languages or {}
        self.now = 0
        self.most = 0

    async def transcribe(self, model: str, job: TranscriptionJob) -> TranscriptionResult:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(self.delay)
            result = await super().transcribe(model, job)
        finally:
            self.now -= 1
        return result.model_copy(update={"language": self.languages.get(job.offset, "en")})


def run(backend: FakeBackend, jobs: list[TranscriptionJob], **options: object) -> list[float]:
    async def collect() -> list[float]:
        results = transcribe_in_order(backend, MODEL, jobs, in_flight=4, **options)  # type: ignore[arg-type]
        return [result.segments[0].start async for result in results]

    return asyncio.run(collect())


def test_a_one_window_request_is_sent_as_it_always_was() -> None:
    backend = FakeBackend()
    assert run(backend, [window(0.0, language=None)]) == [0.0]
    [(_, job)] = backend.calls
    assert job.long_form is False and job.language_hint is None


def test_a_long_recordings_windows_are_long_form_jobs_in_order() -> None:
    backend = SlowBackend()
    offsets = [0.0, 30.0, 60.0, 90.0, 120.0]
    assert run(backend, [window(o) for o in offsets]) == offsets
    assert [job.offset for _, job in backend.calls] == offsets
    assert all(job.long_form for _, job in backend.calls)


def test_a_long_recordings_windows_go_two_per_call_for_the_runner_to_stack() -> None:
    backend = SlowBackend()
    offsets = [30.0 * i for i in range(7)]
    assert run(backend, [window(o) for o in offsets]) == offsets
    # Six in calls of two (each one stack at the runner), the odd last one alone.
    assert backend.many_calls == [LONG_FORM_WINDOWS_PER_CALL] * 3 + [1]


@pytest.mark.parametrize(
    ("windows", "calls"),
    [
        (2, [1, 1]),  # side by side on both workers, not one stack on one
        (3, [2, 1]),
        (4, [2, 2]),  # one round: a stack on each worker
        (5, [2, 2, 1]),
        (6, [2, 2, 1, 1]),  # the last two would be a round of one call: split
        (8, [2, 2, 2, 2]),
    ],
)
def test_a_last_call_that_would_start_a_round_alone_is_split(
    windows: int, calls: list[int]
) -> None:
    backend = SlowBackend()
    offsets = [30.0 * i for i in range(windows)]
    assert run(backend, [window(o) for o in offsets]) == offsets
    assert backend.many_calls == calls


@pytest.mark.parametrize(("windows", "calls"), [(3, [1, 2]), (5, [1, 2, 1, 1]), (7, [1, 2, 2, 2])])
def test_a_streamed_recordings_first_window_goes_alone_then_two_per_call(
    windows: int, calls: list[int]
) -> None:
    # The first window, alone, and the next call make the first round.
    backend = SlowBackend()
    results = run(backend, [window(30.0 * i) for i in range(windows)], first_alone=True)
    assert len(results) == windows
    assert backend.many_calls == calls


def test_later_windows_carry_the_language_heard_so_far() -> None:
    backend = SlowBackend(languages={0.0: "fr", 30.0: "fr", 60.0: "fr", 90.0: "de"})
    run(backend, [window(30.0 * i) for i in range(6)], first_alone=True)
    hints = [job.language_hint for _, job in sorted(backend.calls, key=lambda c: c[1].offset)]
    # The first round (the first window alone, then two) goes unheard; the others once it
    # is heard (in French).
    assert hints == [None, None, None, "fr", "fr", "fr"]


def test_a_long_recordings_windows_ask_for_the_encoder_input_given() -> None:
    backend = FakeBackend()
    run(backend, [window(30.0 * i) for i in range(3)], encoder_seconds=15.0)
    assert [job.encoder_seconds for _, job in backend.calls] == [15.0, 15.0, 15.0]
    alone = FakeBackend()  # a request of one window keeps Whisper's 30 s
    run(alone, [window(0.0)], encoder_seconds=15.0)
    assert [job.encoder_seconds for _, job in alone.calls] == [None]


def test_no_hint_when_the_request_names_its_language() -> None:
    backend = SlowBackend(languages={0.0: "fr"})
    run(backend, [window(30.0 * i, language="fr") for i in range(3)], first_alone=True)
    assert [job.language_hint for _, job in backend.calls] == [None, None, None]


def test_long_recordings_share_the_models_long_form_slots() -> None:
    backend = SlowBackend(delay=0.02)

    async def three_requests() -> None:
        async def one() -> list[float]:
            jobs = [window(30.0 * i) for i in range(6)]
            results = transcribe_in_order(backend, MODEL, jobs, in_flight=4)
            return [r.segments[0].start async for r in results]

        outcomes = await asyncio.gather(one(), one(), one())
        assert all(starts == [30.0 * i for i in range(6)] for starts in outcomes)

    asyncio.run(three_requests())
    assert backend.most == LONG_FORM_WINDOWS_IN_FLIGHT


def test_a_failed_window_fails_the_request() -> None:
    backend = FakeBackend(failures=["boom"])
    with pytest.raises(InternalServerError):
        run(backend, [window(0.0), window(30.0)])


def test_an_empty_request_has_no_results() -> None:
    assert run(FakeBackend(), []) == []
