"""theo/streaming_vad.py and theo/window_cutter.py: VAD and windows as audio arrives.

Real Silero VAD (it ships with faster-whisper) on real recordings stitched past 320 s, so
pieces of every size cross many VAD batches, the largest (10,000 frames) included.
"""

from __future__ import annotations

import numpy as np
import pytest
from faster_whisper.vad import VadOptions, get_speech_timestamps

from tests.conftest import FIXTURES
from theo.audio import PIECE_SECONDS, decode_audio, iter_pcm16
from theo.chunking import DEFAULT_CHUNKING, WINDOW_SECONDS, AudioWindow, cut_windows
from theo.http.decoding import CUTTER_SECONDS
from theo.streaming_vad import BATCH_FRAMES, FRAME, Speech, iter_speech
from theo.transcription import SAMPLE_RATE


def stitched(minutes: float) -> np.ndarray:
    """Fixture recordings with pauses (digital silence and faint noise) until ``minutes``."""
    clips = [
        decode_audio((FIXTURES / name).read_bytes())
        for name in ("jfk.flac", "LJ001-0002.wav", "1089-134686-0000.flac", "fleurs-fr-000.ogg")
    ]
    rng = np.random.default_rng(7)
    parts: list[np.ndarray] = []
    total = 0
    while total < minutes * 60 * SAMPLE_RATE:
        clip = clips[len(parts) % len(clips)]
        pause = np.zeros(int(rng.uniform(0.1, 3.0) * SAMPLE_RATE), dtype=np.float32)
        if len(parts) % 3 == 0:
            pause += rng.standard_normal(len(pause)).astype(np.float32) * 0.003
        parts += [clip, pause]
        total += len(clip) + len(pause)
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def long_audio() -> np.ndarray:
    audio = stitched(11)  # > 2 VAD batches (320 s each)
    assert len(audio) > 2 * BATCH_FRAMES * FRAME
    return audio


def pieces_of(audio: np.ndarray, size: int) -> list[np.ndarray]:
    return [audio[i : i + size] for i in range(0, len(audio), size)]


@pytest.mark.parametrize("piece", [1, 16_000 * 5 + 77, BATCH_FRAMES * FRAME])
def test_speech_found_piece_by_piece_is_what_one_pass_finds(
    long_audio: np.ndarray, piece: int
) -> None:
    options = DEFAULT_CHUNKING.vad_options()
    expected = [Speech(s["start"], s["end"]) for s in get_speech_timestamps(long_audio, options)]
    size = piece if piece > 1 else len(long_audio)  # 1: the whole audio as one piece
    found = list(iter_speech(iter(pieces_of(long_audio, size)), options))
    assert len(expected) > 50
    assert found == expected


def test_the_default_options_match_too(long_audio: np.ndarray) -> None:
    # faster-whisper's own defaults: long min silence, no max speech length.
    audio = long_audio[: 400 * SAMPLE_RATE]
    options = VadOptions()
    expected = [Speech(s["start"], s["end"]) for s in get_speech_timestamps(audio, options)]
    pieces = iter(pieces_of(audio, 12_345))
    assert list(iter_speech(pieces, options)) == expected


def test_windows_do_not_depend_on_how_the_audio_arrives(long_audio: np.ndarray) -> None:
    whole = list(cut_windows([long_audio]))
    pieced = list(cut_windows(pieces_of(long_audio, 16_000 * 3 + 5)))
    assert [w.offset for w in whole] == [w.offset for w in pieced]
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(whole, pieced, strict=True))
    assert all(len(w.samples) <= WINDOW_SECONDS * SAMPLE_RATE for w in whole)
    offsets = [w.offset for w in whole]
    assert offsets == sorted(offsets)


def test_a_long_recordings_windows_are_at_most_its_long_window(long_audio: np.ndarray) -> None:
    audio = long_audio[: 300 * SAMPLE_RATE]
    full = list(cut_windows([audio]))
    whole = list(cut_windows([audio], long_window_seconds=18))
    pieced = list(cut_windows(pieces_of(audio, 16_000 * 3 + 5), long_window_seconds=18))
    assert [w.offset for w in whole] == [w.offset for w in pieced]
    assert max(len(w.samples) for w in full) > 18 * SAMPLE_RATE  # the limit is not vacuous
    assert max(len(w.samples) for w in whole) <= 18 * SAMPLE_RATE
    assert len(whole) > len(full)

    # Cut at pauses, not through speech: the same stretches of speech, split differently.
    def covered(windows: list[AudioWindow]) -> np.ndarray:
        mask = np.zeros(len(audio), dtype=bool)
        for w in windows:
            start = round(w.offset * SAMPLE_RATE)
            mask[start : start + len(w.samples)] = True
        return mask

    assert np.mean(covered(full) != covered(whole)) < 0.01


def test_audio_of_one_window_is_not_cut_shorter() -> None:
    # 24 s of speech with a 1 s pause: one window under VAD, as before; only a recording
    # longer than 30 s is cut into shorter windows.
    jfk = decode_audio((FIXTURES / "jfk.flac").read_bytes())
    libri = decode_audio((FIXTURES / "1089-134686-0000.flac").read_bytes())
    audio = np.concatenate([jfk, np.zeros(SAMPLE_RATE, dtype=np.float32), libri])
    assert 20 * SAMPLE_RATE < len(audio) <= WINDOW_SECONDS * SAMPLE_RATE
    (window,) = cut_windows([audio], vad=True, long_window_seconds=15)
    assert len(window.samples) > 20 * SAMPLE_RATE


def _clip(name: str) -> np.ndarray:
    return decode_audio((FIXTURES / name).read_bytes())


def _joined(clips: list[np.ndarray]) -> tuple[np.ndarray, list[float]]:
    """The clips with 0.2 s pauses, and where each starts."""
    pause = np.zeros(int(0.2 * SAMPLE_RATE), dtype=np.float32)
    starts = np.cumsum([0] + [len(c) + len(pause) for c in clips[:-1]]) / SAMPLE_RATE
    return np.concatenate([part for c in clips for part in (c, pause)]), list(starts)


def _ends(window: AudioWindow) -> float:
    return window.offset + len(window.samples) / SAMPLE_RATE


def test_a_short_last_phrase_goes_to_the_next_window() -> None:
    # 18.5 s of speech, JFK's "not" (0.3 s), 11.7 s of speech: a 20 s window has room for
    # "not" but not for what follows. Whisper drops a short phrase at a window's very end
    # (the LJ chapter's "Now,"), so the next window starts with it instead.
    before = ["1089-134686-0000.flac", "1089-134691-0001.flac", "1089-134691-0000.flac"]
    jfk_not = _clip("jfk.flac")[int(3.95 * SAMPLE_RATE) : int(4.45 * SAMPLE_RATE)]
    clips = [*map(_clip, before), jfk_not, _clip("2412-153948-0000.flac")]
    audio, starts = _joined(clips)
    first, second = cut_windows([audio], vad=True, long_window_seconds=20)
    assert starts[2] + 1.5 < _ends(first) <= starts[3] + 0.05  # "not" is JFK's 4.03-4.35 s
    assert second.offset == pytest.approx(_ends(first))
    assert _ends(second) > starts[4] + 11


def test_a_longer_last_phrase_stays_in_its_window() -> None:
    # The same with LJ001-0002 (1.9 s) in place of "not": it ends the first window.
    names = ["1089-134686-0000.flac", "1089-134691-0001.flac", "LJ001-0002.wav"]
    names += ["2412-153948-0000.flac", "1089-134691-0000.flac"]
    audio, starts = _joined([_clip(name) for name in names])
    first, second = cut_windows([audio], vad=True, long_window_seconds=20)
    assert _ends(first) > starts[2] + 1.8
    assert starts[2] + 1.8 < second.offset < starts[3] + 0.5


def test_int16_pieces_give_the_float_windows_as_int16(long_audio: np.ndarray) -> None:
    as_int16 = np.round(long_audio[: 200 * SAMPLE_RATE] * 32768).clip(-32768, 32767)
    pcm = as_int16.astype(np.int16)
    floats = list(cut_windows([pcm.astype(np.float32) / 32768]))
    ints = list(cut_windows(pieces_of(pcm, 80_000)))
    assert [w.offset for w in floats] == [w.offset for w in ints]
    for f, i in zip(floats, ints, strict=True):
        assert i.samples.dtype == np.int16
        assert np.array_equal(f.samples, i.samples.astype(np.float32) / 32768)


def max_held_bytes() -> float:
    """What the cutter may hold (theo/http/decoding.py budgets each request for it)."""
    return CUTTER_SECONDS * SAMPLE_RATE * 2  # int16


def test_only_a_bounded_stretch_of_audio_is_held(long_audio: np.ndarray) -> None:
    pcm = (long_audio * 32767).astype(np.int16)
    held: list[int] = []
    windows = list(cut_windows(pieces_of(pcm, SAMPLE_RATE), on_held=held.append))
    assert len(windows) > 10
    assert pcm.nbytes > 1.5 * max_held_bytes()  # the bound is not vacuous
    assert max(held) <= max_held_bytes(), max(held) / 2 / SAMPLE_RATE


def test_hours_of_digital_silence_cost_no_windows_and_little_memory() -> None:
    minute = np.zeros(60 * SAMPLE_RATE, dtype=np.int16)
    held: list[int] = []
    pieces = (minute for _ in range(120))  # two hours, never in memory at once
    assert list(cut_windows(pieces, on_held=held.append)) == []
    assert max(held) <= max_held_bytes()


def test_a_long_quiet_stretch_after_speech_is_not_held() -> None:
    # Faint noise, not digital silence: Silero has to hear it to know it is not speech.
    speech = decode_audio((FIXTURES / "jfk.flac").read_bytes())
    quiet = np.random.default_rng(1).standard_normal(600 * SAMPLE_RATE) * 0.002
    audio = np.concatenate([speech, speech, speech, quiet.astype(np.float32), speech])
    options = DEFAULT_CHUNKING.vad_options()
    expected = [Speech(s["start"], s["end"]) for s in get_speech_timestamps(audio, options)]
    assert list(iter_speech(iter(pieces_of(audio, 20 * SAMPLE_RATE)), options)) == expected

    pcm = (audio * 32767).astype(np.int16)
    held: list[int] = []
    windows = list(cut_windows(pieces_of(pcm, 20 * SAMPLE_RATE), on_held=held.append))
    whole = list(cut_windows([pcm]))
    assert [w.offset for w in windows] == [w.offset for w in whole]
    assert windows[-1].offset > 600
    # A window, a piece and the audio waiting for the VAD; not the ten minutes of quiet.
    assert max(held) <= (WINDOW_SECONDS + 2 * 20) * SAMPLE_RATE * 2, max(held) / 2 / SAMPLE_RATE


def test_decoded_pieces_are_bounded_and_add_up() -> None:
    data = (FIXTURES / "jfk.flac").read_bytes()
    pieces = list(iter_pcm16(data))
    assert all(p.dtype == np.int16 for p in pieces)
    whole = np.concatenate(pieces).astype(np.float32) / 32768
    assert np.array_equal(whole, decode_audio(data))
    assert max(len(p) for p in pieces) <= (PIECE_SECONDS + 1) * SAMPLE_RATE
