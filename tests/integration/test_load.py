"""A bounded loopback load test: 16 concurrent clients, each sending a series of requests.

Short real clips (1.8-2.1 s, four containers), both models and every response format.
``THEO_LOAD_REQUESTS_PER_CLIENT`` sets the series' length (``make load-test``: 500, i.e.
8000 requests); the figures are printed (``-s``) and docs/reliability.md ("Load") keeps them.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import psutil
import pytest
from openai import OpenAI, omit

from tests.conftest import FIXTURES, word_errors
from tests.integration.conftest import RunningServer

CLIENTS = 16
REQUESTS_PER_CLIENT = int(os.environ.get("THEO_LOAD_REQUESTS_PER_CLIENT", "32"))
REQUESTS = CLIENTS * REQUESTS_PER_CLIENT
WINDOW = 100  # RSS is compared after the first and after the last WINDOW requests
MAX_RSS_GROWTH = 0.10
MODELS = ("faster-whisper-tiny.en", "faster-whisper-base")
ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
FORMATS: tuple[ResponseFormat, ...] = ("json", "text", "srt", "vtt", "verbose_json")
CLIPS = ("LJ001-0008.mp3", "LJ001-0002.wav", "1089-134691-0000.flac", "LJ001-0008.ogg")

_TIMING = re.compile(r"^\d+$|-->|^WEBVTT")


@dataclass
class Outcome:
    index: int
    model: str
    seconds: float
    error: str | None = None


def server_rss(server: RunningServer) -> int:
    """Resident memory of ``bentoml serve`` and every process under it, in bytes."""
    root = psutil.Process(server.process.pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):  # a process may exit meanwhile
            total += process.memory_info().rss
    return total


def text_of(response: Any, response_format: str) -> str:
    """The transcript in any response format (subtitle cues without their timings)."""
    if response_format in ("json", "verbose_json"):
        return str(response.text)
    lines = str(response).splitlines()
    return " ".join(line for line in lines if line.strip() and not _TIMING.search(line.strip()))


def test_sixteen_clients_in_a_loop(
    server: RunningServer, client: OpenAI, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    audio = {name: (FIXTURES / name).read_bytes() for name in CLIPS}
    references = {name: fixture_manifest[name]["text"] for name in CLIPS}
    done = 0
    lock = threading.Lock()
    rss: dict[str, int] = {}

    def one(index: int) -> Outcome:
        nonlocal done
        # Every clip x model x format x (word timestamps or not) within each 80 requests.
        clip = CLIPS[index % 4]
        model = MODELS[index // 4 % 2]
        response_format = FORMATS[index // 8 % 5]
        words = response_format == "verbose_json" and index // 40 % 2 == 1
        started = time.monotonic()
        outcome = Outcome(index, model, 0.0)
        try:
            response = client.audio.transcriptions.create(
                model=model,
                file=(clip, audio[clip]),
                response_format=response_format,
                timestamp_granularities=["word", "segment"] if words else omit,
            )
            text = text_of(response, response_format)
            if word_errors(references[clip], text) != 0:
                outcome.error = f"wrong transcript for {clip} on {model}: {text!r}"
            elif words and not getattr(response, "words", None):
                outcome.error = "verbose_json without the words asked for"
        except Exception as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.seconds = time.monotonic() - started
        with lock:
            done += 1
            if done == WINDOW:
                rss["first"] = server_rss(server)
        return outcome

    rss["start"] = server_rss(server)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        outcomes = list(pool.map(one, range(REQUESTS)))
    elapsed = time.monotonic() - started
    rss["last"] = server_rss(server)

    errors = [o for o in outcomes if o.error]
    growth = rss["last"] / rss["first"] - 1
    summary = [
        f"{REQUESTS} requests, {CLIENTS} clients: {elapsed:.0f} s, "
        f"{REQUESTS / elapsed:.2f} req/s, {len(errors)} errors",
        f"server RSS: {rss['start'] / 2**20:.0f} MiB at start, "
        f"{rss['first'] / 2**20:.0f} MiB after {WINDOW}, {rss['last'] / 2**20:.0f} MiB at the "
        f"end ({growth:+.1%})",
    ]
    for model in MODELS:
        latencies = sorted(o.seconds for o in outcomes if o.model == model)
        summary.append(
            f"{model}: p50 {latencies[len(latencies) // 2]:.2f} s, "
            f"p95 {latencies[int(len(latencies) * 0.95)]:.2f} s, max {latencies[-1]:.2f} s"
        )
    print("\n" + "\n".join(summary))
    assert not errors, [o.error for o in errors[:5]]
    assert growth < MAX_RSS_GROWTH, summary[1]


@pytest.mark.parametrize("response_format", ["srt", "vtt"])
def test_subtitle_text_extraction(response_format: str) -> None:
    body = {
        "srt": "1\n00:00:00,000 --> 00:00:01,780\n has never been surpassed.\n",
        "vtt": "WEBVTT\n\n00:00:00.000 --> 00:00:01.780\nhas never been surpassed.\n",
    }[response_format]
    assert text_of(body, response_format).strip() == "has never been surpassed."
