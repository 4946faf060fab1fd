"""The raw engine, no server: faster-whisper configurations on the same audio as Theo.

Run as its own process per model (so its peak RSS is its own); prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel

from bench.common import eval_items, runner_blas, wer
from theo.audio import decode_audio

# The median of this many single requests: with 3, the figure moved by ±15% between runs
# on the 2-core machine, more than the c=1 goal's 10% margin.
SINGLE_RUNS = 10


def _rtfx(audio_seconds: float, wall: float) -> float:
    return audio_seconds / wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--eval-dir", type=Path)
    args = parser.parse_args()

    clip = decode_audio(args.clip.read_bytes())
    seconds = len(clip) / 16_000
    total = seconds * args.copies
    out: dict[str, object] = {"clip_seconds": seconds, "copies": args.copies}
    model = WhisperModel(str(args.model_dir), device="cpu", compute_type=args.compute_type)

    def run(m: WhisperModel, audio: np.ndarray) -> str:
        segments, _ = m.transcribe(audio, beam_size=args.beam_size)
        return "".join(s.text for s in segments)

    run(model, clip)  # warm-up
    singles = []
    for _ in range(SINGLE_RUNS):
        start = time.perf_counter()
        run(model, clip)
        singles.append(time.perf_counter() - start)
    out["single_latency_s"] = statistics.median(singles)

    start = time.perf_counter()
    for _ in range(args.copies):
        run(model, clip)
    out["sequential_rtfx"] = _rtfx(total, time.perf_counter() - start)

    # The copies as 8 separate chunks of one batch: the same work as 8 requests.
    pipeline = BatchedInferencePipeline(model)
    long_audio = np.concatenate([clip] * args.copies)
    clips = [{"start": i * seconds, "end": (i + 1) * seconds} for i in range(args.copies)]
    start = time.perf_counter()
    segments, _ = pipeline.transcribe(
        long_audio, beam_size=args.beam_size, batch_size=8, clip_timestamps=clips
    )
    list(segments)
    out["batched_pipeline_rtfx"] = _rtfx(total, time.perf_counter() - start)

    if args.eval_dir:
        items = eval_items(args.eval_dir)
        references = [i.text for i in items]
        hypotheses = [run(model, decode_audio(item.path.read_bytes())) for item in items]
        out["wer"] = wer(references, hypotheses)
        out["wer_items"] = len(items)
        # Again on the server's log-mel arithmetic.
        with runner_blas():
            hypotheses = [run(model, decode_audio(item.path.read_bytes())) for item in items]
        out["wer_blas1"] = wer(references, hypotheses)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    workers = WhisperModel(
        str(args.model_dir),
        device="cpu",
        compute_type=args.compute_type,
        cpu_threads=1,
        num_workers=2,
    )
    run(workers, clip)
    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: run(workers, clip), range(args.copies)))
    out["two_workers_rtfx"] = _rtfx(total, time.perf_counter() - start)

    # Not one of the raw configurations: the same with Theo's runner setting of one
    # BLAS thread (its idle threads busy-wait), to show what that setting is worth alone.
    with runner_blas(), ThreadPoolExecutor(2) as pool:
        start = time.perf_counter()
        list(pool.map(lambda _: run(workers, clip), range(args.copies)))
        out["two_workers_blas1_rtfx"] = _rtfx(total, time.perf_counter() - start)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
