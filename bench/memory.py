"""A 3-hour speech upload: the API service's memory over the whole request, and its text.

    make bench-memory               # or: .venv/bin/python -m bench.memory [options]

Builds, reproducibly, a block of the eval set's English clips (LibriSpeech, LJ Speech, AN4
and the rest of ``manifest.jsonl``'s English items, in manifest order, 0.8 s of silence
between clips, 2 s after the block) and repeats it to 3 hours; encodes that as mono Opus
at 12 kbit/s (~16 MB, under OpenAI's 25 MB cap) and sends it to a fresh server. Reported:
the API service's RSS growth (peak minus before, sampled every 250 ms), the runner's, the
request's wall time, the WER against the clips' references, and how far the 3-hour
transcript is from the block's own transcript repeated (what cutting a long upload piece by
piece must not change). Writes bench/results/memory.md (``--out``).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import av
import httpx
import numpy as np
import psutil

from bench.common import DEFAULT_EVAL_DIR, REPO_ROOT, eval_items, machine, wer, write_report
from bench.long_recordings import DEFAULT_CACHE_DIR
from bench.run import RssSampler, start_server
from theo.audio import decode_audio

SAMPLE_RATE = 16_000
JFK = DEFAULT_EVAL_DIR / "whisper" / "jfk.flac"
GAP_SECONDS = 0.8
BLOCK_TAIL_SECONDS = 2.0
BITRATE = 12_000


def build_block(eval_dir: Path) -> tuple[np.ndarray, str]:
    """The English clips one after another: their samples and their references."""
    pieces, references = [], []
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    for item in eval_items(eval_dir, "en"):
        pieces += [decode_audio(item.path.read_bytes()), gap]
        references.append(item.text)
    pieces.append(np.zeros(int(BLOCK_TAIL_SECONDS * SAMPLE_RATE), dtype=np.float32))
    return np.concatenate(pieces), " ".join(references)


def encode_opus(samples: np.ndarray, repeats: int) -> bytes:
    """``samples`` ``repeats`` times over, as Ogg Opus (48 kHz, as Opus requires)."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        assert isinstance(stream, av.AudioStream)
        stream.bit_rate = BITRATE
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        second = SAMPLE_RATE * 20  # 20 s frames keep the resampler's input small
        for _ in range(repeats):
            for start in range(0, len(pcm), second):
                frame = av.AudioFrame.from_ndarray(
                    pcm[None, start : start + second], format="s16", layout="mono"
                )
                frame.sample_rate = SAMPLE_RATE
                for resampled in resampler.resample(frame):
                    for packet in stream.encode(resampled):
                        container.mux(packet)
        for resampled in resampler.resample(None):
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def transcribe(base_url: str, model: str, data: bytes, name: str) -> tuple[str, float]:
    started = time.perf_counter()
    response = httpx.post(
        f"{base_url}/v1/audio/transcriptions",
        files={"file": (name, data)},
        data={"model": model, "response_format": "json"},
        timeout=3600,
    )
    response.raise_for_status()
    return str(response.json()["text"]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="faster-whisper-tiny.en")
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--port", type=int, default=18767)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "memory.md")
    args = parser.parse_args()

    block, reference = build_block(args.eval_dir)
    block_seconds = len(block) / SAMPLE_RATE
    repeats = max(1, round(args.hours * 3600 / block_seconds))
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    cached = args.cache_dir / f"memory_{repeats}x{len(block)}_{BITRATE}.ogg"
    if not cached.exists():
        cached.write_bytes(encode_opus(block, repeats))
    long_file = cached.read_bytes()
    block_file = encode_opus(block, 1)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    process, _ = start_server(args.port, args.models_dir, JFK.read_bytes())
    base_url = f"http://127.0.0.1:{args.port}"
    try:
        block_text, block_wall = transcribe(base_url, args.model, block_file, "block.ogg")
        sampler = RssSampler(psutil.Process(process.pid))
        sampler._sample()
        before = dict(sampler.peaks)
        sampler.peaks.clear()
        sampler.start()
        text, wall = transcribe(base_url, args.model, long_file, "three_hours.ogg")
        sampler.stop()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)

    def growth(kind: str) -> float:
        grown = [p - before.get(label, p) for label, p in sampler.peaks.items() if kind in label]
        return max(grown, default=float("nan"))

    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "model": args.model,
        "audio_seconds": round(block_seconds * repeats, 1),
        "upload_mb": round(len(long_file) / 2**20, 2),
        "block_seconds": round(block_seconds, 1),
        "repeats": repeats,
        "api_growth_mb": round(growth("api service"), 1),
        "runner_growth_mb": round(growth("runner"), 1),
        "wall_seconds": round(wall, 1),
        "block_wall_seconds": round(block_wall, 1),
        "wer_vs_references": round(wer([" ".join([reference] * repeats)], [text]), 2),
        "wer_vs_block_repeated": round(wer([" ".join([block_text] * repeats)], [text]), 2),
        "block_wer_vs_references": round(wer([reference], [block_text]), 2),
    }
    text_out = "\n".join(
        [
            f"# 3-hour upload benchmark ({report['date']})",
            "",
            f"Machine: {report['machine']}. `{args.model}`, one request on a fresh server: "
            f"{report['audio_seconds']:.0f} s of speech ({repeats} x a {block_seconds:.0f} s "
            f"block of the eval set's English clips) as Opus at {BITRATE // 1000} kbit/s, "
            f"{report['upload_mb']} MB.",
            "",
            "| API RSS growth MB | runner RSS growth MB | wall s | WER vs references % | "
            "WER vs the block's transcript repeated % | block alone: WER %, wall s |",
            "|---|---|---|---|---|---|",
            f"| {report['api_growth_mb']} | {report['runner_growth_mb']} | "
            f"{report['wall_seconds']} | {report['wer_vs_references']} | "
            f"{report['wer_vs_block_repeated']} | {report['block_wer_vs_references']}, "
            f"{report['block_wall_seconds']} |",
            "",
            "Goal (issue 17): API memory growth ≤ 500 MB over the whole request.",
            "",
        ]
    )
    write_report(args.out, text_out, report)


if __name__ == "__main__":
    main()
