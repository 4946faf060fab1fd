"""A few megabytes must not cost gigabytes: memory and CPU per upload, against a real server."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import av
import httpx
import numpy as np
import psutil
import pytest

from tests.conftest import FIXTURES, MODELS_DIR, word_errors
from tests.integration.conftest import (
    TINY,
    RunningServer,
    api_process,
    post_audio,
    start_server,
    stop_server,
    wait_warmed_up,
)
from theo.audio import decode_audio
from theo.chunking import merge_window_results, split_into_windows
from theo.engine import FasterWhisperEngine
from theo.manifest import load_manifest
from theo.settings import Settings
from theo.transcription import TranscriptionJob

JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
SILENCE_SECONDS = 2 * 3600 + 53 * 60


def silence_flac() -> bytes:
    """2 h 53 min of digital silence at 16 kHz as FLAC (~2 MB)."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=16000, layout="mono")
        assert isinstance(stream, av.AudioStream)
        minute = np.zeros((1, 16000 * 60), dtype=np.int16)
        for _ in range(SILENCE_SECONDS // 60):
            frame = av.AudioFrame.from_ndarray(minute, format="s16", layout="mono")
            frame.sample_rate = 16000
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # Every window encoded on 30 s: with a shorter input, a stack is encoded on its longest
    # window's, so how the runner happened to stack windows would change their text (the
    # one-pass comparison below would measure batching, not cutting).
    env = {"THEO_LONG_FORM_ENCODER_SECONDS": "0"}
    server = start_server(tmp_path_factory.mktemp("memory"), env=env)
    wait_warmed_up(server)  # its calls would count as the API process's CPU below
    yield server
    stop_server(server)


class PeakRss:
    """Samples a process's RSS every 50 ms while in use."""

    def __init__(self, process: psutil.Process):
        self.process = process
        self.before = process.memory_info().rss
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return float(self.peak - self.before) / 2**20


def test_hours_of_silence_cost_little_memory_and_cpu(fresh: RunningServer) -> None:
    data = silence_flac()
    assert len(data) < 3 * 2**20
    api = api_process(fresh)
    cpu_before = sum(api.cpu_times()[:2])
    with PeakRss(api) as rss:
        response = post_audio(fresh, "silence.flac", data)
    cpu = sum(api.cpu_times()[:2]) - cpu_before
    assert response.status_code == 200, response.text
    assert response.json()["text"] == ""
    print(f"\n2 h 53 min of silence: API RSS +{rss.growth_mb:.0f} MB, {cpu:.1f} s CPU")
    assert rss.growth_mb <= 300
    # Issue 17's goal is 3 s, measured 1.8-2.4 s here (2.3-3.8 s before decoding went through
    # a FIFO; a CI run once took 3.6 s): the bound is set where a noisy shared machine cannot
    # fail it, still 6x below the 31.8 s it cost before.
    assert cpu <= 5.0


def test_eight_at_once_leave_room_for_a_short_request(fresh: RunningServer) -> None:
    data = silence_flac()
    jfk = (FIXTURES / "jfk.flac").read_bytes()
    api = api_process(fresh)
    with PeakRss(api) as rss, ThreadPoolExecutor(max_workers=9) as pool:
        silences = [pool.submit(post_audio, fresh, "s.flac", data) for _ in range(8)]
        time.sleep(0.5)
        started = time.monotonic()
        short = post_audio(fresh, "jfk.flac", jfk)
        short_seconds = time.monotonic() - started
        statuses = [s.result().status_code for s in silences]
    assert statuses == [200] * 8
    assert short.status_code == 200
    assert word_errors(JFK_TEXT, short.json()["text"]) <= 1
    print(f"\n8 silences at once: API RSS +{rss.growth_mb:.0f} MB; JFK in {short_seconds:.1f} s")
    assert rss.growth_mb <= 1024
    assert short_seconds <= 5.0


SPEECH_CLIPS = [
    "1089-134686-0000.flac", "1089-134686-0001.flac", "1089-134691-0000.flac",
    "1089-134691-0001.flac", "2412-153948-0000.flac", "jfk.flac", "LJ001-0002.wav",
    "LJ001-0008.mp3",
]  # fmt: skip
THREE_HOURS = 3 * 3600 - 60  # under THEO_MAX_AUDIO_SECONDS (3 h)


def three_hours_of_speech() -> bytes:
    """The fixtures' English clips, 0.8 s apart, over and over for ~3 h, as 12 kbit/s Opus.

    ~16 MB, as a user's long low-bitrate recording would be (OpenAI's cap is 25 MB).
    """
    gap = np.zeros(int(0.8 * 16000), dtype=np.float32)
    clips = [decode_audio((FIXTURES / name).read_bytes()) for name in SPEECH_CLIPS]
    block = np.concatenate([part for clip in clips for part in (clip, gap)])
    pcm = (np.clip(block, -1, 1) * 32767).astype(np.int16)
    repeats = THREE_HOURS * 16000 // len(pcm)
    out = io.BytesIO()
    with av.open(out, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        assert isinstance(stream, av.AudioStream)
        stream.bit_rate = 12_000
        stream.options = {"compression_level": "0"}  # the fastest encode; the test's time
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = 16000
        for _ in range(repeats):
            frame.pts = None
            for resampled in resampler.resample(frame):
                container.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            container.mux(stream.encode(resampled))
        container.mux(stream.encode(None))
    return out.getvalue()


def test_three_hours_of_speech_in_bounded_memory_with_the_text_of_one_pass(
    fresh: RunningServer,
) -> None:
    data = three_hours_of_speech()
    assert len(data) < 25 * 2**20
    api = api_process(fresh)
    with PeakRss(api) as rss:
        response = httpx.post(
            f"{fresh.base_url}/v1/audio/transcriptions",
            files={"file": ("speech.ogg", data)},
            data={"model": TINY, "response_format": "verbose_json"},
            timeout=900,
        )
    assert response.status_code == 200, response.text
    served = response.json()
    print(f"\n~3 h of speech: API RSS +{rss.growth_mb:.0f} MB, {served['duration']:.0f} s")
    assert rss.growth_mb <= 500
    assert served["duration"] > THREE_HOURS - 60

    # The text of the same audio decoded whole and cut in one pass (what the server did
    # before it decoded uploads piece by piece), for its first 10 minutes: the same windows,
    # so the same words.
    audio = decode_audio(data)
    tiny = MODELS_DIR / TINY
    manifest = load_manifest(tiny / "theo.yaml")
    windows = split_into_windows(
        audio,
        vad=manifest.engine_config.vad_filter,
        long_window_seconds=Settings().long_window_seconds(manifest.engine_config),
    )
    first = [w for w in windows if w.offset < 600]
    cutoff = first[-1].offset + len(first[-1].samples) / 16000
    engine = FasterWhisperEngine(tiny, manifest)
    jobs = [
        TranscriptionJob.from_samples(w.samples, offset=w.offset, long_form=True) for w in first
    ]
    whole = merge_window_results(engine.transcribe_batch(jobs), cutoff)
    expected = " ".join(s.text.strip() for s in whole.segments)
    got = " ".join(s["text"].strip() for s in served["segments"] if s["start"] < cutoff)
    differing = word_errors(expected, got)
    print(f"first {cutoff:.0f} s: {len(expected.split())} words, {differing} differ")
    # Equal but for batching noise: the runner stacks windows with others, the engine here
    # four at a time (tests/integration/test_engine.py shows stacks give the same text).
    assert differing <= 2
