"""Server VAD for live audio: Silero speech probabilities per 32 ms frame, and turn detection.

Silero (faster-whisper ships the model) scores each 512-sample frame as audio arrives; its
state carries from frame to frame, so the scores do not depend on how the audio was cut.
:class:`TurnDetector` turns the scores into speech started / stopped, with the session's
threshold and silence duration; an utterance with too little speech in it is not decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
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


@lru_cache(maxsize=1)
def silero_model() -> Any:
    """faster-whisper's Silero VAD model (one ONNX session, shared by every live session)."""
    from faster_whisper.vad import get_vad_model

    return get_vad_model()


class SpeechFrames:
    """Silero's speech probabilities of a stream's whole frames, as its samples arrive.

    The model's state carries from frame to frame. After speech ends it is reset: carried
    on, it lowers the scores of quieter speech that follows louder speech (by 0.5 or more
    for a second or two), so the start of the next utterance would be missed.
    """

    def __init__(self, model: Any):
        self._model = model
        self._probabilities = SpeechProbabilities(model)
        self._pending = np.zeros(0, dtype=np.float32)
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
        return self._probabilities.batch(frames)

    def reset(self) -> None:
        """Score the next frames as if the stream started with them."""
        self._probabilities = SpeechProbabilities(self._model)


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
