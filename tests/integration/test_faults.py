"""Faults under load: a runner process killed, and the whole server asked to stop (SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import FIXTURES, word_errors
from tests.integration.conftest import (
    BASE,
    TINY,
    RunningServer,
    runner_process,
    start_server,
    stop_server,
)

TINY_RUNNER = "runner_faster_whisper_tiny_en"
CLIP = FIXTURES / "LJ001-0008.mp3"
CLIP_TEXT = "has never been surpassed."
REQUEST_TIMEOUT = 60
RECOVERY_SECONDS = 30


@dataclass
class Call:
    model: str
    started: float
    ended: float = 0.0
    status: int | str = "pending"


class Load:
    """Client threads sending requests in a loop (alternating the models) until stopped."""

    def __init__(self, server: RunningServer, clients: int):
        self.server = server
        self.calls: list[Call] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(clients)
        ]
        self._audio = CLIP.read_bytes()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT + 10)
        assert not any(t.is_alive() for t in self._threads), "a request hung"

    def _run(self, n: int) -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT + 5) as http:
            while not self._stop.is_set():
                model = (TINY, TINY, BASE)[n % 3]
                call = Call(model, time.monotonic())
                with self._lock:
                    self.calls.append(call)
                try:
                    response = http.post(
                        f"{self.server.base_url}/v1/audio/transcriptions",
                        files={"file": (CLIP.name, self._audio)},
                        data={"model": model},
                    )
                    call.status = response.status_code
                    if response.status_code == 200:
                        assert word_errors(CLIP_TEXT, response.json()["text"]) == 0
                    elif response.status_code == 503:
                        assert response.headers["retry-after"]
                        assert response.json()["error"]["type"] == "server_error"
                except httpx.HTTPError as exc:
                    call.status = type(exc).__name__
                    time.sleep(0.2)
                call.ended = time.monotonic()

    def completed(self, status: int | str = 200) -> int:
        with self._lock:
            return sum(1 for call in self.calls if call.status == status)

    def wait_for(self, condition: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, "load did not get going"
            time.sleep(0.1)


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[RunningServer]:
    server = start_server(tmp_path, env={"THEO_REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT)})
    yield server
    stop_server(server)


def health(server: RunningServer) -> tuple[int, dict[str, bool]]:
    try:
        response = httpx.get(f"{server.base_url}/health", timeout=10)
    except httpx.HTTPError:
        return 0, {}
    return response.status_code, response.json().get("models", {})


def test_a_killed_runner_fails_fast_and_comes_back(fresh_server: RunningServer) -> None:
    victim = runner_process(fresh_server, TINY_RUNNER)
    seen: list[tuple[float, int, bool]] = []  # (seconds after the kill, /health status, tiny)
    with Load(fresh_server, clients=6) as load:
        load.wait_for(lambda: load.completed() >= 6, seconds=120)
        killed_at = time.monotonic()
        victim.kill()
        recovered_at = None
        while time.monotonic() - killed_at < RECOVERY_SECONDS + 30:
            status, models = health(fresh_server)
            seen.append((time.monotonic() - killed_at, status, models.get(TINY, False)))
            if status == 200 and _served_since(load, TINY, killed_at):
                recovered_at = time.monotonic()
                break
            time.sleep(0.2)
        time.sleep(2)  # a little more load on the recovered runner
    assert recovered_at is not None, f"not recovered: {seen[-5:]}"

    calls = load.calls
    assert {c.status for c in calls} <= {200, 503}, sorted({str(c.status) for c in calls})
    in_flight = [c for c in calls if c.started < killed_at < c.ended and c.model == TINY]
    assert in_flight, "the kill hit no request"
    for call in in_flight:
        # The dead runner's requests end fast (503, or 200 if the new runner took a retry).
        assert call.ended - killed_at < 15, (call.status, call.ended - killed_at)
    assert all(c.status == 200 for c in calls if c.model == BASE)  # the other model: untouched
    assert any(status == 503 and not tiny for _, status, tiny in seen), seen[:10]
    assert recovered_at - killed_at < RECOVERY_SECONDS, seen
    assert runner_process(fresh_server, TINY_RUNNER).pid != victim.pid  # respawned by BentoML
    later = [c for c in calls if c.started > recovered_at]
    assert later and all(c.status == 200 for c in later)
    print(
        f"\nrunner killed: {len(in_flight)} in-flight requests ended within "
        f"{max(c.ended for c in in_flight) - killed_at:.1f} s "
        f"({sum(c.status == 503 for c in in_flight)} x 503); /health 503 for "
        f"{max(t for t, status, _ in seen if status == 503):.1f} s; "
        f"healthy and serving again after {recovered_at - killed_at:.1f} s"
    )


def _served_since(load: Load, model: str, since: float) -> bool:
    return any(c.model == model and c.status == 200 and c.started > since for c in load.calls)


def test_sigterm_drains_in_flight_requests_and_exits_zero(fresh_server: RunningServer) -> None:
    with Load(fresh_server, clients=8) as load:
        load.wait_for(lambda: load.completed() >= 8, seconds=120)
        time.sleep(0.5)  # requests in every stage: uploading, decoding, in a batch
        terminated_at = time.monotonic()
        os.kill(fresh_server.process.pid, signal.SIGTERM)  # as `docker stop` does: PID 1 only
        try:
            code = fresh_server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("bentoml serve still running 30 s after SIGTERM")
        exited_after = time.monotonic() - terminated_at
    assert code == 0
    # Requests sent after the signal may be refused; those already in flight must finish.
    in_flight = [c for c in load.calls if c.started < terminated_at < (c.ended or 1e12)]
    assert in_flight, "SIGTERM hit no request"
    failed = [(c.model, c.status) for c in in_flight if c.status != 200]
    assert not failed, failed
    print(
        f"\nSIGTERM: {len(in_flight)} in-flight requests drained with 200 "
        f"(the last after {max(c.ended for c in in_flight) - terminated_at:.1f} s), "
        f"exit 0 after {exited_after:.1f} s"
    )


def test_in_a_container_a_dead_runner_stops_the_server(tmp_path: Path) -> None:
    """In an image (BENTOML_CONTAINERIZED) BentoML does not respawn: it exits, non-zero,
    so the container's restart policy brings the whole service back."""
    server = start_server(tmp_path, env={"BENTOML_CONTAINERIZED": "true"})
    try:
        with Load(server, clients=4) as load:
            load.wait_for(lambda: load.completed() >= 4, seconds=120)
            killed_at = time.monotonic()
            runner_process(server, TINY_RUNNER).kill()
            try:
                code = server.process.wait(timeout=RECOVERY_SECONDS)
            except subprocess.TimeoutExpired:
                pytest.fail(f"bentoml serve still up {RECOVERY_SECONDS} s after losing a runner")
            exited_after = time.monotonic() - killed_at
        assert code != 0
        in_flight = [c for c in load.calls if c.started < killed_at < (c.ended or 1e12)]
        assert all(c.ended - killed_at < REQUEST_TIMEOUT for c in in_flight)  # none hung
        print(f"\ncontainer mode: runner killed, server exited ({code}) after {exited_after:.1f} s")
    finally:
        stop_server(server)
