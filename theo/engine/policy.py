"""The decoding policy: thresholds, the temperature schedule, and which decode of a window wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# faster-whisper's (and OpenAI's) thresholds for "this decode failed, try hotter".
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
# A likely-silent window (no-speech probability above this) is dropped when its decode is
# improbable (Whisper's rule) or a repetition loop (tiny/base on white noise: "1,5,5,5...").
NO_SPEECH_THRESHOLD = 0.6
# Peak amplitude under which a window is digital silence and is not decoded at all.
DIGITAL_SILENCE_PEAK = 1e-4
BEST_OF = 5  # sampled hypotheses per window at a temperature above 0
MAX_INITIAL_TIMESTAMP = 1.0  # seconds: a pass's first segment starts no later than this
# A decode hotter than this does not condition the next pass (its text is unreliable).
PROMPT_RESET_ON_TEMPERATURE = 0.5
PROMPT_TOKENS_MAX = 223  # Whisper's max_length // 2 - 1
# A job may give the encoder less than Whisper's 30 s (live utterances): its cost grows
# faster than its input (tiny.en, one thread: 0.46 s for 30 s, 0.11 s for 15 s). The
# input keeps at least 2 s of padding and grows in 5 s steps (windows of one step stack
# together); on 15 s or more tiny.en and base keep their accuracy, shorter inputs fall
# into repetition loops (docs/performance.md).
ENCODER_PADDING_FRAMES = 200
ENCODER_STEP_FRAMES = 500


def encoder_input_frames(content_frames: int, least_frames: int, full_frames: int) -> int:
    """The mel frames the encoder is given for ``content_frames`` of audio: at least
    ``least_frames``, at most Whisper's ``full_frames``."""
    steps = -(-(content_frames + ENCODER_PADDING_FRAMES) // ENCODER_STEP_FRAMES)
    return min(full_frames, max(least_frames, steps * ENCODER_STEP_FRAMES))


def temperature_schedule(temperature: float, fallback: Sequence[float]) -> tuple[float, ...]:
    """The temperatures to try for one window: the requested one, then hotter fallbacks."""
    return (temperature, *(t for t in fallback if t > temperature))


def is_digital_silence(samples: np.ndarray) -> bool:
    """No audio, or none above ``DIGITAL_SILENCE_PEAK``: nothing worth decoding."""
    return not samples.size or float(np.max(np.abs(samples))) < DIGITAL_SILENCE_PEAK


@dataclass(frozen=True)
class Attempt:
    """One decode of a window's current pass at one temperature."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float

    @property
    def is_silence(self) -> bool:
        """Probably no speech, and the decode is improbable or a repetition loop."""
        if self.no_speech_prob <= NO_SPEECH_THRESHOLD:
            return False
        return (
            self.avg_logprob < LOG_PROB_THRESHOLD
            or self.compression_ratio > COMPRESSION_RATIO_THRESHOLD
        )

    @property
    def failed(self) -> bool:
        """Looks like a failed decode (and is not silence): worth a hotter retry."""
        return not self.is_silence and (
            self.compression_ratio > COMPRESSION_RATIO_THRESHOLD
            or self.avg_logprob < LOG_PROB_THRESHOLD
        )

    @property
    def resets_prompt(self) -> bool:
        """Too hot to condition the next pass on: the window's text history is dropped."""
        return self.temperature > PROMPT_RESET_ON_TEMPERATURE


def best_attempt(attempts: Sequence[Attempt]) -> Attempt:
    """The last attempt if it succeeded; else, as faster-whisper does, the most probable
    one among those that are not repetitive (or among all of them)."""
    if not attempts[-1].failed:
        return attempts[-1]
    candidates = [a for a in attempts if a.compression_ratio <= COMPRESSION_RATIO_THRESHOLD]
    return max(candidates or attempts, key=lambda a: a.avg_logprob)


# -- Long-form windows ---------------------------------------------------------------------

# A window's own language detection replaces the request's language so far only when it
# is at least this sure (Whisper's detection on clean speech: > 0.9).
LANGUAGE_SWITCH_PROBABILITY = 0.8


def choose_language(detected: str, probability: float, hint: str | None) -> str:
    """A long-form window's language: the one detected, unless it is unsure of it and the
    request was heard in another so far (``hint``)."""
    if hint is None or probability >= LANGUAGE_SWITCH_PROBABILITY:
        return detected
    return hint
