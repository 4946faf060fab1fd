"""Live transcription under load: N realtime sessions streaming real speech at real-time pace.

    make bench-live                  # or: .venv/bin/python -m bench.live [options]

Each session connects to ``/v1/realtime?intent=transcription`` (GA events, server VAD,
silence 500 ms) and streams eval clips as a microphone would: 24 kHz PCM in 20-100 ms
chunks at real-time pace, with 1.2-2 s of silence between clips. Per configuration
(model, partial text on/off, batching on/off, with or without long files being
transcribed through the HTTP API at the same time) and number of sessions it reports:

- latency from the end of a clip's speech (its last sample sent) to ``completed``, p50/p95;
- time from the start of a clip (its first sample sent) to its first delta;
- WER of the live transcripts vs the references, and of the same clips sent as files;
- error events, failed transcriptions and connection errors; CPU per session.

Writes bench/results/live.md. Figures are noisy on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import psutil
import websockets
import yaml

from bench.common import DEFAULT_EVAL_DIR, REPO_ROOT, EvalItem, eval_items, normalize, wer

RATE = 24_000
RESULTS = REPO_ROOT / "bench" / "results"
LONG_FILES = ("long/ljspeech_LJ001-0001_to_0032.flac", "long/fleurs_mixed_en_de_fr_es_pt.wav")
SESSION_CLIPS = 6  # clips per session (about 45 s of speech)


def pcm24(path: Path) -> bytes:
    """A clip as 24 kHz mono 16-bit PCM, what a realtime client sends."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            frame.pts = None
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype("<i2").tobytes()


@dataclass
class Clip:
    item: EvalItem
    pcm: bytes
    speech_end: int = 0  # 24 kHz sample where its speech ends (trailing silence excluded)

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / RATE


def speech_end(pcm: bytes) -> int:
    """Where the last speech of a clip ends (Silero, no padding), in 24 kHz samples."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from theo.realtime.audio import InputAudio

    audio = InputAudio("pcm16").decode(pcm)  # 16 kHz, as the server hears it
    spans = get_speech_timestamps(audio, VadOptions(speech_pad_ms=0, min_silence_duration_ms=100))
    return int(spans[-1]["end"] * 3 // 2) if spans else len(pcm) // 2


@dataclass
class Sent:
    """One clip as a session sent it: where it sits in the stream, and when."""

    clip: Clip
    start_sample: int  # 24 kHz samples since the session began
    end_sample: int
    started: float = 0.0  # wall clock of its first chunk
    ended: float = 0.0  # ... and of the chunk with its last speech sample


@dataclass
class ItemSeen:
    start_ms: int | None = None
    end_ms: int | None = None
    first_delta: float | None = None
    deltas: str = ""
    completed: float | None = None
    transcript: str | None = None
    failed: bool = False


@dataclass
class SessionResult:
    sent: list[Sent]
    items: dict[str, ItemSeen]
    errors: list[str] = field(default_factory=list)


async def run_session(
    url: str, model: str, clips: list[Clip], seed: int, start_delay: float
) -> SessionResult:
    rng = random.Random(seed)
    await asyncio.sleep(start_delay)
    result = SessionResult(sent=[], items={})
    try:
        async with websockets.connect(url, max_size=None, open_timeout=60) as ws:
            update = {
                "type": "session.update",
                "session": {
                    "type": "transcription",
                    "audio": {
                        "input": {
                            "transcription": {"model": model},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                        }
                    },
                },
            }
            await ws.send(json.dumps(update))
            receiver = asyncio.create_task(_receive(ws, result))
            await _stream(ws, clips, rng, result)
            await _wait_answers(result, deadline=time.monotonic() + 120)
            receiver.cancel()
    except Exception as exc:  # a refused or dropped connection counts as an error
        result.errors.append(f"connection: {type(exc).__name__}: {exc}")
    return result


async def _stream(ws: Any, clips: list[Clip], rng: random.Random, result: SessionResult) -> None:
    stream = bytearray()
    plan: list[Sent] = []
    for clip in clips:
        start = len(stream) // 2
        stream += clip.pcm
        plan.append(Sent(clip, start, len(stream) // 2))
        stream += bytes(2 * int(rng.uniform(1.2, 2.0) * RATE))  # the pause after it
    result.sent = plan
    began = time.monotonic()
    position = 0
    while position < len(stream):
        chunk = 2 * int(rng.uniform(0.02, 0.1) * RATE)
        piece = bytes(stream[position : position + chunk])
        due = began + position / 2 / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.monotonic()
        first, last = position // 2, (position + len(piece)) // 2
        for sent in plan:
            if first <= sent.start_sample < last:
                sent.started = now
            if first < sent.start_sample + sent.clip.speech_end <= last:
                sent.ended = now
        message = {"type": "input_audio_buffer.append", "audio": base64.b64encode(piece).decode()}
        await ws.send(json.dumps(message))
        position += len(piece)


async def _receive(ws: Any, result: SessionResult) -> None:
    async for raw in ws:
        event = json.loads(raw)
        kind = event["type"]
        now = time.monotonic()
        item = result.items.setdefault(event["item_id"], ItemSeen()) if "item_id" in event else None
        if kind == "error":
            result.errors.append(f"error: {event['error'].get('code')}")
        elif item is None:
            continue
        elif kind == "input_audio_buffer.speech_started":
            item.start_ms = event["audio_start_ms"]
        elif kind == "input_audio_buffer.speech_stopped":
            item.end_ms = event["audio_end_ms"]
        elif kind.endswith("input_audio_transcription.delta"):
            if item.first_delta is None and event["delta"]:
                item.first_delta = now
            item.deltas += event["delta"]
        elif kind.endswith("input_audio_transcription.completed"):
            item.completed, item.transcript = now, event["transcript"]
        elif kind.endswith("input_audio_transcription.failed"):
            item.completed, item.failed = now, True
            result.errors.append(f"failed: {event['error'].get('code')}")


async def _wait_answers(result: SessionResult, deadline: float) -> None:
    # Every clip's speech is committed by the pause after it; wait for the answers.
    while time.monotonic() < deadline:
        open_items = [i for i in result.items.values() if i.end_ms is not None and not i.completed]
        if not open_items and len(result.items) >= len(result.sent):
            return
        await asyncio.sleep(0.2)


@dataclass
class ClipOutcome:
    reference: str
    transcript: str
    deltas: str
    latency: float | None
    first_delta: float | None


def outcomes(result: SessionResult) -> list[ClipOutcome]:
    """Each sent clip with the items whose audio overlaps it most."""
    per_clip: dict[int, list[ItemSeen]] = {i: [] for i in range(len(result.sent))}
    for item in result.items.values():
        if item.start_ms is None:
            continue
        start = item.start_ms * RATE // 1000
        end = (item.end_ms if item.end_ms is not None else item.start_ms) * RATE // 1000

        def overlap(sent: Sent, start: int = start, end: int = end) -> int:
            return min(end, sent.end_sample) - max(start, sent.start_sample)

        best = max(range(len(result.sent)), key=lambda i: overlap(result.sent[i]))
        per_clip[best].append(item)
    found = []
    for index, sent in enumerate(result.sent):
        items = sorted(per_clip[index], key=lambda i: i.start_ms or 0)
        done = [i.completed for i in items if i.completed is not None and not i.failed]
        latency = max(done) - sent.ended if done else None
        deltas = [i.first_delta for i in items if i.first_delta is not None]
        found.append(
            ClipOutcome(
                reference=sent.clip.item.text,
                transcript=" ".join(i.transcript or "" for i in items).strip(),
                deltas=" ".join(i.deltas for i in items).strip(),
                latency=latency,
                first_delta=min(deltas) - sent.started if deltas else None,
            )
        )
    return found


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent on anything but idling, since boot."""
    times = psutil.cpu_times()
    busy = ("user", "nice", "system", "irq", "softirq", "steal")  # guest time is in user
    return float(sum(getattr(times, name, 0.0) for name in busy))


def _own_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Server:
    """``bentoml serve`` with the given environment; CPU time of its whole process tree."""

    def __init__(self, port: int, models_dir: Path, env: dict[str, str]):
        bentoml = Path(sys.executable).parent / "bentoml"
        self.port = port
        self.process = subprocess.Popen(
            [str(bentoml), "serve", "service:Theo", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "THEO_MODELS_DIR": str(models_dir),
                "THEO_LOG_LEVEL": "WARNING",
                "THEO_REALTIME_MAX_SESSIONS_PER_MODEL": "64",
                **env,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            self.stop()
            raise SystemExit("server did not become healthy within 300 s")
        time.sleep(3)  # the runners' warm-up rounds

    def cpu_seconds(self) -> float:
        total = 0.0
        root = psutil.Process(self.process.pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue
        return total

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


async def long_files_loop(port: int, model: str, eval_dir: Path, stop: asyncio.Event) -> int:
    """Four long files transcribed over and over through the HTTP API until ``stop``."""
    files = [eval_dir / LONG_FILES[i % len(LONG_FILES)] for i in range(4)]
    done = 0

    async def one(path: Path) -> None:
        nonlocal done
        data = path.read_bytes()
        async with httpx.AsyncClient(timeout=900) as http:
            while not stop.is_set():
                response = await http.post(
                    f"http://127.0.0.1:{port}/v1/audio/transcriptions",
                    files={"file": (path.name, data)},
                    data={"model": model},
                )
                done += response.status_code == 200

    tasks = [asyncio.create_task(one(p)) for p in files]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return done


@dataclass
class Row:
    model: str
    config: str
    sessions: int
    clips: int
    p50: float
    p95: float
    first_delta_p50: float
    first_delta_p95: float
    wer_live: float
    wer_deltas: float
    deltas_add_up: float
    errors: int
    cpu_per_session: float
    others: float = 0.0  # cores' worth of CPU other work on the machine took meanwhile


async def wait_for_quiet(server: Server, most: float, patience: float) -> None:
    """Wait (up to ``patience`` seconds) until other work takes less than ``most`` cores."""
    deadline = time.monotonic() + patience
    while True:
        busy, own, cpu = _busy_seconds(), _own_seconds(), server.cpu_seconds()
        await asyncio.sleep(5)
        others = (
            _busy_seconds() - busy - (_own_seconds() - own) - (server.cpu_seconds() - cpu)
        ) / 5
        if others < most or time.monotonic() > deadline:
            return
        print(f"  waiting for a quieter machine (others: {others:.2f} cores)", flush=True)


async def measure(
    server: Server, model: str, config: str, sessions: int, pool: list[Clip], args: Any
) -> Row:
    url = f"ws://127.0.0.1:{server.port}/v1/realtime?intent=transcription"
    if args.quiet_below:
        await wait_for_quiet(server, args.quiet_below, args.quiet_patience)
    rng = random.Random(sessions)
    busy_before, own_before = _busy_seconds(), _own_seconds()
    cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
    stop = asyncio.Event()
    background = None
    if "long files" in config:
        background = asyncio.create_task(long_files_loop(server.port, model, args.eval_dir, stop))
        await asyncio.sleep(5)  # their windows are at the runner before the sessions start
    runs = [
        run_session(url, model, rng.sample(pool, min(args.clips, len(pool))), s, rng.uniform(0, 3))
        for s in range(sessions)
    ]
    results = await asyncio.gather(*runs)
    stop.set()
    if background is not None:
        await background
    cpu = server.cpu_seconds() - cpu_before
    wall = time.monotonic() - wall_before
    others = _busy_seconds() - busy_before - cpu - (_own_seconds() - own_before)
    found = [o for r in results for o in outcomes(r)]
    latencies = [o.latency for o in found if o.latency is not None]
    firsts = [o.first_delta for o in found if o.first_delta is not None]
    errors = sum(len(r.errors) for r in results) + sum(o.latency is None for o in found)
    refs = [o.reference for o in found]
    add_up = [normalize(o.deltas) == normalize(o.transcript) for o in found]
    row = Row(
        model=model,
        config=config,
        sessions=sessions,
        clips=len(found),
        p50=percentile(latencies, 0.5),
        p95=percentile(latencies, 0.95),
        first_delta_p50=percentile(firsts, 0.5),
        first_delta_p95=percentile(firsts, 0.95),
        wer_live=wer(refs, [o.transcript for o in found]),
        wer_deltas=wer(refs, [o.deltas for o in found]),
        deltas_add_up=100.0 * sum(add_up) / max(len(add_up), 1),
        errors=errors,
        cpu_per_session=100.0 * cpu / wall / sessions,
        others=max(others, 0.0) / wall,
    )
    print(json.dumps(row.__dict__), flush=True)
    for r in results:
        for e in r.errors[:3]:
            print("  ", e, flush=True)
    return row


def file_wer(port: int, model: str, clips: list[Clip]) -> float:
    texts = []
    with httpx.Client(timeout=300) as http:
        for clip in clips:
            response = http.post(
                f"http://127.0.0.1:{port}/v1/audio/transcriptions",
                files={"file": (clip.item.path.name, clip.item.path.read_bytes())},
                data={"model": model},
            )
            texts.append(response.json()["text"] if response.status_code == 200 else "")
    return wer([c.item.text for c in clips], texts)


def unbatched_models_dir(models_dir: Path, model: str) -> Path:
    """A models folder where ``model`` has max_batch_size 1 (its files linked, not copied)."""
    folder = Path(tempfile.mkdtemp(prefix="theo-unbatched-"))
    target = folder / model
    target.mkdir()
    for path in (models_dir / model).iterdir():
        if path.name != "theo.yaml":
            (target / path.name).symlink_to(path.resolve())
    manifest = yaml.safe_load((models_dir / model / "theo.yaml").read_text())
    manifest["engine_config"]["max_batch_size"] = 1
    (target / "theo.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def markdown(rows: list[Row], file_wers: dict[str, float], meta: dict[str, Any]) -> str:
    lines = [
        f"# Live transcription benchmark ({meta['date']}, {meta['cpus']} CPUs)",
        "",
        "N sessions on `/v1/realtime` (GA events, server VAD, silence 500 ms), each streaming",
        f"{meta['clips']} eval clips as 24 kHz PCM in 20-100 ms chunks at real-time pace, 1.2-2 s",
        "of silence between clips. Latency: from the sending of the last speech sample of a clip",
        "(Silero finds where its speech ends) to its `completed`, so it includes the 500 ms of",
        "silence server VAD waits for. First delta:",
        "from a clip's first sample sent to its first non-empty delta. `add up`: clips whose",
        "deltas, concatenated, equal `completed` (after normalization). CPU: server processes'",
        "CPU time per wall second per session (100 = one core). Errors: error events, failed",
        "transcriptions, dropped connections and clips never answered. Others: the cores' worth",
        "of CPU other work on this shared machine took during the run (it slows every figure).",
        "",
        "| model | config | sessions | clips | p50 s | p95 s | 1st delta p50 s | "
        "1st delta p95 s | WER live % | WER deltas % | add up % | errors | CPU %/session | "
        "others |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.config} | {r.sessions} | {r.clips} | {r.p50:.2f} | {r.p95:.2f} | "
            f"{r.first_delta_p50:.2f} | {r.first_delta_p95:.2f} | {r.wer_live:.1f} | "
            f"{r.wer_deltas:.1f} | {r.deltas_add_up:.0f} | {r.errors} | {r.cpu_per_session:.0f} | "
            f"{r.others:.2f} |"
        )
    lines += ["", "WER of the same clips sent as files (HTTP API):", ""]
    lines += [f"- {model}: {value:.1f} %" for model, value in file_wers.items()]
    return "\n".join(lines) + "\n"


CONFIGS = {
    # name: (server environment, batching, long files)
    "partials": ({}, True, False),
    "no partials": ({"THEO_REALTIME_PARTIALS": "false"}, True, False),
    "no batching, partials": ({}, False, False),
    "no batching, no partials": ({"THEO_REALTIME_PARTIALS": "false"}, False, False),
    "partials, 4 long files": ({}, True, True),
    "no partials, 4 long files": ({"THEO_REALTIME_PARTIALS": "false"}, True, True),
    "no partials, 4 long files, no live instance": (
        {"THEO_REALTIME_PARTIALS": "false", "THEO_REALTIME_LIVE_INSTANCE": "false"},
        True,
        True,
    ),
}


async def run(args: argparse.Namespace) -> None:
    items = [i for i in eval_items(args.eval_dir) if 2.0 <= i.duration <= 15.0]
    pool = [Clip(item, pcm) for item, pcm in ((i, pcm24(i.path)) for i in items)]
    for clip in pool:
        clip.speech_end = speech_end(clip.pcm)
    rows: list[Row] = []
    file_wers: dict[str, float] = {}
    for model in args.models:
        for config in args.configs:
            env, batching, long_files = CONFIGS[config]
            models_dir = args.models_dir
            if not batching:
                models_dir = unbatched_models_dir(args.models_dir, model)
            server = Server(args.port, models_dir, env)
            try:
                if model not in file_wers and not long_files:
                    file_wers[model] = file_wer(args.port, model, pool)
                    print(json.dumps({model: file_wers[model]}), flush=True)
                counts = [8] if long_files else args.sessions
                for sessions in counts:
                    rows.append(await measure(server, model, config, sessions, pool, args))
            finally:
                server.stop()
                if not batching:
                    shutil.rmtree(models_dir, ignore_errors=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "cpus": psutil.cpu_count(), "clips": args.clips}
    RESULTS.mkdir(exist_ok=True)
    data_path = (RESULTS / args.output).with_suffix(".json")
    if args.append and data_path.is_file():
        # Keep the rows of earlier runs that this one did not measure again.
        earlier = json.loads(data_path.read_text())
        measured = {(r.model, r.config, r.sessions) for r in rows}
        rows = [
            row
            for row in (Row(**r) for r in earlier["rows"])
            if (row.model, row.config, row.sessions) not in measured
        ] + rows
        file_wers = {**earlier["file_wers"], **file_wers}
    data_path.write_text(
        json.dumps({"rows": [r.__dict__ for r in rows], "file_wers": file_wers}, indent=1)
    )
    report = markdown(rows, file_wers, meta)
    (RESULTS / args.output).write_text(report)
    print(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["faster-whisper-tiny.en"])
    parser.add_argument("--sessions", nargs="+", type=int, default=[1, 4, 8, 16])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--clips", type=int, default=SESSION_CLIPS)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--output", default="live.md")
    parser.add_argument(
        "--append", action="store_true", help="keep the rows of earlier runs in --output"
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.0,
        help="before each run, wait until other work takes fewer cores than this",
    )
    parser.add_argument("--quiet-patience", type=float, default=1800.0, help="seconds")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
