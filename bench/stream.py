"""Streaming vs not: time to the first delta and to the end, through the OpenAI SDK.

    make bench-stream                # or: .venv/bin/python -m bench.stream [options]

For each model and concurrency, sends a long recording (231 s, one reader) N at a time,
alternately without and with ``stream=true``, for a few rounds (alternating so both see the
same machine). Reports the median time to the first delta and to the done event of the
streams, the median time of the plain requests, and their ratio; the streamed text must
equal the plain one. Then what a client that leaves stops: the runner's CPU for a whole
stream vs one whose client leaves at its first delta. Writes bench/results/stream.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from openai import AsyncOpenAI

from bench.common import DEFAULT_EVAL_DIR, REPO_ROOT
from bench.run import start_server

LONG = "long/ljspeech_LJ001-0001_to_0032.flac"  # 231 s, English
JFK = REPO_ROOT / "tests" / "fixtures" / "jfk.flac"
RESULTS = REPO_ROOT / "bench" / "results"


@dataclass
class Level:
    model: str
    concurrency: int
    rounds: int
    plain_s: float  # median time of a plain request
    first_delta_s: float  # median time to a stream's first delta
    done_s: float  # median time to a stream's done event
    mismatches: int  # streams whose text differed from the plain one

    @property
    def ratio(self) -> float:
        return self.done_s / self.plain_s


@dataclass
class Disconnect:
    model: str
    whole_cpu_s: float
    left_cpu_s: float
    left_after_s: float


async def plain(sdk: AsyncOpenAI, model: str, audio: bytes) -> tuple[float, str]:
    started = time.perf_counter()
    result = await sdk.audio.transcriptions.create(model=model, file=("long.flac", audio))
    return time.perf_counter() - started, result.text


async def streamed(sdk: AsyncOpenAI, model: str, audio: bytes) -> tuple[float, float, str]:
    started = time.perf_counter()
    first = 0.0
    text = ""
    stream = await sdk.audio.transcriptions.create(
        model=model, file=("long.flac", audio), stream=True
    )
    async for event in stream:
        if event.type == "transcript.text.delta" and not first:
            first = time.perf_counter() - started
        elif event.type == "transcript.text.done":
            text = event.text
    return first, time.perf_counter() - started, text


async def level(sdk: AsyncOpenAI, model: str, audio: bytes, concurrency: int, rounds: int) -> Level:
    plains: list[float] = []
    firsts: list[float] = []
    dones: list[float] = []
    mismatches = 0
    for _ in range(rounds):
        plain_results = await asyncio.gather(
            *(plain(sdk, model, audio) for _ in range(concurrency))
        )
        stream_results = await asyncio.gather(
            *(streamed(sdk, model, audio) for _ in range(concurrency))
        )
        plains += [t for t, _ in plain_results]
        firsts += [first for first, _, _ in stream_results]
        dones += [done for _, done, _ in stream_results]
        texts = {text for _, text in plain_results}
        mismatches += sum(text not in texts for _, _, text in stream_results)
    return Level(
        model=model,
        concurrency=concurrency,
        rounds=rounds,
        plain_s=statistics.median(plains),
        first_delta_s=statistics.median(firsts),
        done_s=statistics.median(dones),
        mismatches=mismatches,
    )


def runner(server: psutil.Process, model: str) -> psutil.Process:
    service = "runner_" + model.replace("-", "_").replace(".", "_")
    for process in server.children(recursive=True):
        command = process.cmdline()
        if "--service-name" in command and command[command.index("--service-name") + 1] == service:
            return process
    raise SystemExit(f"no runner process for {model}")


def settled_cpu(process: psutil.Process) -> float:
    """CPU seconds of ``process`` once it has been idle (under 5% of a core) for 1 s."""
    times = process.cpu_times()
    last: float = times.user + times.system
    while True:
        time.sleep(1.0)
        times = process.cpu_times()
        now: float = times.user + times.system
        if now - last < 0.05:
            return now
        last = now


def disconnect(port: int, server: psutil.Process, model: str, audio: bytes) -> Disconnect:
    """Runner CPU for a whole stream, and for one whose client leaves at the first delta."""
    process = runner(server, model)
    url = f"http://127.0.0.1:{port}/v1/audio/transcriptions"
    form = {"model": model, "stream": "true"}
    files = {"file": ("long.flac", audio)}
    before = settled_cpu(process)
    with httpx.stream("POST", url, data=form, files=files, timeout=600) as response:
        for _ in response.iter_lines():
            pass
    whole = settled_cpu(process) - before
    started = time.perf_counter()
    with httpx.stream("POST", url, data=form, files=files, timeout=600) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                break
    left_after = time.perf_counter() - started
    left = settled_cpu(process) - before - whole
    return Disconnect(model, whole, left, left_after)


def markdown(levels: list[Level], leaves: list[Disconnect], meta: dict[str, Any]) -> str:
    lines = [
        f"# Streaming benchmark ({meta['date']}, {meta['cpus']} CPUs)",
        "",
        f"`{LONG}` ({meta['audio_s']:.0f} s) through the OpenAI SDK, N at once, alternately",
        "plain and `stream=true`; medians over all requests of the rounds. `ratio` = stream",
        "done / plain.",
        "",
        "| model | N | rounds | first delta s | done s | plain s | ratio | text differs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in levels:
        lines.append(
            f"| {x.model} | {x.concurrency} | {x.rounds} | {x.first_delta_s:.2f} | "
            f"{x.done_s:.2f} | {x.plain_s:.2f} | {x.ratio:.2f} | {x.mismatches} |"
        )
    lines += [
        "",
        "A client that leaves at its first delta: the runner's CPU for a whole stream and for",
        "the one left.",
        "",
        "| model | whole stream CPU s | client gone after s | CPU s then | share |",
        "|---|---|---|---|---|",
    ]
    for d in leaves:
        lines.append(
            f"| {d.model} | {d.whole_cpu_s:.1f} | {d.left_after_s:.1f} | {d.left_cpu_s:.1f} | "
            f"{d.left_cpu_s / d.whole_cpu_s:.0%} |"
        )
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run(args: argparse.Namespace) -> None:
    args.port = args.port or free_port()
    audio = (args.eval_dir / LONG).read_bytes()
    process, _ = start_server(args.port, args.models_dir, JFK.read_bytes())
    server = psutil.Process(process.pid)
    sdk = AsyncOpenAI(base_url=f"http://127.0.0.1:{args.port}/v1", api_key="bench", timeout=900)
    levels: list[Level] = []
    leaves: list[Disconnect] = []
    try:
        for model in args.models:
            await plain(sdk, model, audio)  # the first long request of a model warms it
            for concurrency in args.concurrency:
                result = await level(sdk, model, audio, concurrency, args.rounds)
                print(json.dumps(asdict(result) | {"ratio": result.ratio}), flush=True)
                levels.append(result)
            leaves.append(disconnect(args.port, server, model, audio))
            print(json.dumps(asdict(leaves[-1])), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=60)
    meta = {"date": time.strftime("%Y-%m-%d"), "cpus": psutil.cpu_count(), "audio_s": 231.0}
    report = markdown(levels, leaves, meta)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stream.md").write_text(report)
    print(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["faster-whisper-tiny.en", "faster-whisper-base"]
    )
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
