"""Job and result types shared by the HTTP app, the runner and the engine.

Plain pydantic models: typed, framework-free, and picklable so the runner can
receive a batch of them from the API service.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

SAMPLE_RATE = 16_000

Task = Literal["transcribe", "translate"]


class TranscriptionJob(BaseModel):
    """Up to 30 s of one request's audio (16 kHz mono PCM) and decoding options.

    ``offset`` is where this window starts in the request's audio, in seconds; the
    engine reports timestamps relative to the whole file. Decoded uploads travel as
    int16 (``pcm16``: half the bytes of float32, and the very samples the decoder gave).
    """

    model_config = ConfigDict(frozen=True)

    audio: bytes = Field(repr=False)
    sample_format: Literal["float32", "pcm16"] = "float32"
    offset: float = Field(default=0.0, ge=0.0)
    task: Task = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=1.0)
    word_timestamps: bool = False
    # None: the model's beam size (its manifest). A live partial re-decode asks for 1: a
    # draft that the utterance's final decode replaces, at about half the cost.
    beam_size: int | None = Field(default=None, ge=1)
    # None: the encoder sees 30 s, the input Whisper was trained on. Else at least this
    # many seconds, padded past the audio (theo/engine/policy.py's encoder_input_frames):
    # a live utterance's decode at a fraction of the cost; a decode that looks failed is
    # done again on 30 s.
    encoder_seconds: float | None = Field(default=None, gt=0, le=30)
    # One window of a longer recording (theo/long_form.py): decoded as text whose words
    # are then aligned to the audio, and after the runner's other work.
    long_form: bool = False
    # The language the recording was heard in so far (when ``language`` is None): a
    # long-form window keeps it unless its own detection is sure of another.
    language_hint: str | None = None

    @classmethod
    def from_samples(cls, samples: np.ndarray, **options: object) -> TranscriptionJob:
        """Build a job from a float32 sample array."""
        return cls(audio=samples.astype(np.float32, copy=False).tobytes(), **options)  # type: ignore[arg-type]

    @classmethod
    def from_pcm16(cls, samples: np.ndarray, **options: object) -> TranscriptionJob:
        """Build a job from an int16 sample array (kept as int16 on the way to the runner)."""
        audio = samples.astype(np.int16, copy=False).tobytes()
        return cls(audio=audio, sample_format="pcm16", **options)  # type: ignore[arg-type]

    def samples(self) -> np.ndarray:
        """The audio as a float32 array of 16 kHz samples."""
        if self.sample_format == "pcm16":
            # The same conversion as theo.audio.pcm16_to_float32 (not imported: the
            # runner need not load PyAV).
            pcm = np.frombuffer(self.audio, dtype=np.int16)
            return (pcm.astype(np.float32) / 32768.0).astype(np.float32)
        return np.frombuffer(self.audio, dtype=np.float32)

    @property
    def duration(self) -> float:
        bytes_per_sample = 2 if self.sample_format == "pcm16" else 4
        return len(self.audio) / bytes_per_sample / SAMPLE_RATE


class Word(BaseModel):
    word: str
    start: float
    end: float
    probability: float = 0.0


class Segment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] | None = None


class TranscriptionResult(BaseModel):
    """The engine's answer for one job; ``error`` is set instead when that job failed."""

    text: str = ""
    language: str = ""
    duration: float = 0.0
    segments: list[Segment] = Field(default_factory=list)
    words: list[Word] | None = None
    batch_size: int = 1
    error: str | None = None
