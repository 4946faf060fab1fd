"""Cut audio into Whisper-sized windows as it is decoded, keeping only what is not yet cut.

The windows are those of a pass over the whole recording (Silero VAD speech, joined across
short pauses, at most 30 s each), but each comes out as soon as the speech after it has
started, and the audio before the earliest window still to come is let go.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_vad_model

from theo.audio import pcm16_to_float32
from theo.streaming_vad import Speech, StreamingVad
from theo.transcription import SAMPLE_RATE

WINDOW_SECONDS = 30.0
MAX_PAUSE_IN_WINDOW_SECONDS = 2.0
# The VAD settings long audio is cut with (a pause of 160 ms ends a speech span).
DEFAULT_VAD = VadOptions(max_speech_duration_s=WINDOW_SECONDS, min_silence_duration_ms=160)


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
    options: VadOptions = DEFAULT_VAD,
    on_held: Callable[[int], None] | None = None,
) -> Iterator[AudioWindow]:
    """Windows of the audio ``pieces`` make up (16 kHz, int16 or float32), in order, as known.

    Audio up to 30 s is one window unless ``vad``; longer audio is cut at pauses found by
    Silero VAD. Windows keep the silence inside them so timestamps stay real; stretches
    with no speech at all are skipped. ``on_held`` hears how many bytes of audio the cutter
    holds after each piece (for memory accounting).
    """
    window = int(WINDOW_SECONDS * SAMPLE_RATE)
    audio = _Retained()
    iterator = iter(pieces)
    if not vad:
        for piece in iterator:
            audio.append(piece)
            if audio.held > window:
                break
        else:  # the whole audio fits one window
            yield AudioWindow(0.0, audio.slice(0, audio.end))
            return
    streaming = StreamingVad(options, get_vad_model())
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
