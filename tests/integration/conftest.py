"""A real ``bentoml serve`` process with the real installed models, shared by the session."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from openai import OpenAI

from tests.conftest import MODELS_DIR, REPO_ROOT

TINY = "faster-whisper-tiny.en"
BASE = "faster-whisper-base"
REQUIRED_MODELS = (TINY, BASE)
STARTUP_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    tmp_dir: Path, *, models_dir: Path = MODELS_DIR, env: dict[str, str] | None = None
) -> RunningServer:
    """Start ``bentoml serve service:Theo`` on a free port and wait for ``/health``."""
    missing = [m for m in REQUIRED_MODELS if not (models_dir / m / "theo.yaml").is_file()]
    if models_dir == MODELS_DIR and missing:
        pytest.fail(f"models not installed: {missing}; run `make models` first")
    port = free_port()
    log_path = tmp_dir / f"server-{port}.log"
    bentoml = Path(sys.executable).parent / "bentoml"
    # A home of its own: `bentoml serve` empties $BENTOML_HOME/prometheus_multiproc_dir as it
    # starts, so a second server would wipe this one's metrics (their counters then stop).
    home = tmp_dir / f"bentoml-home-{port}"
    process = subprocess.Popen(
        [str(bentoml), "serve", "service:Theo", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "BENTOML_HOME": str(home),
            "THEO_MODELS_DIR": str(models_dir),
            **(env or {}),
        },
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_healthy(server)
    except BaseException:
        stop_server(server)
        raise
    return server


def wait_warmed_up(server: RunningServer, models_dir: Path = MODELS_DIR) -> None:
    """Wait until every runner's lanes are warmed up (theo/serving/router.py): the warm-up's
    calls are the API process's work, which a test measuring that process must not count."""
    runners = sum((d / "theo.yaml").is_file() for d in models_dir.iterdir())
    deadline = time.monotonic() + 120
    while server.log().count("runner warmed up") < runners:
        if time.monotonic() > deadline:
            pytest.fail(f"runners not warmed up within 120 s:\n{server.log()[-4000:]}")
        time.sleep(0.2)


def wait_healthy(*servers: RunningServer) -> None:
    """Wait for the first server's /health (the API), failing fast if any server dies."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        for server in servers:
            if server.process.poll() is not None:
                pytest.fail(f"server exited early:\n{server.log()[-4000:]}")
        try:
            if httpx.get(f"{servers[0].base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"not healthy after {STARTUP_TIMEOUT}s:\n{servers[0].log()[-4000:]}")


def post_audio(server: RunningServer, name: str, data: bytes, **fields: Any) -> httpx.Response:
    """POST a file to the server's transcriptions route (``model`` defaults to tiny.en)."""
    return httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": (name, data)},
        data={"model": TINY, **fields},
        timeout=120,
    )


def runner_process(server: RunningServer, service: str) -> psutil.Process:
    """The worker process of a runner service (its command line names the service)."""
    for process in psutil.Process(server.process.pid).children(recursive=True):
        try:
            command = process.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "--service-name" in command and command[command.index("--service-name") + 1] == service:
            return process
    raise AssertionError(f"no process for {service}")


def api_process(server: RunningServer) -> psutil.Process:
    """The worker process of the API service (the one that is not a runner's)."""
    for process in psutil.Process(server.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if "runner_" not in " ".join(process.cmdline()):
                return process
    raise AssertionError("no API worker process")


def stop_server(server: RunningServer) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The shared server with the default models installed in ``models/``."""
    running = start_server(tmp_path_factory.mktemp("server"))
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def client(server: RunningServer) -> OpenAI:
    """The unmodified OpenAI SDK pointed at the server (no retries: errors must surface)."""
    return OpenAI(base_url=f"{server.base_url}/v1", api_key="not-needed", max_retries=0)
