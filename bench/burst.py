"""Bursts against the server: N requests at once through the OpenAI SDK (default retries).

    make bench-burst                 # or: .venv/bin/python -m bench.burst [options]

For each model and burst size, sends N JFK requests at once and, in the same run, the same
N requests at concurrency 8 (the closed-loop throughput a careful client gets). Reports
completion time and its ratio to the c=8 run, p50/p95 latency, errors, wrong transcripts
and the server's peak RSS. Then the fairness of the queue with a long file: a long
recording alone, a burst alone, and both together. Writes bench/results/burst.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from openai import AsyncOpenAI

from bench.common import DEFAULT_EVAL_DIR, REPO_ROOT, normalize, wer
from bench.run import RssSampler, start_server

JFK = REPO_ROOT / "tests" / "fixtures" / "jfk.flac"
JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
LONG = "long/ljspeech_LJ001-0001_to_0032.flac"  # 231 s, one reader
CLOSED_LOOP_CONCURRENCY = 8
RESULTS = REPO_ROOT / "bench" / "results"


@dataclass
class Burst:
    model: str
    requests: int
    concurrency: int
    wall: float
    p50: float
    p95: float
    errors: int
    wrong: int
    peak_rss_mb: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def send(
    sdk: AsyncOpenAI, model: str, data: bytes, name: str, concurrency: int, n: int
) -> tuple[float, list[float], list[str | None]]:
    """``n`` requests, at most ``concurrency`` at once; (wall, latencies, texts or None)."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> tuple[float, str | None]:
        async with gate:
            started = time.perf_counter()
            try:
                result = await sdk.audio.transcriptions.create(model=model, file=(name, data))
            except Exception:
                return time.perf_counter() - started, None
            return time.perf_counter() - started, result.text

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - started, [t for t, _ in outcomes], [x for _, x in outcomes]


async def burst(
    sdk: AsyncOpenAI, sampler: RssSampler, model: str, n: int, concurrency: int
) -> Burst:
    sampler.total_peak = 0.0
    wall, latencies, texts = await send(sdk, model, JFK.read_bytes(), "jfk.flac", concurrency, n)
    ok = [t for t in texts if t is not None]
    return Burst(
        model=model,
        requests=n,
        concurrency=concurrency,
        wall=wall,
        p50=percentile(latencies, 0.5),
        p95=percentile(latencies, 0.95),
        errors=n - len(ok),
        wrong=sum(normalize(t) != normalize(JFK_TEXT) and wer([JFK_TEXT], [t]) > 10 for t in ok),
        peak_rss_mb=sampler.total_peak,
    )


async def fairness(sdk: AsyncOpenAI, model: str, eval_dir: Path, n: int) -> dict[str, float]:
    """A long file and a burst of short requests, apart and together (seconds)."""
    long_data = (eval_dir / LONG).read_bytes()
    jfk = JFK.read_bytes()

    async def long_file() -> float:
        started = time.perf_counter()
        await sdk.audio.transcriptions.create(model=model, file=("long.flac", long_data))
        return time.perf_counter() - started

    long_alone = await long_file()
    _, short_alone, _ = await send(sdk, model, jfk, "jfk.flac", n, n)
    long_task = asyncio.create_task(long_file())
    await asyncio.sleep(2.0)  # the long file's windows are already at the runner
    _, short_mixed, _ = await send(sdk, model, jfk, "jfk.flac", n, n)
    long_mixed = await long_task
    return {
        "long_alone_s": long_alone,
        "long_with_burst_s": long_mixed,
        "burst_alone_p95_s": percentile(short_alone, 0.95),
        "burst_with_long_p95_s": percentile(short_mixed, 0.95),
    }


def markdown(bursts: list[Burst], fair: dict[str, dict[str, float]], meta: dict[str, Any]) -> str:
    lines = [
        f"# Burst benchmark ({meta['date']}, {meta['cpus']} CPUs)",
        "",
        "N JFK requests (11 s) at once through the OpenAI SDK with its default retries, vs",
        f"the same N at concurrency {CLOSED_LOOP_CONCURRENCY}. `ratio` = burst time / c=8 time.",
        "",
        "| model | N | burst s | c=8 s | ratio | p50 s | p95 s | errors | wrong | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    closed = {(b.model, b.requests): b for b in bursts if b.concurrency != b.requests}
    for b in bursts:
        if b.concurrency != b.requests:
            continue
        base = closed.get((b.model, b.requests))
        ratio = f"{b.wall / base.wall:.2f}" if base else "-"
        c8 = f"{base.wall:.1f}" if base else "-"
        lines.append(
            f"| {b.model} | {b.requests} | {b.wall:.1f} | {c8} | {ratio} | {b.p50:.2f} | "
            f"{b.p95:.2f} | {b.errors} | {b.wrong} | {b.peak_rss_mb:.0f} |"
        )
    lines += [
        "",
        f"Fairness: `{LONG}` (231 s) and a burst of short requests, apart and together.",
        "",
        "| model | long alone s | long with burst s | burst p95 alone s | burst p95 with long s |",
        "|---|---|---|---|---|",
    ]
    for model, f in fair.items():
        lines.append(
            f"| {model} | {f['long_alone_s']:.1f} | {f['long_with_burst_s']:.1f} | "
            f"{f['burst_alone_p95_s']:.2f} | {f['burst_with_long_p95_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> None:
    port = args.port
    process, _ = start_server(port, args.models_dir, JFK.read_bytes())
    sampler = RssSampler(psutil.Process(process.pid))
    sampler.start()
    sdk = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", timeout=900)
    bursts: list[Burst] = []
    fair: dict[str, dict[str, float]] = {}
    try:
        for model in args.models:
            for n in args.sizes:
                for concurrency in (n, CLOSED_LOOP_CONCURRENCY):
                    result = await burst(sdk, sampler, model, n, concurrency)
                    print(json.dumps(asdict(result)), flush=True)
                    bursts.append(result)
            if args.eval_dir.is_dir():
                fair[model] = await fairness(sdk, model, args.eval_dir, args.fairness_burst)
                print(json.dumps({model: fair[model]}), flush=True)
    finally:
        sampler.stop()
        process.terminate()
        process.wait(timeout=60)
    meta = {"date": time.strftime("%Y-%m-%d"), "cpus": psutil.cpu_count()}
    report = markdown(bursts, fair, meta)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "burst.md").write_text(report)
    print(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["faster-whisper-tiny.en"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 256])
    parser.add_argument("--fairness-burst", type=int, default=32)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
