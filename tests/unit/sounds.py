"""Audio built for tests: WAV encoding and a long recording stitched from the fixtures."""

from __future__ import annotations

import io
import wave

import numpy as np

from tests.conftest import FIXTURES
from theo.audio import decode_audio
from theo.transcription import SAMPLE_RATE


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE, channels: int = 1) -> bytes:
    """16-bit PCM WAV of ``samples``: int16 as is, floats in [-1, 1) scaled (interleaved)."""
    if samples.dtype.kind == "f":
        samples = np.clip(samples * 32768.0, -32768, 32767)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def long_speech() -> np.ndarray:
    """~36.4 s at 16 kHz: jfk (11 s), 2 s silence, a LibriSpeech line (10.4 s), 2 s, jfk."""
    jfk = decode_audio((FIXTURES / "jfk.flac").read_bytes())
    libri = decode_audio((FIXTURES / "1089-134686-0000.flac").read_bytes())
    pause = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    return np.concatenate([jfk, pause, libri, pause, jfk])
