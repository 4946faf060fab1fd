"""``theo serve``: run Theo's BentoML bundle over the installed models, and stop it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import click
import httpx

from theo.cli.models_dir import models_dir_option, resolve_models_dir
from theo.cli.output import fail
from theo.registry import ModelRegistry

# service.py (the BentoML bundle) sits next to the theo package in the source tree.
SERVICE_DIR = Path(__file__).resolve().parents[2]
FIRST_MODEL = "faster-whisper-tiny.en"


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@models_dir_option
def serve(host: str, port: int, models_dir: Path | None) -> None:
    """Serve every installed model over the OpenAI audio API.

    Runs Theo's BentoML bundle (`bentoml serve service:Theo`) with the models in the
    models folder. Once every model is ready it prints the web page's address
    (http://HOST:PORT/); the API is at http://HOST:PORT/v1. Ctrl-C or SIGTERM stops the
    server gracefully: requests in flight finish first.
    """
    folder = resolve_models_dir(models_dir).resolve()
    if not ModelRegistry(folder).names():
        fail(f"No models installed in {folder}. Run 'theo pull {FIRST_MODEL}'.")
    if not (SERVICE_DIR / "service.py").is_file():
        fail(f"service.py not found in {SERVICE_DIR}; run Theo from its source folder.")
    bentoml = Path(sys.executable).parent / "bentoml"
    command = [str(bentoml) if bentoml.is_file() else "bentoml", "serve", "service:Theo"]
    command += ["--host", host, "--port", str(port)]
    env = {**os.environ, "THEO_MODELS_DIR": str(folder)}
    try:
        # Its own process group: a terminal's Ctrl-C reaches bentoml once, through us.
        process = subprocess.Popen(
            command, cwd=SERVICE_DIR, env=env, process_group=0, preexec_fn=_stop_with_parent
        )
    except OSError as exc:
        fail(f"cannot start bentoml: {exc}")
    threading.Thread(target=_announce_when_ready, args=(process, host, port), daemon=True).start()
    sys.exit(_supervise(process))


def page_url(host: str, port: int) -> str:
    """Where a person opens the page: a wildcard address means this machine."""
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def _announce_when_ready(process: subprocess.Popen[bytes], host: str, port: int) -> None:
    """Print the page's address once /health says every model is ready."""
    probe = page_url({"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port)
    while process.poll() is None:
        try:
            if httpx.get(f"{probe}health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        return
    url = page_url(host, port)
    click.echo(f"\nTheo is ready: open {url} in a browser (API: {url}v1, reference: {url}docs)\n")


def _stop_with_parent() -> None:
    """In the child, on Linux: get SIGTERM if theo dies, so no server is left orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _supervise(process: subprocess.Popen[bytes]) -> int:
    """Wait for the server; forward SIGTERM/SIGINT once, kill on a second one.

    Returns 0 after a requested shutdown, else the server's own exit status.
    """
    signals: list[int] = []

    def forward(signum: int, _: FrameType | None) -> None:
        signals.append(signum)
        if len(signals) == 1:
            process.send_signal(signum)
        else:
            os.killpg(process.pid, signal.SIGKILL)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    returncode = process.wait()
    return 0 if signals else returncode
