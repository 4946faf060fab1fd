"""Cut long audio into Whisper-sized windows, and stitch the windows' results back together.

The API service sends each window to the runner as its own job, so the windows of a
long file are batched with other requests' windows and never hold short requests back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from theo.transcription import SAMPLE_RATE, Segment, TranscriptionResult, Word

WINDOW_SECONDS = 30.0
MAX_PAUSE_IN_WINDOW_SECONDS = 2.0


@dataclass(frozen=True)
class ChunkingStrategy:
    """How Silero VAD finds the pauses a request's audio is cut at (OpenAI's ``server_vad``).

    The defaults are the settings long audio is cut with when a request names none.
    """

    threshold: float = 0.5
    # Silero pads each speech span on both sides (its ``speech_pad_ms``).
    prefix_padding_ms: int = 400
    # A pause at least this long ends a speech span.
    silence_duration_ms: int = 160

    def vad_options(self) -> VadOptions:
        return VadOptions(
            threshold=self.threshold,
            speech_pad_ms=self.prefix_padding_ms,
            min_silence_duration_ms=self.silence_duration_ms,
            max_speech_duration_s=WINDOW_SECONDS,
        )


DEFAULT_CHUNKING = ChunkingStrategy()


@dataclass(frozen=True)
class AudioWindow:
    """At most 30 s of audio that starts ``offset`` seconds into the file."""

    offset: float
    samples: np.ndarray


def split_into_windows(
    samples: np.ndarray, *, vad: bool = False, chunking: ChunkingStrategy | None = None
) -> list[AudioWindow]:
    """One window for audio up to 30 s; longer audio is cut at pauses found by Silero VAD.

    Windows keep the silence inside them so timestamps stay real; stretches with no
    speech at all are skipped. ``vad=True``, or a ``chunking`` strategy (whose VAD
    settings are then used), applies VAD to short audio too.
    """
    window = int(WINDOW_SECONDS * SAMPLE_RATE)
    if len(samples) <= window and not vad and chunking is None:
        return [AudioWindow(0.0, samples)]
    speech = get_speech_timestamps(samples, (chunking or DEFAULT_CHUNKING).vad_options())
    # Whisper tends to stop at a long pause and drop what follows it in the same window,
    # so a window only spans speech separated by short pauses.
    max_gap = int(MAX_PAUSE_IN_WINDOW_SECONDS * SAMPLE_RATE)
    spans: list[list[int]] = []
    for piece in speech:
        start, end = int(piece["start"]), int(piece["end"])
        if spans and start - spans[-1][1] <= max_gap and end - spans[-1][0] <= window:
            spans[-1][1] = end
        else:
            spans.append([start, min(end, start + window)])
    return [AudioWindow(start / SAMPLE_RATE, samples[start:end]) for start, end in spans]


def join_window_texts(texts: Iterable[str]) -> str:
    """The windows' texts, stripped, one space between them (empty ones left out).

    A stream sends the same text as deltas: each window's stripped text, after a space
    unless it is the first with any text.
    """
    return " ".join(text for text in (t.strip() for t in texts) if text)


def merge_window_results(
    results: list[TranscriptionResult], duration: float
) -> TranscriptionResult:
    """Join the windows' results in order: renumbered segments, one text, all words."""
    segments: list[Segment] = []
    words: list[Word] | None = None
    for result in results:
        for segment in result.segments:
            segments.append(segment.model_copy(update={"id": len(segments)}))
        if result.words is not None:
            words = (words or []) + result.words
    language = next((r.language for r in results if r.segments), None)
    if language is None:
        language = results[0].language if results else ""
    return TranscriptionResult(
        text=join_window_texts(r.text for r in results),
        language=language,
        duration=duration,
        segments=segments,
        words=words,
        batch_size=max((r.batch_size for r in results), default=1),
    )
