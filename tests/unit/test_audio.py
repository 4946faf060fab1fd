"""theo/audio.py: decoding uploads to 16 kHz mono float32."""

from __future__ import annotations

import gc
import io

import av
import numpy as np
import pytest

from tests.conftest import FIXTURES
from tests.unit.sounds import wav_bytes
from theo.audio import decode_audio
from theo.errors import AudioDecodeError, AudioTooLongError
from theo.transcription import SAMPLE_RATE


def test_flac_decodes_to_16k_mono_float32() -> None:
    # jfk.flac is 11 s of 44.1 kHz stereo.
    samples = decode_audio((FIXTURES / "jfk.flac").read_bytes())
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert abs(len(samples) / SAMPLE_RATE - 11.0) < 0.05
    assert np.abs(samples).max() <= 1.0
    assert np.abs(samples).max() > 0.1  # speech, not silence


def test_opus_decodes() -> None:
    samples = decode_audio((FIXTURES / "fleurs-fr-000.ogg").read_bytes())
    assert abs(len(samples) / SAMPLE_RATE - 10.207) < 0.1


def test_resamples_and_mixes_down_a_known_signal() -> None:
    # 0.5 s of a constant at 8 kHz stereo: 8000 samples out, value preserved.
    frames = np.full(4000 * 2, 16384, dtype=np.int16)
    samples = decode_audio(wav_bytes(frames, rate=8000, channels=2))
    assert abs(len(samples) - SAMPLE_RATE // 2) <= 32
    middle = samples[len(samples) // 4 : 3 * len(samples) // 4]
    assert np.allclose(middle, 0.5, atol=0.01)


def test_16k_mono_wav_passes_through() -> None:
    raw = (FIXTURES / "bad" / "silence_1s_16k.wav").read_bytes()
    samples = decode_audio(raw)
    # Already 16 kHz mono 16-bit: the samples are the file's PCM data scaled to [-1, 1).
    pcm = np.frombuffer(raw[-2 * SAMPLE_RATE :], dtype="<i2")
    assert len(samples) == SAMPLE_RATE
    assert np.array_equal(samples, pcm.astype(np.float32) / 32768.0)


def test_a_16k_mono_int16_flac_decodes_to_its_exact_samples() -> None:
    # The form that skips the resampler: every sample must come back as it went in.
    pcm = np.random.default_rng(7).integers(-20000, 20000, 5 * SAMPLE_RATE, dtype=np.int16)
    out = io.BytesIO()
    with av.open(out, mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    samples = decode_audio(out.getvalue())
    assert np.array_equal(samples, pcm.astype(np.float32) / 32768.0)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        (FIXTURES / "bad" / "empty.wav").read_bytes(),
        (FIXTURES / "bad" / "text_renamed.wav").read_bytes(),
        (FIXTURES / "bad" / "truncated_1k.flac").read_bytes(),
        (FIXTURES / "jfk.flac").read_bytes()[:200],
        b"\x00" * 4096,
    ],
    ids=["no-bytes", "empty.wav", "text_renamed.wav", "truncated_1k.flac", "flac-head", "zeros"],
)
def test_undecodable_input(data: bytes) -> None:
    with pytest.raises(AudioDecodeError) as excinfo:
        decode_audio(data)
    assert excinfo.value.status_code == 400
    assert excinfo.value.param == "file"


def test_wav_with_no_samples() -> None:
    with pytest.raises(AudioDecodeError):
        decode_audio(wav_bytes(np.zeros(0, dtype=np.int16), rate=16000))


def test_too_long() -> None:
    data = (FIXTURES / "jfk.flac").read_bytes()
    with pytest.raises(AudioTooLongError) as excinfo:
        decode_audio(data, max_seconds=5)
    assert excinfo.value.status_code == 400
    assert excinfo.value.param == "file"
    assert "5 seconds" in excinfo.value.message


def test_just_under_the_limit_is_accepted() -> None:
    samples = decode_audio((FIXTURES / "jfk.flac").read_bytes(), max_seconds=11.5)
    assert abs(len(samples) / SAMPLE_RATE - 11.0) < 0.05


def test_does_not_run_a_garbage_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*_: object) -> int:
        raise AssertionError("decode_audio called gc.collect()")

    monkeypatch.setattr(gc, "collect", forbidden)
    samples = decode_audio((FIXTURES / "jfk.flac").read_bytes())
    assert len(samples) > 0
