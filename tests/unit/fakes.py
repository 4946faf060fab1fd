"""A fake transcription backend and sample results, for tests that must not load a model."""

from __future__ import annotations

import asyncio

from theo.errors import ServiceUnavailableError
from theo.http.backend import TranscriptionBackend
from theo.transcription import Segment, TranscriptionJob, TranscriptionResult, Word


def two_segment_result(
    *, language: str = "en", duration: float = 5.25, with_words: bool = False, offset: float = 0.0
) -> TranscriptionResult:
    """A result with two segments (0-2.5 s and 2.5-5.25 s after ``offset``) and maybe words."""
    words = [
        Word(word=" Hello", start=offset + 0.0, end=offset + 0.8, probability=0.9),
        Word(word=" there.", start=offset + 0.8, end=offset + 2.5, probability=0.8),
        Word(word=" General", start=offset + 2.5, end=offset + 3.5, probability=0.95),
        Word(word=" Kenobi.", start=offset + 3.5, end=offset + 5.25, probability=0.7),
    ]
    segments = [
        Segment(
            id=0,
            seek=0,
            start=offset + 0.0,
            end=offset + 2.5,
            text=" Hello there.",
            tokens=[50363, 2425, 612, 13],
            temperature=0.0,
            avg_logprob=-0.25,
            compression_ratio=0.9,
            no_speech_prob=0.01,
            words=words[:2] if with_words else None,
        ),
        Segment(
            id=1,
            seek=250,
            start=offset + 2.5,
            end=offset + 5.25,
            text=" General Kenobi.",
            tokens=[3611, 50076, 13],
            temperature=0.0,
            avg_logprob=-0.5,
            compression_ratio=1.1,
            no_speech_prob=0.02,
            words=words[2:] if with_words else None,
        ),
    ]
    return TranscriptionResult(
        text="Hello there. General Kenobi.",
        language=language,
        duration=duration,
        segments=segments,
        words=words if with_words else None,
    )


class FakeBackend:
    """Implements :class:`theo.http.backend.TranscriptionBackend` without any model.

    Answers each job with :func:`two_segment_result`, shaped by the job as the real engine
    would be (duration from the audio, timestamps from the window's offset, words only when
    asked for). ``failures`` are raised
    (or, for strings, returned as ``result.error``) by the next calls, one per call.
    """

    def __init__(
        self,
        *,
        language: str = "en",
        ready: dict[str, bool] | None = None,
        failures: list[BaseException | str] | None = None,
    ):
        self.language = language
        self.ready = ready if ready is not None else {}
        self.failures = list(failures or [])
        self.calls: list[tuple[str, TranscriptionJob]] = []
        self.many_calls: list[int] = []  # the jobs of each transcribe_many call
        self.warmed_up = False

    async def transcribe(self, model: str, job: TranscriptionJob) -> TranscriptionResult:
        self.calls.append((model, job))
        result = two_segment_result(
            language=job.language or self.language,
            duration=job.duration,
            with_words=job.word_timestamps,
            offset=job.offset,
        )
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, str):
                return result.model_copy(update={"error": failure})
            raise failure
        return result

    async def transcribe_many(
        self, model: str, jobs: list[TranscriptionJob]
    ) -> list[TranscriptionResult]:
        self.many_calls.append(len(jobs))
        return list(await asyncio.gather(*(self.transcribe(model, job) for job in jobs)))

    async def warm_up(self) -> None:
        self.warmed_up = True

    async def readiness(self) -> dict[str, bool]:
        return dict(self.ready)


class BackendSlot:
    """The app's backend dependency over a backend a test may set later (None: starting)."""

    def __init__(self, backend: TranscriptionBackend | None):
        self.backend = backend

    def __call__(self) -> TranscriptionBackend:
        if self.backend is None:
            raise ServiceUnavailableError("The model runners are starting; retry shortly.")
        return self.backend
