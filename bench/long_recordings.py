"""The long recordings of the long-form benchmark (bench/long.py), and how each is scored.

Two kinds: the eval set's own long files (a 231 s LJ Speech chapter with every sentence's
true start, five FLEURS languages in a row, a 3 min French talk), and *chains* built here
from the eval set's short clips: clips of one language from many speakers with pauses of
varied length between them, one 10 s silence and one 6 s stretch of noise. A chain is
built from the manifest with a fixed seed, so every run (and machine) gets the same
samples; it is written to a cache folder outside the repository, never committed.
"""

from __future__ import annotations

import hashlib
import json
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import normalize
from theo.audio import decode_audio
from theo.transcription import SAMPLE_RATE

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "theo-bench-long"
# Pauses between a chain's clips, in turn (seconds): sentence gaps, a breath, a long pause.
PAUSES = (0.6, 1.2, 0.4, 2.5, 0.8, 3.5, 1.0)
SILENCE_SECONDS = 10.0
NOISE_SECONDS = 6.0
# A room's noise floor under the whole chain (-60 dBFS), so its silences are not digital
# zeros (which Theo skips without decoding); the noise stretch is white noise as loud as
# the speech (-26 dBFS).
FLOOR_RMS = 0.001
SPEECH_RMS = 0.05  # each clip's level in a chain (-26 dBFS)
NOISE_RMS = 0.05
SEED = 20261128
# Words of a segment whose middle falls this far inside a silence or noise stretch count
# as emitted inside it (the margin forgives a segment that only runs over its edge).
STRETCH_MARGIN_SECONDS = 0.5


@dataclass(frozen=True)
class Stretch:
    """A span of a recording with no speech in it: "silence" or "noise"."""

    kind: str
    start: float
    end: float


@dataclass
class Recording:
    """A long recording, its reference, and what it is scored on."""

    name: str
    path: Path
    language: str  # "mixed" when it changes
    reference: str
    duration: float
    # True starts of its sentences or clips (seconds), for the timestamp error: a chain's
    # are where each clip's speech starts (the clip's start plus its leading silence).
    starts: list[float] = field(default_factory=list)
    # Whether ``starts`` are true boundaries (not another model's segments).
    true_starts: bool = True
    stretches: list[Stretch] = field(default_factory=list)
    note: str = ""

    @property
    def english(self) -> bool:
        return self.language == "en"


@dataclass(frozen=True)
class ChainSpec:
    name: str
    language: str
    paths: tuple[str, ...]  # prefixes of manifest paths, taken in manifest order
    note: str


CHAINS = (
    ChainSpec(
        "chain_en_speakers",
        "en",
        (
            "librispeech/",
            "pocketsphinx/librivox/",
            "coqui_stt/LDC93S1",
            "coqui_stt/new-home",
            "speechbrain/example1",
            "picovoice_leopard/diarization_test",
        ),
        "16 English clips: LibriSpeech, LibriVox, TIMIT, Harvard sentences, a dialogue",
    ),
    ChainSpec("chain_en_fleurs", "en", ("fleurs_cuttledoc/en/",), "10 FLEURS English clips"),
    ChainSpec(
        "chain_de",
        "de",
        ("fleurs_cuttledoc/de/", "picovoice_leopard/test_de"),
        "10 FLEURS German clips and one more German speaker",
    ),
    ChainSpec(
        "chain_es",
        "es",
        ("fleurs_cuttledoc/es/", "picovoice_leopard/test_es"),
        "10 FLEURS Spanish clips and one more Spanish speaker",
    ),
)


SHORT_NAMES = {
    "long/ljspeech_LJ001-0001_to_0032.flac": "lj_chapter",
    "long/fleurs_mixed_en_de_fr_es_pt.wav": "fleurs_5_languages",
    "whisper_timestamped/smartphone.mp3": "smartphone_fr",
}


def _manifest(eval_dir: Path, name: str) -> list[dict[str, object]]:
    lines = (eval_dir / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _cached_wav(cache_dir: Path, name: str, audio: np.ndarray) -> Path:
    """``audio`` as a WAV in the cache, named by its content (written once)."""
    digest = hashlib.sha256(audio.tobytes()).hexdigest()[:12]
    path = cache_dir / f"{name}-{digest}.wav"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        _write_wav(partial, audio)
        partial.rename(path)
    return path


def _write_wav(path: Path, samples: np.ndarray) -> None:
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())


def level(clip: np.ndarray) -> np.ndarray:
    """The clip at the chain's speech level (some FLEURS clips peak at -46 dBFS, under the
    noise floor), as one program mixes its speakers; its peak kept under 0.9."""
    rms = float(np.sqrt(np.mean(clip**2))) or 1.0
    gain = min(SPEECH_RMS / rms, 0.9 / (float(np.max(np.abs(clip))) or 1.0))
    return (clip * gain).astype(np.float32)


def speech_onset(clip: np.ndarray) -> int:
    """The first sample of a clip's speech: where its loudness, averaged over 100 ms, first
    passes a fifth of its loud frames' (the clips come with up to ~1 s of leading silence,
    some of it noisy). Neutral: no VAD model decides it."""
    frame = SAMPLE_RATE // 50
    frames = len(clip) // frame
    if frames == 0:
        return 0
    rms = np.sqrt(np.mean(clip[: frames * frame].reshape(frames, frame) ** 2, axis=1))
    average = np.convolve(rms, np.ones(5) / 5, mode="full")[:frames]  # the 100 ms up to it
    loud = np.flatnonzero(average > 0.2 * np.percentile(rms, 95))
    return max(int(loud[0]) - 4, 0) * frame if loud.size else 0


def build_chain(spec: ChainSpec, eval_dir: Path, cache_dir: Path) -> Recording:
    """One chain: its clips with pauses, a 10 s silence after the first third of them and
    6 s of noise after the second third, over a -60 dBFS noise floor (written once)."""
    items = [
        item
        for item in _manifest(eval_dir, "manifest.core.jsonl")
        if item["language"] == spec.language
        and any(str(item["path"]).startswith(prefix) for prefix in spec.paths)
    ]
    rng = np.random.default_rng(SEED)
    pieces: list[np.ndarray] = []
    starts: list[float] = []
    stretches: list[Stretch] = []
    position = 0

    def add(samples: np.ndarray) -> None:
        nonlocal position
        pieces.append(samples.astype(np.float32))
        position += len(samples)

    for index, item in enumerate(items):
        clip = level(decode_audio((eval_dir / str(item["path"])).read_bytes()))
        starts.append((position + speech_onset(clip)) / SAMPLE_RATE)
        add(clip)
        if index == len(items) - 1:
            break
        add(np.zeros(int(PAUSES[index % len(PAUSES)] * SAMPLE_RATE), np.float32))
        if index in (len(items) // 3, 2 * len(items) // 3):
            kind, seconds = (
                ("silence", SILENCE_SECONDS)
                if index == len(items) // 3
                else ("noise", NOISE_SECONDS)
            )
            begin = position / SAMPLE_RATE
            length = int(seconds * SAMPLE_RATE)
            add(rng.normal(0, NOISE_RMS, length) if kind == "noise" else np.zeros(length))
            stretches.append(Stretch(kind, begin, position / SAMPLE_RATE))
            add(np.zeros(int(0.8 * SAMPLE_RATE), np.float32))
    audio = np.concatenate(pieces)
    audio = audio + rng.normal(0, FLOOR_RMS, len(audio)).astype(np.float32)
    reference = " ".join(str(item["text"]) for item in items)
    return Recording(
        name=spec.name,
        path=_cached_wav(cache_dir, spec.name, audio),
        language=spec.language,
        reference=reference,
        duration=len(audio) / SAMPLE_RATE,
        starts=starts,
        stretches=stretches,
        note=spec.note,
    )


def eval_set_recordings(eval_dir: Path) -> list[Recording]:
    """The eval set's long files that exist (its README lists them; some may be absent).

    A true start is where the speech of a manifest segment starts (its start plus its
    leading silence, as for the chains).
    """
    recordings = []
    for item in _manifest(eval_dir, "manifest.long.jsonl"):
        path = eval_dir / str(item["path"])
        if not path.exists():
            continue
        segments = item.get("segments") or []
        assert isinstance(segments, list)
        true = item.get("ref_quality") == "human"
        starts = [float(s["start"]) for s in segments]
        if true:
            audio = decode_audio(path.read_bytes())
            starts = [
                start
                + speech_onset(audio[int(start * SAMPLE_RATE) : int(s["end"] * SAMPLE_RATE)])
                / SAMPLE_RATE
                for start, s in zip(starts, segments, strict=True)
            ]
        recordings.append(
            Recording(
                name=SHORT_NAMES.get(str(item["path"]), Path(str(item["path"])).stem),
                path=path,
                language=str(item["language"]),
                reference=str(item["text"]),
                duration=float(item["duration_s"]),  # type: ignore[arg-type]
                starts=starts,
                true_starts=true,
                note=str(item.get("notes", "")),
            )
        )
    return recordings


def all_recordings(eval_dir: Path, cache_dir: Path = DEFAULT_CACHE_DIR) -> list[Recording]:
    """The eval set's long files, then the chains."""
    return [
        *eval_set_recordings(eval_dir),
        *(build_chain(spec, eval_dir, cache_dir) for spec in CHAINS),
    ]


def shift_ms(index: int) -> int:
    """The ``index``-th shift of :func:`shifted_copy`: 0, 7, 13, 20, 27, 33, 40 ms..."""
    # Off the 10 ms log-mel hop and the 32 ms VAD frame, so that every copy gives the
    # models other frames.
    return round(index * 20 / 3)


def shifted_copy(recording: Recording, shift: int, cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """``recording`` with ``shift`` ms of digital silence before it, as a WAV in the cache.

    Nothing a listener could hear changes, but every log-mel and VAD frame does: a
    transcript's WER on such copies shows how much of a difference between two systems is
    the luck of one run (bench/long.py ``--shifts``).
    """
    audio = decode_audio(recording.path.read_bytes())
    audio = np.concatenate([np.zeros(SAMPLE_RATE * shift // 1000, np.float32), audio])
    return _cached_wav(cache_dir, f"{recording.name}-shift{shift}ms", audio)


# -- Scoring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A segment of a transcript: where it starts and ends, and its text."""

    start: float
    end: float
    text: str


def start_errors(recording: Recording, segments: list[Span]) -> list[float]:
    """For each true start, the distance to the nearest segment start (seconds)."""
    if not segments:
        return [recording.duration for _ in recording.starts]
    starts = np.array(sorted(s.start for s in segments))
    errors = []
    for true in recording.starts:
        errors.append(float(np.min(np.abs(starts - true))))
    return errors


def words_in_stretches(recording: Recording, segments: list[Span]) -> int:
    """Words of segments whose middle lies inside a silence or noise stretch."""
    count = 0
    for stretch in recording.stretches:
        low = stretch.start + STRETCH_MARGIN_SECONDS
        high = stretch.end - STRETCH_MARGIN_SECONDS
        for segment in segments:
            middle = (segment.start + segment.end) / 2
            if low <= middle <= high:
                count += len(normalize(segment.text).split())
    return count


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by linear interpolation; NaN for no values."""
    return float(np.quantile(values, q)) if values else float("nan")
