"""Theo's benchmark: the server under concurrency vs the raw engine, in one run.

    make bench                     # or: .venv/bin/python -m bench.run [options]

Starts ``bentoml serve`` with the installed models, replays a real clip at each
concurrency level, measures cold start, latency, throughput (RTFx = audio seconds per
wall second), errors, WER on the eval set and the peak RSS of every process; then runs
the raw faster-whisper configurations on the same audio, model, compute type and beam,
and writes a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import DEFAULT_EVAL_DIR, REPO_ROOT, eval_items, machine, wer, write_report

MODELS = ("faster-whisper-tiny.en", "faster-whisper-base")
# A closed loop's first and last rounds leave cores idle (ramp-up, stragglers); with 32
# requests at c=8 they are half the run. Each level runs at least this many per client.
ROUNDS_PER_LEVEL = 8


@dataclass
class LevelResult:
    concurrency: int
    requests: int
    wall: float
    latencies: list[float]
    errors: int
    audio_seconds: float

    @property
    def rtfx(self) -> float:
        return self.audio_seconds / self.wall

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class RssSampler:
    """Samples the RSS of a process tree; keeps each process's peak and the total's."""

    root: psutil.Process
    peaks: dict[str, float] = field(default_factory=dict)
    total_peak: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _label(self, proc: psutil.Process) -> str:
        try:
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            return f"pid {proc.pid}"
        for name in MODELS:
            if name.replace(".", "_").replace("-", "_") in cmd:
                return f"runner {name}"
        if proc.pid == self.root.pid:
            return "bentoml arbiter"
        if "--worker-id" in cmd or "_bentoml_impl.worker" in cmd:
            return "api service"
        return f"other ({proc.name()})"

    def _sample(self) -> None:
        total = 0.0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                rss = proc.memory_info().rss / 2**20
            except psutil.Error:
                continue
            label = f"{self._label(proc)} [{proc.pid}]"
            self.peaks[label] = max(self.peaks.get(label, 0.0), rss)
            total += rss
        self.total_peak = max(self.total_peak, total)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                with contextlib.suppress(psutil.Error):
                    self._sample()
                self._stop.wait(0.25)

        threading.Thread(target=loop, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


async def post_audio(
    client: httpx.AsyncClient, url: str, data: bytes, model: str, name: str
) -> tuple[int, float, str]:
    start = time.perf_counter()
    response = await client.post(
        url, files={"file": (name, data)}, data={"model": model}, timeout=600
    )
    text = response.json().get("text", "") if response.status_code == 200 else response.text
    return response.status_code, time.perf_counter() - start, text


async def run_level(
    base_url: str, model: str, clip: bytes, seconds: float, concurrency: int, requests: int
) -> LevelResult:
    url = f"{base_url}/v1/audio/transcriptions"
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(limits=limits) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> tuple[int, float, str]:
            async with semaphore:
                return await post_audio(client, url, clip, model, "clip.flac")

        await asyncio.gather(*(one() for _ in range(min(concurrency, 4))))  # warm-up
        start = time.perf_counter()
        outcomes = await asyncio.gather(*(one() for _ in range(requests)))
        wall = time.perf_counter() - start
    return LevelResult(
        concurrency=concurrency,
        requests=requests,
        wall=wall,
        latencies=[latency for status, latency, _ in outcomes if status == 200],
        errors=sum(status != 200 for status, _, _ in outcomes),
        audio_seconds=seconds * requests,
    )


async def server_wer(base_url: str, model: str, eval_dir: Path) -> float:
    items = eval_items(eval_dir)
    url = f"{base_url}/v1/audio/transcriptions"
    semaphore = asyncio.Semaphore(4)
    async with httpx.AsyncClient() as client:

        async def one(path: Path) -> str:
            async with semaphore:
                status, _, text = await post_audio(client, url, path.read_bytes(), model, path.name)
                return text if status == 200 else ""

        texts = await asyncio.gather(*(one(item.path) for item in items))
    return wer([item.text for item in items], list(texts))


def start_server(port: int, models_dir: Path, clip: bytes) -> tuple[subprocess.Popen[bytes], float]:
    """Start the server; return it and the cold start (launch → first 200 transcription)."""
    bentoml = Path(sys.executable).parent / "bentoml"
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(bentoml), "serve", "service:Theo", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        env={**os.environ, "THEO_MODELS_DIR": str(models_dir), "THEO_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1/audio/transcriptions"
    while time.perf_counter() - started < 300:
        try:
            response = httpx.post(
                url, files={"file": ("c.flac", clip)}, data={"model": MODELS[0]}, timeout=60
            )
            if response.status_code == 200:
                return process, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise SystemExit("server did not answer within 300 s")


def raw_engine(model_dir: Path, clip: Path, eval_dir: Path | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.raw_engine", "--model-dir", str(model_dir)]
    command += ["--clip", str(clip)]
    if eval_dir is not None:
        command += ["--eval-dir", str(eval_dir)]
    output = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"## Benchmark — {report['date']}",
        "",
        f"Machine: {report['machine']}. Clip: `{report['clip']}` "
        f"({report['clip_seconds']:.1f} s), int8, beam 5, {report['requests']} requests per "
        f"level and at least {ROUNDS_PER_LEVEL} per client. RTFx = audio seconds / wall second.",
        "",
        f"Cold start (launch → first 200): **{report['cold_start_s']:.1f} s**. "
        f"Peak RSS, all server processes together: **{report['server_peak_rss_mb']:.0f} MB**.",
        "",
    ]
    for model, data in report["models"].items():
        raw = data["raw"]
        best = max(raw["sequential_rtfx"], raw["batched_pipeline_rtfx"], raw["two_workers_rtfx"])
        lines += [
            f"### {model}",
            "",
            "| concurrency | requests | req/s | RTFx | p50 s | p95 s | max s | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for level in data["levels"]:
            lines.append(
                f"| {level['concurrency']} | {level['requests']} | {level['rps']:.2f} | "
                f"{level['rtfx']:.1f} | "
                f"{level['p50']:.2f} | {level['p95']:.2f} | {level['max']:.2f} | "
                f"{level['errors']} |"
            )
        c8 = next((lv for lv in data["levels"] if lv["concurrency"] == 8), None)
        c1 = next((lv for lv in data["levels"] if lv["concurrency"] == 1), None)
        lines += [
            "",
            "| raw engine (same run) | value |",
            "|---|---|",
            f"| single request latency | {raw['single_latency_s']:.2f} s |",
            f"| sequential RTFx | {raw['sequential_rtfx']:.1f} |",
            f"| BatchedInferencePipeline RTFx | {raw['batched_pipeline_rtfx']:.1f} |",
            f"| 2 workers x 1 thread RTFx | {raw['two_workers_rtfx']:.1f} |",
            f"| 2 workers x 1 thread, numpy BLAS on 1 thread (as Theo's runner; not a goal) | "
            f"{raw.get('two_workers_blas1_rtfx', float('nan')):.1f} |",
            f"| peak RSS | {raw['peak_rss_mb']:.0f} MB |",
            "",
            "| goal | result |",
            "|---|---|",
        ]
        if c8:
            lines.append(
                f"| c=8 RTFx ≥ best raw ({best:.1f}) | {c8['rtfx']:.1f} "
                f"({c8['rtfx'] / best:.2f}x) |"
            )
        if c1:
            lines.append(
                f"| c=1 p50 ≤ 1.10 x raw single ({raw['single_latency_s']:.2f} s) | "
                f"{c1['p50']:.2f} s ({c1['p50'] / raw['single_latency_s']:.2f}x) |"
            )
        if "server_wer" in data and "wer_blas1" in raw:
            # The goal compares on the server's log-mel arithmetic (numpy's BLAS on one
            # thread); the default's figure stands beside it.
            lines.append(
                f"| WER server = raw ± 0.3 ({raw['wer_items']} items, raw with numpy BLAS "
                f"on 1 thread as the server) | server {data['server_wer']:.2f} % vs raw "
                f"{raw['wer_blas1']:.2f} % (numpy's default BLAS threads: {raw['wer']:.2f} %) |"
            )
        elif "server_wer" in data:  # a report from before the BLAS-1 figure
            lines.append(
                f"| WER server = raw ± 0.3 ({raw['wer_items']} items) | server "
                f"{data['server_wer']:.2f} % vs raw {raw['wer']:.2f} % |"
            )
        lines.append("")
    lines.append("Peak RSS per server process (MB):")
    lines.append("")
    for label, mb in sorted(report["server_rss_mb"].items()):
        lines.append(f"- {label}: {mb:.0f}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_EVAL_DIR / "whisper" / "jfk.flac")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--no-wer", action="store_true", help="skip the eval-set WER")
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument(
        "--requests",
        type=int,
        default=32,
        help=f"requests per level, at least {ROUNDS_PER_LEVEL} per client",
    )
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "latest.md")
    args = parser.parse_args()
    eval_dir = None if args.no_wer or not args.eval_dir.is_dir() else args.eval_dir

    clip = args.clip.read_bytes()
    from theo.audio import decode_audio

    seconds = len(decode_audio(clip)) / 16_000
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "clip": args.clip.name,
        "clip_seconds": seconds,
        "requests": args.requests,
        "models": {},
    }
    process, cold = start_server(args.port, args.models_dir, clip)
    report["cold_start_s"] = cold
    sampler = RssSampler(psutil.Process(process.pid))
    sampler.start()
    base_url = f"http://127.0.0.1:{args.port}"
    try:
        for model in args.models:
            levels = []
            for concurrency in args.levels:
                requests = max(args.requests, ROUNDS_PER_LEVEL * concurrency)
                result = asyncio.run(
                    run_level(base_url, model, clip, seconds, concurrency, requests)
                )
                level = {
                    "concurrency": concurrency,
                    "requests": result.requests,
                    "rps": result.requests / result.wall,
                    "rtfx": result.rtfx,
                    "p50": statistics.median(result.latencies) if result.latencies else 0.0,
                    "p95": result.pct(0.95),
                    "max": max(result.latencies, default=0.0),
                    "errors": result.errors,
                }
                print(model, json.dumps(level), flush=True)
                levels.append(level)
            report["models"][model] = {"levels": levels}
            if eval_dir is not None:
                report["models"][model]["server_wer"] = asyncio.run(
                    server_wer(base_url, model, eval_dir)
                )
    finally:
        sampler.stop()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    report["server_rss_mb"] = sampler.peaks
    report["server_peak_rss_mb"] = sampler.total_peak
    for model in args.models:
        report["models"][model]["raw"] = raw_engine(args.models_dir / model, args.clip, eval_dir)
        print(model, "raw", json.dumps(report["models"][model]["raw"]), flush=True)
    text = markdown(report)
    write_report(args.out, text, report)


if __name__ == "__main__":
    main()
