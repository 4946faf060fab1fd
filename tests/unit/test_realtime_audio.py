"""theo/realtime/audio.py: G.711 and PCM decoding, resampling, the session's sample buffer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from theo.realtime.audio import ALAW_TO_PCM16, ULAW_TO_PCM16, InputAudio, Resampler, SampleBuffer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the reference G.711 decoder (Python < 3.13)


def test_g711_tables_decode_as_audioop_does() -> None:
    codes = bytes(range(256))
    ulaw = np.frombuffer(audioop.ulaw2lin(codes, 2), dtype="<i2")
    alaw = np.frombuffer(audioop.alaw2lin(codes, 2), dtype="<i2")
    assert np.array_equal(ULAW_TO_PCM16, ulaw)
    assert np.array_equal(ALAW_TO_PCM16, alaw)


def tone(hz: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_resampling_does_not_depend_on_how_the_audio_was_cut() -> None:
    audio = tone(440, 24_000, 2.0)
    whole = Resampler(16_000, 24_000)(audio)
    resample = Resampler(16_000, 24_000)
    rng = np.random.default_rng(0)
    cuts = np.cumsum(rng.integers(1, 3000, size=100))
    pieces = [resample(p) for p in np.split(audio, cuts[cuts < len(audio)])]
    assert len(whole) == 32_000
    assert np.array_equal(np.concatenate(pieces), whole)


@pytest.mark.parametrize(("rate", "hz"), [(24_000, 440), (24_000, 3000), (8_000, 1000)])
def test_speech_band_tones_keep_their_level(rate: int, hz: float) -> None:
    out = Resampler(16_000, rate)(tone(hz, rate))
    assert len(out) == 16_000
    rms = float(np.sqrt(np.mean(out[200:] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_tones_above_the_new_nyquist_are_filtered_out() -> None:
    out = Resampler(16_000, 24_000)(tone(10_000, 24_000))
    assert float(np.sqrt(np.mean(out[200:] ** 2))) < 1e-3


def test_an_odd_trailing_byte_waits_for_the_next_append() -> None:
    pcm = (tone(300, 24_000, 0.1) * 32767).astype("<i2").tobytes()
    whole = InputAudio("pcm16").decode(pcm)
    split = InputAudio("pcm16")
    pieces = [split.decode(pcm[:7]), split.decode(pcm[7:1001]), split.decode(pcm[1001:])]
    assert np.array_equal(np.concatenate(pieces), whole)


@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
def test_g711_at_8_khz_becomes_16_khz(fmt: str) -> None:
    pcm = (tone(1000, 8_000) * 32767).astype("<i2").tobytes()
    encode = audioop.lin2ulaw if fmt == "g711_ulaw" else audioop.lin2alaw
    out = InputAudio(fmt).decode(encode(pcm, 2))  # type: ignore[arg-type]
    assert len(out) == 16_000
    rms = float(np.sqrt(np.mean(out[200:] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.03)


def test_sample_buffer_addresses_samples_since_the_session_began() -> None:
    buffer = SampleBuffer()
    for start in range(0, 50_000, 7_000):
        buffer.append(np.arange(start, start + 7_000, dtype=np.float32))
    assert (buffer.start, buffer.end) == (0, 56_000)
    assert np.array_equal(buffer.slice(10, 13), [10, 11, 12])
    buffer.drop_before(20_000)
    assert buffer.start == 20_000
    assert np.array_equal(buffer.slice(0, 20_002), [20_000, 20_001])  # clipped to what is held
    buffer.append(np.array([1.0], dtype=np.float32))
    assert buffer.end == 56_001
