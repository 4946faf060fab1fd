"""The engine on the real models: batching must not change results."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from threadpoolctl import threadpool_info

from tests.conftest import FIXTURES, MODELS_DIR, word_errors
from theo.audio import decode_audio
from theo.chunking import merge_window_results, split_into_windows
from theo.engine import FasterWhisperEngine
from theo.engine import faster_whisper_internals as fw
from theo.engine.instances import InstanceChooser
from theo.engine.threads import thread_ids
from theo.manifest import load_manifest
from theo.transcription import SAMPLE_RATE, TranscriptionJob, TranscriptionResult


@cache
def engine(name: str) -> FasterWhisperEngine:
    path = MODELS_DIR / name
    return FasterWhisperEngine(path, load_manifest(path / "theo.yaml"))


@cache
def samples(name: str) -> np.ndarray:
    return decode_audio((FIXTURES / name).read_bytes())


CLIPS = ["jfk.flac", "1089-134686-0000.flac", "fleurs-fr-000.ogg", "fleurs-de-000.ogg"]


def test_a_batch_gives_the_same_text_as_one_job_at_a_time() -> None:
    base = engine("faster-whisper-base")
    jobs = [TranscriptionJob.from_samples(samples(c)) for c in CLIPS]
    jobs.append(TranscriptionJob.from_samples(samples("fleurs-fr-000.ogg"), task="translate"))
    jobs.append(TranscriptionJob.from_samples(samples("jfk.flac"), prompt="Kennedy, 1961."))
    alone = [base.transcribe(job) for job in jobs]
    together = base.transcribe_batch(jobs)
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.language for r in together] == ["en", "en", "fr", "de", "fr", "en"]
    assert all(r.batch_size == len(jobs) for r in together)
    assert all(r.batch_size == 1 for r in alone)
    # the translation is English, the transcription French
    assert word_errors(together[2].text, together[4].text) > 5


def test_word_timestamps_inside_a_mixed_batch() -> None:
    tiny = engine("faster-whisper-tiny.en")
    jfk = samples("jfk.flac")
    jobs = [
        TranscriptionJob.from_samples(jfk, word_timestamps=True),
        TranscriptionJob.from_samples(jfk),
        TranscriptionJob.from_samples(jfk, word_timestamps=True, offset=30.0),
    ]
    with_words, without, shifted = tiny.transcribe_batch(jobs)
    assert without.words is None
    assert with_words.words is not None and shifted.words is not None
    assert [w.word for w in with_words.words] == [w.word for w in shifted.words]
    assert with_words.words[0].start < 1.0
    # faster-whisper nudges a first word that starts right at its segment's start
    assert shifted.words[0].start == pytest.approx(with_words.words[0].start + 30.0, abs=0.2)
    assert shifted.segments[0].start >= 30.0


def test_a_job_decodes_with_its_own_beam_size_inside_a_batch() -> None:
    # Live partial text asks for greedy drafts (beam 1) beside beam-5 decodes; on this
    # clip the two give different text, each the same as faster-whisper's own.
    tiny = engine("faster-whisper-tiny.en")
    audio = samples("1089-134686-0000.flac")
    greedy, beam = tiny.transcribe_batch(
        [TranscriptionJob.from_samples(audio, beam_size=1), TranscriptionJob.from_samples(audio)]
    )
    raw = WhisperModel(str(MODELS_DIR / "faster-whisper-tiny.en"), compute_type="int8")
    for result, beam_size in ((greedy, 1), (beam, tiny.config.beam_size)):
        segments, _ = raw.transcribe(audio, beam_size=beam_size)
        assert result.text == "".join(s.text for s in segments).strip()
    assert greedy.text != beam.text


def test_silence_gives_no_text() -> None:
    tiny = engine("faster-whisper-tiny.en")
    silence = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    result = tiny.transcribe(TranscriptionJob.from_samples(silence))
    assert result.text == "" and result.segments == []


def test_long_audio_is_windowed_and_stitched_in_order(tmp_path: Path) -> None:
    tiny = engine("faster-whisper-tiny.en")
    gap = np.zeros(12 * SAMPLE_RATE, dtype=np.float32)
    first, second = samples("jfk.flac"), samples("1089-134686-0000.flac")
    audio = np.concatenate([first, gap, second, gap, first])  # ~66 s
    windows = split_into_windows(audio)
    assert len(windows) >= 2
    assert all(len(w.samples) <= 30 * SAMPLE_RATE for w in windows)
    results = tiny.transcribe_batch(
        [TranscriptionJob.from_samples(w.samples, offset=w.offset) for w in windows]
    )
    merged = merge_window_results(results, len(audio) / SAMPLE_RATE)
    text = merged.text.lower()
    assert text.index("ask not") < text.index("stew") < text.rindex("ask not")
    starts = [s.start for s in merged.segments]
    assert starts == sorted(starts)
    assert merged.segments[-1].end > 50.0
    assert [s.id for s in merged.segments] == list(range(len(merged.segments)))


def test_numpy_blas_runs_on_the_calling_thread_only() -> None:
    # Extra BLAS threads busy-wait after each mel product and starve CTranslate2's workers.
    engine("faster-whisper-tiny.en")
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)


def test_windows_encoded_one_at_a_time_match_a_stacked_encode() -> None:
    tiny = engine("faster-whisper-tiny.en")
    assert tiny.config.encode_batch_size == 1  # the shipped CPU setting
    features = np.stack(
        [
            pad_or_trim(tiny.model.feature_extractor(samples(clip))[:, :-1])
            for clip in ["jfk.flac", "1089-134686-0000.flac", "jfk.flac"]
        ]
    )
    one_by_one = np.asarray(tiny.decoder.encode(features, tiny.model))
    stacked = np.asarray(tiny.model.encode(features))
    assert one_by_one.shape == stacked.shape == (3, 1500, 384)
    np.testing.assert_allclose(one_by_one, stacked, atol=1e-3)
    # the two copies of one clip in one batch get the same output as each other
    np.testing.assert_array_equal(one_by_one[0], one_by_one[2])


def test_a_batch_is_decoded_in_groups_of_decode_batch_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tiny = engine("faster-whisper-tiny.en")
    group_sizes: list[int] = []
    decode = tiny.decoder.decode

    def recording(jobs: list[TranscriptionJob], model: WhisperModel) -> list[TranscriptionResult]:
        group_sizes.append(len(jobs))
        return decode(jobs, model)

    monkeypatch.setattr(tiny.decoder, "decode", recording)
    jfk = TranscriptionJob.from_samples(samples("jfk.flac"))
    results = tiny.transcribe_batch([jfk] * 6)
    # not split into three groups of two to fill both workers: a lone window costs more
    assert sorted(group_sizes) == [2, tiny.config.decode_batch_size] == [2, 4]
    assert len({r.text for r in results}) == 1 and "ask not" in results[0].text


def test_a_request_alone_is_decoded_on_the_solo_instance_and_not_under_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tiny = engine("faster-whisper-tiny.en")
    solo = tiny.instances.solo
    assert solo is not None and tiny.config.solo_cpu_threads == 2
    used: list[WhisperModel] = []
    both_started = threading.Barrier(2, timeout=30)
    decode = tiny.decoder.decode

    def recording(jobs: list[TranscriptionJob], model: WhisperModel) -> list[TranscriptionResult]:
        used.append(model)
        if len(jobs) == 2:  # the two concurrent calls below overlap for sure
            both_started.wait()
        return decode(jobs, model)

    monkeypatch.setattr(tiny.decoder, "decode", recording)
    # A fresh chooser (no load for a long time) on a stopped clock: how long the decodes
    # take on a busy machine must not decide "right after the load" below; the idle window
    # itself is tested with a fake clock in tests/unit/test_engine_instances.py.
    chooser = InstanceChooser(tiny.model, solo, clock=lambda: 1000.0)
    monkeypatch.setattr(tiny, "instances", chooser)
    jfk = TranscriptionJob.from_samples(samples("jfk.flac"))
    alone = tiny.transcribe(jfk)
    assert used == [solo]

    used.clear()
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(tiny.transcribe_batch, [[jfk, jfk], [jfk, jfk]]))
    # the first group to start may take the solo instance; the one beside it may not
    assert len(used) == 2 and tiny.model in used
    used.clear()
    tiny.transcribe(jfk)  # right after the load: still the workers' instance
    assert used == [tiny.model]
    # both instances give the same text
    assert {r.text for batch in together for r in batch} == {alone.text}


def _cpu_ticks(thread: int) -> int:
    """User plus system CPU time a thread of this process has used, in clock ticks."""
    fields = Path(f"/proc/self/task/{thread}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_a_niced_engine_decodes_on_the_threads_it_lowered() -> None:
    path = MODELS_DIR / "faster-whisper-tiny.en"
    niced = FasterWhisperEngine(path, load_manifest(path / "theo.yaml"), niceness=7)
    config = niced.config
    # the workers' threads and the solo instance's, at least
    assert len(niced.threads) >= config.num_workers + 1
    assert {os.getpriority(os.PRIO_PROCESS, t) for t in niced.threads} == {7}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0
    before = {t: _cpu_ticks(t) for t in thread_ids()}
    jobs = [TranscriptionJob.from_samples(samples("1089-134686-0000.flac"))] * 4
    niced.transcribe_batch(jobs)
    niced.transcribe(jobs[0])  # alone: on the solo instance, whose OpenMP threads start now
    spent = {t: _cpu_ticks(t) - before.get(t, 0) for t in thread_ids()}
    low = sum(ticks for t, ticks in spent.items() if os.getpriority(os.PRIO_PROCESS, t) == 7)
    # the encoder and decoder ran at the lowered priority: on the threads the loads
    # started, or on threads those started (numpy's mel spectrogram is the rest)
    assert low >= 0.8 * sum(spent.values()) > 0


# --- long-form windows ------------------------------------------------------------------------


def test_long_form_windows_are_text_with_segments_timed_where_speech_starts() -> None:
    tiny = engine("faster-whisper-tiny.en")
    gap = np.zeros(3 * SAMPLE_RATE, dtype=np.float32)
    jfk, stew = samples("jfk.flac"), samples("1089-134686-0000.flac")
    audio = np.concatenate([jfk, gap, stew, gap, jfk])  # ~38 s
    windows = split_into_windows(audio, vad=True)
    plain = tiny.transcribe_batch(
        [TranscriptionJob.from_samples(w.samples, offset=w.offset) for w in windows]
    )
    long_form = tiny.transcribe_batch(
        [
            TranscriptionJob.from_samples(
                w.samples, offset=w.offset, long_form=True, word_timestamps=True
            )
            for w in windows
        ]
    )
    merged = merge_window_results(long_form, len(audio) / SAMPLE_RATE)
    assert word_errors(merge_window_results(plain, 38.0).text, merged.text) <= 2
    starts = [s.start for s in merged.segments]
    assert starts == sorted(starts)
    for window, result in zip(windows, long_form, strict=True):
        end = window.offset + len(window.samples) / SAMPLE_RATE
        assert all(window.offset <= s.start <= s.end <= end + 0.5 for s in result.segments)
    # A segment starts where the second clip's speech does (after 3 s of silence).
    stew_starts = len(jfk) / SAMPLE_RATE + 3.0
    assert min(abs(s - stew_starts) for s in starts) < 0.6
    assert merged.words and [w.word for w in merged.words][:3] == [" And", " so", " my"]


def test_a_long_form_window_whose_text_leaves_speech_out_is_decoded_again() -> None:
    # Five read sentences, as the memory benchmark's block starts: decoded as text, tiny.en
    # gives only the last one ("If the reader will excuse me ..."), its first 18 s left out.
    tiny = engine("faster-whisper-tiny.en")
    gap = np.zeros(int(0.8 * SAMPLE_RATE), dtype=np.float32)
    clips = ["1089-134686-0000", "1089-134686-0001", "1089-134691-0000", "1089-134691-0001"]
    clips.append("2412-153948-0000")
    audio = np.concatenate([part for c in clips for part in (samples(f"{c}.flac"), gap)])
    window = split_into_windows(audio, vad=True)[0]
    result = tiny.transcribe(
        TranscriptionJob.from_samples(window.samples, offset=window.offset, long_form=True)
    )
    text = result.text.lower()
    for words in ["stew for dinner", "belly", "wait no longer", "paced up and down", "excuse me"]:
        assert words in text
    assert text.index("stew") < text.index("excuse")
    # decoded with timestamps, its words still aligned: a segment starts where each clip's
    # speech does (LibriSpeech clips open with 0.3-0.6 s of silence)
    starts = [s.start for s in result.segments]
    clip_starts = np.cumsum([0] + [len(samples(f"{c}.flac")) + len(gap) for c in clips[:-1]])
    for clip_start in clip_starts / SAMPLE_RATE:
        assert any(clip_start <= start <= clip_start + 1.0 for start in starts), clip_start


def test_long_form_and_plain_jobs_share_a_batch() -> None:
    tiny = engine("faster-whisper-tiny.en")
    jfk = samples("jfk.flac")
    plain, long_form = tiny.transcribe_batch(
        [
            TranscriptionJob.from_samples(jfk),
            TranscriptionJob.from_samples(jfk, offset=60.0, long_form=True),
        ]
    )
    assert word_errors(plain.text, long_form.text) <= 1
    assert long_form.segments[0].start >= 60.0
    assert long_form.words is None  # not asked for, though the engine aligned them


def test_a_long_form_window_sure_of_its_language_overrides_the_hint() -> None:
    base = engine("faster-whisper-base")
    french = TranscriptionJob.from_samples(
        samples("fleurs-fr-000.ogg"), long_form=True, language_hint="en"
    )
    assert base.transcribe(french).language == "fr"


def encoder_inputs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The mel frames of every encoder input from now on (the real encoder still runs)."""
    frames: list[int] = []
    encode = fw.encode

    def recording(model: WhisperModel, features: np.ndarray) -> object:
        frames.append(features.shape[-1])
        return encode(model, features)

    monkeypatch.setattr(fw, "encode", recording)
    return frames


def test_a_shorter_encoder_input_gives_the_same_text(
    monkeypatch: pytest.MonkeyPatch, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    tiny = engine("faster-whisper-tiny.en")
    inputs = encoder_inputs(monkeypatch)
    jfk = samples("jfk.flac")  # 11 s
    full = tiny.transcribe(TranscriptionJob.from_samples(jfk))
    short = tiny.transcribe(TranscriptionJob.from_samples(jfk, encoder_seconds=15))
    assert inputs == [3000, 1500]
    reference = fixture_manifest["jfk.flac"]["text"]
    assert word_errors(reference, full.text) == word_errors(reference, short.text) == 0
    assert short.segments[-1].end <= 11.0  # the padding holds no text


def test_a_failed_decode_on_a_short_encoder_input_is_done_again_on_30_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One word (0.7 s) in 5 s of input: tiny.en's decode fails (a loop or an improbable
    # text, as most such short inputs do); the window is decoded again as Whisper was trained.
    tiny = engine("faster-whisper-tiny.en")
    inputs = encoder_inputs(monkeypatch)
    word = TranscriptionJob.from_samples(samples("an443-mmxg-b.wav"), encoder_seconds=1)
    result = tiny.transcribe(word)
    assert inputs == [500, 3000]
    assert word_errors("no", result.text) == 0


def test_long_form_windows_of_different_lengths_stack_on_the_longest_input(
    monkeypatch: pytest.MonkeyPatch, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    # JFK (11 s) alone would get 15 s of input, JFK then a LibriSpeech sentence (21 s)
    # 25 s: as one stack, both get 25 s, one encoder input per window and one decode.
    tiny = engine("faster-whisper-tiny.en")
    inputs = encoder_inputs(monkeypatch)
    jfk, other = samples("jfk.flac"), samples("1089-134686-0000.flac")
    jobs = [
        TranscriptionJob.from_samples(audio, long_form=True, encoder_seconds=15)
        for audio in (jfk, np.concatenate([jfk, other]))
    ]
    alone, joined = tiny.transcribe_batch(jobs)
    assert inputs == [2500, 2500]
    jfk_text = fixture_manifest["jfk.flac"]["text"]
    other_text = fixture_manifest["1089-134686-0000.flac"]["text"]
    assert word_errors(jfk_text, alone.text) == 0
    assert word_errors(f"{jfk_text} {other_text}", joined.text) <= 2
