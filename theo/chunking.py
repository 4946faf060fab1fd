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
# Whisper drops a short phrase at the very end of a window: the LJ chapter's windows ended
# "... by means of movable types. Now," (the next sentence did not fit) and "Now" was lost
# on five of six shifted copies. A window that cannot take the next speech leaves a last
# stretch of speech this short to the next window, which then starts with it.
SHORT_TAIL_SECONDS = 1.0


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

    def vad_options(self, max_speech_seconds: float = WINDOW_SECONDS) -> VadOptions:
        return VadOptions(
            threshold=self.threshold,
            speech_pad_ms=self.prefix_padding_ms,
            min_silence_duration_ms=self.silence_duration_ms,
            max_speech_duration_s=max_speech_seconds,
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


class WindowCutter:
    """Cuts audio fed piece by piece (16 kHz, int16 or float32) into windows, in order.

    Audio up to 30 s is one window unless ``vad`` or a ``chunking`` strategy is given;
    longer audio is cut at pauses found by Silero VAD (with the strategy's settings).
    Windows keep the silence inside them so timestamps stay real; stretches with no
    speech at all are skipped. Once the audio is known to be longer than 30 s, its
    windows are at most ``long_window_seconds`` (a long recording's). A full window leaves
    a last phrase shorter than :data:`SHORT_TAIL_SECONDS` to the next. :attr:`held_bytes`
    is the audio it holds now.
    """

    def __init__(
        self,
        *,
        vad: bool = False,
        chunking: ChunkingStrategy | None = None,
        long_window_seconds: float = WINDOW_SECONDS,
    ):
        self._window = int(WINDOW_SECONDS * SAMPLE_RATE)
        self._long_window = int(min(long_window_seconds, WINDOW_SECONDS) * SAMPLE_RATE)
        # Whisper tends to stop at a long pause and drop what follows it in the same
        # window, so a window only spans speech separated by short pauses.
        self._max_gap = int(MAX_PAUSE_IN_WINDOW_SECONDS * SAMPLE_RATE)
        self._audio = _Retained()
        # Silero splits longer speech at its quietest moment: a window's longest part.
        self._options = (chunking or DEFAULT_CHUNKING).vad_options(self._long_window / SAMPLE_RATE)
        # Without VAD, audio is held until it is known to be longer than one window.
        self._vad: StreamingVad | None = None
        self._always_vad = vad or chunking is not None
        self._span: list[int] | None = None  # the window being grown: [start, end]
        self._tail = 0  # where the last speech in the window being grown starts
        self._short_tail = int(SHORT_TAIL_SECONDS * SAMPLE_RATE)

    @property
    def held_bytes(self) -> int:
        return self._audio.held_bytes

    def feed(self, piece: np.ndarray) -> list[AudioWindow]:
        """The windows known once ``piece`` (the audio that follows the last one) is in."""
        self._audio.append(piece)
        if self._vad is None:
            if not self._always_vad and self._audio.held <= self._window:
                return []
            self._vad = StreamingVad(self._options, silero_model())
            piece = self._audio.slice(0, self._audio.end)  # all of it, the first time
        as_float = pcm16_to_float32(piece) if piece.dtype == np.int16 else piece
        windows = [w for speech in self._vad.feed(as_float) for w in self._take(speech)]
        keep_from = self._vad.earliest_open_sample
        if self._span is not None and keep_from - self._span[1] > self._max_gap:
            # No speech still to come can join the window: cut it now, and hold no more of
            # the silence after it.
            windows.append(self._cut(self._span))
            self._span = None
        if self._span is not None:
            keep_from = min(keep_from, self._span[0])
        self._audio.drop_before(keep_from)
        return windows

    def finish(self) -> list[AudioWindow]:
        """The remaining windows, once the audio has ended."""
        audio = self._audio
        if self._vad is None:  # the whole audio fits one window
            return [AudioWindow(0.0, audio.slice(0, audio.end))] if audio.end else []
        windows = [w for speech in self._vad.finish() for w in self._take(speech)]
        if self._span:
            windows.append(self._cut(self._span))
        self._span = None
        return windows

    def _take(self, speech: Speech) -> list[AudioWindow]:
        span = self._span
        # Whisper's encoder costs more per second on a longer input (docs/performance.md):
        # a long recording is cut into shorter windows.
        limit = self._long_window if self._audio.end > self._window else self._window
        tail, self._tail = self._tail, speech.start
        if span and speech.start - span[1] <= self._max_gap:
            if speech.end - span[0] <= limit:
                span[1] = speech.end
                return []
            # Full: a short last phrase starts the next window instead (SHORT_TAIL_SECONDS).
            if span[0] < tail and span[1] - tail < self._short_tail and speech.end - tail <= limit:
                self._span = [tail, speech.end]
                return [self._cut([span[0], tail])]
        self._span = [speech.start, min(speech.end, speech.start + limit)]
        return [self._cut(span)] if span else []

    def _cut(self, span: list[int]) -> AudioWindow:
        return AudioWindow(span[0] / SAMPLE_RATE, self._audio.slice(span[0], span[1]))


def cut_windows(
    pieces: Iterable[np.ndarray],
    *,
    vad: bool = False,
    chunking: ChunkingStrategy | None = None,
    long_window_seconds: float = WINDOW_SECONDS,
    on_held: Callable[[int], None] | None = None,
) -> Iterator[AudioWindow]:
    """The windows of the audio ``pieces`` make up, as :class:`WindowCutter` cuts them.

    ``on_held`` hears how many bytes of audio the cutter holds after each piece.
    """
    cutter = WindowCutter(vad=vad, chunking=chunking, long_window_seconds=long_window_seconds)
    for piece in pieces:
        yield from cutter.feed(piece)
        if on_held is not None:
            on_held(cutter.held_bytes)
    yield from cutter.finish()


def split_into_windows(
    samples: np.ndarray,
    *,
    vad: bool = False,
    chunking: ChunkingStrategy | None = None,
    long_window_seconds: float = WINDOW_SECONDS,
) -> list[AudioWindow]:
    """The windows of audio held whole in memory (see :func:`cut_windows`)."""
    windows = cut_windows(
        [samples], vad=vad, chunking=chunking, long_window_seconds=long_window_seconds
    )
    return list(windows)


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
