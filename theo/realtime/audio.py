"""A live session's audio: appended bytes in the session's format to 16 kHz float32 samples.

Realtime clients send 24 kHz 16-bit PCM or 8 kHz G.711 (mu-law or A-law), in pieces of any
size. Each piece is decoded and resampled as it arrives; the resampler carries its filter
state from one piece to the next, so the samples are the same however the audio was cut.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from theo.transcription import SAMPLE_RATE

AudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]
INPUT_RATES: dict[AudioFormat, int] = {"pcm16": 24_000, "g711_ulaw": 8_000, "g711_alaw": 8_000}
# Taps of the anti-aliasing filter per output-rate period: ~50 dB of stop band.
_TAPS_PER_PHASE = 32


def _ulaw_table() -> np.ndarray:
    """G.711 mu-law byte -> 16-bit linear sample (ITU-T G.711, as audioop decodes it)."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    """G.711 A-law byte -> 16-bit linear sample (ITU-T G.711, as audioop decodes it)."""
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)


ULAW_TO_PCM16 = _ulaw_table()
ALAW_TO_PCM16 = _alaw_table()


class Resampler:
    """Streaming rational resampler (``up``/``down``) with a windowed-sinc low-pass filter.

    Upsample by zero-stuffing, filter, keep every ``down``-th sample; the filter's last
    taps of input and the output phase carry over from one call to the next.
    """

    def __init__(self, up: int, down: int):
        divisor = math.gcd(up, down)
        self.up, self.down = up // divisor, down // divisor
        taps = _TAPS_PER_PHASE * max(self.up, self.down) + 1
        cutoff = 0.45 / max(self.up, self.down)  # cycles per upsampled sample, below Nyquist
        n = np.arange(taps) - (taps - 1) / 2
        kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, 8.0) * self.up
        self._kernel = kernel.astype(np.float32)
        self._tail = np.zeros(taps - 1, dtype=np.float32)
        self._phase = 0  # index, in the next call's upsampled input, of its first output

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return samples.astype(np.float32, copy=False)
        stuffed = np.zeros(len(samples) * self.up, dtype=np.float32)
        stuffed[:: self.up] = samples
        held = np.concatenate([self._tail, stuffed])
        filtered = np.convolve(held, self._kernel, mode="valid")  # one per stuffed sample
        out = filtered[self._phase :: self.down]
        self._phase += len(out) * self.down - len(stuffed)
        self._tail = held[len(held) - len(self._tail) :]
        return out.astype(np.float32, copy=False)


class InputAudio:
    """Decodes one session's appends in ``audio_format`` to 16 kHz float32 samples.

    A 16-bit sample split across two appends is put back together: an odd trailing byte
    waits for the next append.
    """

    def __init__(self, audio_format: AudioFormat):
        self.format = audio_format
        self._carry = b""
        self._resample = Resampler(SAMPLE_RATE, INPUT_RATES[audio_format])

    def decode(self, data: bytes) -> np.ndarray:
        if self.format == "pcm16":
            data = self._carry + data
            whole = len(data) - len(data) % 2
            self._carry = data[whole:]
            pcm = np.frombuffer(data[:whole], dtype="<i2")
        else:
            table = ULAW_TO_PCM16 if self.format == "g711_ulaw" else ALAW_TO_PCM16
            pcm = table[np.frombuffer(data, dtype=np.uint8)]
        return self._resample(pcm.astype(np.float32) / 32768.0)


class SampleBuffer:
    """The samples of a session not yet let go, addressed by their index since it began."""

    def __init__(self) -> None:
        self._data = np.zeros(SAMPLE_RATE, dtype=np.float32)
        self._held = 0
        self.start = 0  # index of the first held sample

    @property
    def end(self) -> int:
        """Index one past the last sample appended (all audio the session received)."""
        return self.start + self._held

    def append(self, samples: np.ndarray) -> None:
        needed = self._held + len(samples)
        if needed > len(self._data):
            grown = np.zeros(max(needed, 2 * len(self._data)), dtype=np.float32)
            grown[: self._held] = self._data[: self._held]
            self._data = grown
        self._data[self._held : needed] = samples
        self._held = needed

    def slice(self, begin: int, end: int) -> np.ndarray:
        """A copy of the samples from ``begin`` to ``end`` (clipped to what is held)."""
        lo = max(begin, self.start) - self.start
        hi = max(min(end, self.end) - self.start, lo)
        return self._data[lo:hi].copy()

    def drop_before(self, index: int) -> None:
        """Let go of the samples before ``index``."""
        cut = min(max(index - self.start, 0), self._held)
        if cut:
            self._data[: self._held - cut] = self._data[cut : self._held]
            self._held -= cut
            self.start += cut
