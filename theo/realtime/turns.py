"""A session's input audio, cut into utterances: by server VAD, at 30 s, or when the client commits.

:class:`SpeechInput` holds the audio not yet committed and its Silero scores, and reports
where utterances start and end; the session takes each ended utterance's audio out.
Indices count 16 kHz samples since the session began.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from theo.realtime.audio import SampleBuffer
from theo.realtime.config import ServerVad
from theo.realtime.vad import SpeechEnd, SpeechFrames, SpeechStart, TurnDetector, has_speech
from theo.streaming_vad import FRAME
from theo.transcription import SAMPLE_RATE

# Whisper's window: an utterance is committed at this length at the latest.
MAX_UTTERANCE_SAMPLES = 30 * SAMPLE_RATE
# A 30-s utterance is cut at the least speech-like frame of its last seconds, not mid-word.
CUT_SEARCH_SAMPLES = 10 * SAMPLE_RATE
# The threshold that decides whether a client-committed utterance holds speech at all.
DEFAULT_THRESHOLD = ServerVad().threshold


@dataclass(frozen=True)
class UtteranceStarted:
    """Speech began; the utterance starts at ``start`` (its prefix padding included)."""

    start: int


@dataclass(frozen=True)
class UtteranceEnded:
    """The utterance from ``start`` to ``end`` is complete: silence followed it
    (``speech_stopped``), or it reached 30 s and goes on in a new one. Its last frame of
    speech ends at ``last_speech``."""

    start: int
    end: int
    speech_stopped: bool
    last_speech: int = 0


Turn = UtteranceStarted | UtteranceEnded


class SpeechInput:
    """Uncommitted audio, its speech scores, and (with server VAD) the utterance in progress."""

    def __init__(self, vad_model: Any, turn_detection: ServerVad | None):
        self.buffer = SampleBuffer()
        self._frames = SpeechFrames(vad_model)
        self._scores = np.zeros(0, dtype=np.float32)
        self._scores_start = 0  # frame index of _scores[0]
        self.turn_detection = turn_detection
        self._detector = TurnDetector(turn_detection) if turn_detection else None
        # The utterance in progress: with server VAD, from speech start; without, all of
        # the uncommitted audio.
        self.open_start: int | None = None if self._detector else 0
        self.last_speech = 0  # where the last frame at or above the threshold ends

    @property
    def speaking(self) -> bool:
        return self._detector is not None and self.open_start is not None

    @property
    def threshold(self) -> float:
        return self.turn_detection.threshold if self.turn_detection else DEFAULT_THRESHOLD

    def configure(self, turn_detection: ServerVad | None) -> None:
        """New turn detection settings; an utterance in progress is forgotten (not its audio)."""
        self.turn_detection = turn_detection
        self._detector = TurnDetector(turn_detection) if turn_detection else None
        self.open_start = None if self._detector else self.buffer.start

    def feed(self, samples: np.ndarray) -> list[Turn]:
        """Append audio; the utterances it starts and ends, in order."""
        self.buffer.append(samples)
        audio = self._frames.split(samples)
        scores = self._frames.score(audio)
        first = self._frames.frames - len(scores)
        turns: list[Turn] = []
        for offset in range(len(scores)):
            frame = first + offset
            if scores[offset] >= self.threshold:
                self.last_speech = (frame + 1) * FRAME
            if self._detector is not None:
                event = self._detector.step(frame, float(scores[offset]))
                if isinstance(event, SpeechStart):
                    padding = self._padding_samples()
                    self.open_start = max(self.buffer.start, event.sample - padding)
                    turns.append(UtteranceStarted(self.open_start))
                elif isinstance(event, SpeechEnd) and self.open_start is not None:
                    ended = UtteranceEnded(self.open_start, event.sample, True, self.last_speech)
                    turns.append(ended)
                    self.open_start = None
                    # What follows is also scored afresh (SpeechFrames says why).
                    scores[offset + 1 :] = self._frames.restart(audio, offset + 1)
            start = self.open_start
            if start is not None and (frame + 1) * FRAME - start >= MAX_UTTERANCE_SAMPLES:
                cut = self._cut_point(start, (frame + 1) * FRAME, scores[: offset + 1])
                turns.append(UtteranceEnded(start, cut, False, min(self.last_speech, cut)))
                self.open_start = cut
                if self._detector is not None:
                    turns.append(UtteranceStarted(cut))
        self._scores = np.concatenate([self._scores, scores])
        return turns

    def take(self, start: int, end: int) -> tuple[np.ndarray, bool]:
        """The audio of ``start``-``end`` and whether it holds speech; the audio before
        ``end`` is let go."""
        samples = self.buffer.slice(start, end)
        first = start // FRAME - self._scores_start
        last = -(-end // FRAME) - self._scores_start
        speech = has_speech(self._scores[max(first, 0) : max(last, 0)], self.threshold)
        self.buffer.drop_before(end)
        if self._detector is None:
            self.open_start = self.buffer.start
        self._forget_scores()
        return samples, speech

    def end_utterance(self) -> None:
        """The client committed the utterance in progress: speech must start anew."""
        if self._detector is not None:
            self._detector.reset()
            self.open_start = None

    def clear(self) -> None:
        """Drop the uncommitted audio and any utterance in progress."""
        self.buffer.drop_before(self.buffer.end)
        self.end_utterance()
        self._frames.reset()
        if self._detector is None:
            self.open_start = self.buffer.start
        self._forget_scores()

    def trim_idle(self) -> None:
        """With server VAD and no speech, keep only what a next utterance's padding needs."""
        if self._detector is not None and self.open_start is None:
            self.buffer.drop_before(self.buffer.end - self._padding_samples() - FRAME)
            self._forget_scores()

    def _padding_samples(self) -> int:
        padding_ms = self.turn_detection.prefix_padding_ms if self.turn_detection else 0
        return padding_ms * SAMPLE_RATE // 1000

    def _cut_point(self, start: int, end: int, recent: np.ndarray) -> int:
        """Where to end a 30-s utterance: after its least speech-like frame near the end.

        ``recent``: the scores of this feed's frames up to ``end`` (not yet stored).
        """
        scores = np.concatenate([self._scores, recent])
        first = max(start + MAX_UTTERANCE_SAMPLES - CUT_SEARCH_SAMPLES, start) // FRAME + 1
        last = end // FRAME  # frames ending at or before ``end``
        window = scores[first - self._scores_start : last - self._scores_start]
        if not len(window):
            return end
        # The latest of the quietest frames, so the utterance keeps as much as it can.
        quietest = len(window) - 1 - int(np.argmin(window[::-1]))
        return (first + quietest + 1) * FRAME

    def _forget_scores(self) -> None:
        keep_from = self.buffer.start // FRAME
        drop = keep_from - self._scores_start
        if drop > 0:
            self._scores = self._scores[drop:]
            self._scores_start = keep_from
