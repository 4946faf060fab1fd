"""Server VAD for live audio: Silero speech probabilities per 32 ms frame, and turn detection.

Silero (faster-whisper ships the model) scores each 512-sample frame as audio arrives; its
state carries from frame to frame, so the scores do not depend on how the audio was cut.
:class:`TurnDetector` turns the scores into speech started / stopped, with the session's
threshold and silence duration; an utterance with too little speech in it is not decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from theo.realtime.config import ServerVad
from theo.streaming_vad import FRAME, SpeechProbabilities
from theo.transcription import SAMPLE_RATE

# Silero's hysteresis (faster-whisper's neg_threshold): a frame ends speech below this much
# under the threshold; frames in between continue whatever they follow.
_HYSTERESIS = 0.15
# Less speech than this in an utterance is a click or a breath: its transcript is empty
# rather than what Whisper makes of noise ("Thank you.").
MIN_SPEECH_SECONDS = 0.1


class SpeechFrames:
    """Silero's speech probabilities of a stream's whole frames, as its samples arrive.

    Silero's state carries from frame to frame, and so it adapts to the level of what it
    heard: carried on from loud speech, it scores quieter speech that follows it 0.5 lower
    for a second or two, and a next speaker's first words would be missed; reset, it scores
    the first words after a short pause lower. So each frame is scored twice, with the state
    carried since the stream began and with one reset when an utterance ends
    (:meth:`restart`), and counts as speech if either says so.
    """

    def __init__(self, session: Any):
        self._session = session  # Silero's ONNX session (theo.streaming_vad.silero_model)
        self._carried = SpeechProbabilities(session)
        self._fresh = SpeechProbabilities(session)
        self._pending = np.zeros(0, dtype=np.float32)
        self._last_carried = np.zeros(0, dtype=np.float32)
        self.frames = 0  # whole frames received so far

    def split(self, samples: np.ndarray) -> np.ndarray:
        """The samples of the frames ``samples`` completes (a multiple of FRAME); the rest
        waits for the next call."""
        pending = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        whole = len(pending) // FRAME * FRAME
        self._pending = pending[whole:].copy()
        self.frames += whole // FRAME
        return pending[:whole]

    def score(self, frames: np.ndarray) -> np.ndarray:
        """The probabilities of whole frames, following the frames scored before them."""
        if not len(frames):
            return np.zeros(0, dtype=np.float32)
        self._last_carried = self._carried.batch(frames)
        scores: np.ndarray = np.maximum(self._last_carried, self._fresh.batch(frames))
        return scores

    def restart(self, frames: np.ndarray, first: int) -> np.ndarray:
        """Reset the fresh state before frame ``first`` of the last :meth:`score`'s
        ``frames``; their probabilities from that frame on."""
        self._fresh = SpeechProbabilities(self._session)
        rest = frames[first * FRAME :]
        if not len(rest):
            return np.zeros(0, dtype=np.float32)
        scores: np.ndarray = np.maximum(self._last_carried[first:], self._fresh.batch(rest))
        return scores

    def reset(self) -> None:
        """Score the next frames as if the stream started with them (the input was cleared)."""
        self._carried = SpeechProbabilities(self._session)
        self._fresh = SpeechProbabilities(self._session)


@dataclass(frozen=True)
class SpeechStart:
    """Speech begins at ``sample`` (before any prefix padding)."""

    sample: int


@dataclass(frozen=True)
class SpeechEnd:
    """The utterance ends at ``sample``: its speech plus the silence that ended it."""

    sample: int


class TurnDetector:
    """Speech starts on a frame at ``threshold`` or above; it stops after ``silence_duration_ms``
    of frames below the hysteresis, counted from the first of them."""

    def __init__(self, config: ServerVad):
        self.threshold = config.threshold
        self.neg_threshold = max(config.threshold - _HYSTERESIS, 0.01)
        self.silence_frames = max(
            1, math.ceil(config.silence_duration_ms * SAMPLE_RATE / 1000 / FRAME)
        )
        self.speaking = False
        self._silence = 0

    def step(self, frame: int, probability: float) -> SpeechStart | SpeechEnd | None:
        """Feed the score of ``frame`` (its index since the stream began)."""
        if not self.speaking:
            if probability >= self.threshold:
                self.speaking, self._silence = True, 0
                return SpeechStart(frame * FRAME)
            return None
        if probability >= self.threshold:
            self._silence = 0
        elif probability < self.neg_threshold or self._silence:
            self._silence += 1
            if self._silence >= self.silence_frames:
                self.speaking = False
                return SpeechEnd((frame + 1) * FRAME)
        return None

    def reset(self) -> None:
        self.speaking, self._silence = False, 0


def has_speech(probabilities: np.ndarray, threshold: float) -> bool:
    """Whether scores hold at least MIN_SPEECH_SECONDS of frames at ``threshold`` or above."""
    needed = math.ceil(MIN_SPEECH_SECONDS * SAMPLE_RATE / FRAME)
    return int(np.count_nonzero(probabilities >= threshold)) >= needed
