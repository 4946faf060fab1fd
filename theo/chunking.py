"""Cut audio into Whisper-sized windows as it is decoded, and stitch their results together.

The API service sends each window to the runner as its own job, so the windows of a
long file are batched with other requests' windows and never hold short requests back.
Windows are cut from the decoded audio piece by piece (theo/streaming_vad.py finds the
speech): each comes out as soon as the speech after it has started, and the audio
before the earliest window still to come is let go, so a long upload is never held whole.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions

from theo.audio import pcm16_to_float32
from theo.streaming_vad import Speech, StreamingVad, silero_model
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


class _Retained:
    """The decoded audio from sample ``start`` on, as the pieces it arrived in."""

    def __init__(self) -> None:
        self._pieces: deque[tuple[int, np.ndarray]] = deque()  # (first sample, samples)
        self.start = 0
        self.end = 0

    def append(self, piece: np.ndarray) -> None:
        self._pieces.append((self.end, piece))
        self.end += len(piece)

    def slice(self, start: int, end: int) -> np.ndarray:
        parts = [
            piece[max(start - first, 0) : end - first]
            for first, piece in self._pieces
            if first < end and first + len(piece) > start
        ]
        return np.concatenate(parts) if len(parts) != 1 else parts[0].copy()

    def drop_before(self, sample: int) -> None:
        """Let go of whole pieces that end before ``sample``."""
        while self._pieces and self._pieces[0][0] + len(self._pieces[0][1]) <= sample:
            first, piece = self._pieces.popleft()
            self.start = first + len(piece)

    @property
    def held(self) -> int:
        """Samples held now."""
        return self.end - self.start

    @property
    def held_bytes(self) -> int:
        return sum(piece.nbytes for _, piece in self._pieces)


def cut_windows(
    pieces: Iterable[np.ndarray],
    *,
    vad: bool = False,
    chunking: ChunkingStrategy | None = None,
    on_held: Callable[[int], None] | None = None,
) -> Iterator[AudioWindow]:
    """Windows of the audio ``pieces`` make up (16 kHz, int16 or float32), in order, as known.

    Audio up to 30 s is one window unless ``vad`` or a ``chunking`` strategy is given;
    longer audio is cut at pauses found by Silero VAD (with the strategy's settings).
    Windows keep the silence inside them so timestamps stay real; stretches with no
    speech at all are skipped. ``on_held`` hears how many bytes of audio the cutter holds
    after each piece (for memory accounting).
    """
    window = int(WINDOW_SECONDS * SAMPLE_RATE)
    audio = _Retained()
    iterator = iter(pieces)
    if not vad and chunking is None:
        for piece in iterator:
            audio.append(piece)
            if audio.held > window:
                break
        else:  # the whole audio fits one window
            yield AudioWindow(0.0, audio.slice(0, audio.end))
            return
    streaming = StreamingVad((chunking or DEFAULT_CHUNKING).vad_options(), silero_model())
    # Whisper tends to stop at a long pause and drop what follows it in the same window,
    # so a window only spans speech separated by short pauses.
    max_gap = int(MAX_PAUSE_IN_WINDOW_SECONDS * SAMPLE_RATE)
    span: list[int] | None = None  # the window being grown: [start, end]

    def take(speech: Speech) -> Iterator[AudioWindow]:
        nonlocal span
        if span and speech.start - span[1] <= max_gap and speech.end - span[0] <= window:
            span[1] = speech.end
            return
        if span:
            yield AudioWindow(span[0] / SAMPLE_RATE, audio.slice(span[0], span[1]))
        span = [speech.start, min(speech.end, speech.start + window)]

    def feed(piece: np.ndarray) -> Iterator[AudioWindow]:
        as_float = pcm16_to_float32(piece) if piece.dtype == np.int16 else piece
        for speech in streaming.feed(as_float):
            yield from take(speech)
        keep_from = streaming.earliest_open_sample
        if span is not None:
            keep_from = min(keep_from, span[0])
        audio.drop_before(keep_from)
        if on_held is not None:
            on_held(audio.held_bytes)

    already = audio.slice(0, audio.end) if audio.held else None
    if already is not None:
        yield from feed(already)
    for piece in iterator:
        audio.append(piece)
        yield from feed(piece)
    for speech in streaming.finish():
        yield from take(speech)
    if span:
        yield AudioWindow(span[0] / SAMPLE_RATE, audio.slice(span[0], span[1]))


def split_into_windows(
    samples: np.ndarray, *, vad: bool = False, chunking: ChunkingStrategy | None = None
) -> list[AudioWindow]:
    """The windows of audio held whole in memory (see :func:`cut_windows`)."""
    return list(cut_windows([samples], vad=vad, chunking=chunking))


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
