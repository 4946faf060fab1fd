"""`theo transcribe`, `theo translate` and `theo serve` against a real running server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner, Result

from tests.conftest import FIXTURES, MODELS_DIR, word_errors
from tests.integration.conftest import BASE, TINY, RunningServer, free_port, wait_healthy
from tests.unit.sounds import wav_bytes
from theo.audio import decode_audio
from theo.cli import main

pytestmark = pytest.mark.integration

JFK = str(FIXTURES / "jfk.flac")
FRENCH = str(FIXTURES / "fleurs-fr-000.ogg")


def theo(*args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, env=env)


def test_transcribe_prints_the_transcript(
    server: RunningServer, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    result = theo("transcribe", JFK, "--model", TINY, "--server", server.base_url)

    assert result.exit_code == 0, result.output
    assert word_errors(fixture_manifest["jfk.flac"]["text"], result.output) == 0
    assert result.output.endswith("country.\n")


def test_transcribe_reads_stdin(server: RunningServer) -> None:
    audio = Path(JFK).read_bytes()
    result = theo("transcribe", "-", "-m", TINY, "--server", server.base_url, input=audio)
    assert result.exit_code == 0, result.output
    assert "ask not what your country can do for you" in result.output


def test_transcribe_formats(
    server: RunningServer, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    base = ("transcribe", JFK, "--model", TINY, "--server", server.base_url)

    as_json = theo(*base, "--format", "json", "--language", "en", "--temperature", "0")
    text = json.loads(as_json.output)["text"]
    assert word_errors(fixture_manifest["jfk.flac"]["text"], text) == 0

    srt = theo(*base, "--format", "srt").output
    assert srt.startswith("1\n00:00:00,000 --> 00:00:")

    vtt = theo(*base, "-f", "vtt", "--prompt", "Kennedy's inaugural address.").output
    assert vtt.startswith("WEBVTT\n")
    assert "ask not" in vtt


def test_word_timestamps(server: RunningServer) -> None:
    result = theo("transcribe", JFK, "-m", TINY, "--word-timestamps", "--server", server.base_url)

    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["task"] == "transcribe" and body["language"] == "english"
    words = [word["word"].strip(" ,.") for word in body["words"]]
    assert words[:4] == ["And", "so", "my", "fellow"]
    assert all(w["start"] <= w["end"] for w in body["words"])


def test_translate_french_into_english(server: RunningServer) -> None:
    result = theo("translate", FRENCH, "--model", BASE, "--server", server.base_url)

    assert result.exit_code == 0, result.output
    text = result.output.lower()
    # "l'accident a eu lieu ... il semblerait que cela ait été causé par un incendie ..."
    assert "the accident took place" in text
    assert "caused by" in text
    assert not {"eu", "lieu", "semblerait", "cela", "causé", "par"} & set(text.split())


def test_translate_verbose_json(server: RunningServer) -> None:
    result = theo(
        "translate", FRENCH, "-m", BASE, "-f", "verbose_json", "--server", server.base_url
    )
    body = json.loads(result.output)
    assert body["task"] == "translate"
    assert body["language"] == "english"
    assert body["segments"]


def test_transcribe_stream_prints_the_text_as_it_arrives(
    server: RunningServer, tmp_path: Path, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    # JFK three times, 4 s of silence between: 41 s, three windows. The first is decoded
    # alone and the others only after it, so its text is printed before theirs exists.
    jfk = decode_audio((FIXTURES / "jfk.flac").read_bytes())
    pause = np.zeros(4 * 16_000, np.float32)
    thrice = tmp_path / "thrice.wav"
    thrice.write_bytes(wav_bytes(np.concatenate([jfk, pause, jfk, pause, jfk])))
    command = [str(Path(sys.executable).parent / "theo"), "transcribe", str(thrice), "--stream",
               "-m", TINY, "--server", server.base_url]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        first = os.read(process.stdout.fileno(), 65536).decode()
        rest = process.stdout.read().decode()
    assert process.returncode == 0
    expected = fixture_manifest["jfk.flac"]["text"]
    assert word_errors(expected, first) == 0  # the first window, on its own
    assert word_errors(f"{expected} {expected} {expected}", first + rest) == 0
    assert rest.endswith("country.\n")


def test_server_errors_print_the_openai_message(server: RunningServer) -> None:
    cannot = theo("translate", FRENCH, "--model", TINY, "--server", server.base_url)
    assert cannot.exit_code == 1
    assert cannot.output == (
        f"Error: The model '{TINY}' cannot translate; use a multilingual model.\n"
    )

    unknown = theo("transcribe", JFK, "--model", "nope", "--server", server.base_url)
    assert unknown.exit_code == 1
    assert unknown.output.startswith("Error: The model 'nope' does not exist. Installed models:")
    assert TINY in unknown.output and "Traceback" not in unknown.output

    not_audio = theo("transcribe", str(FIXTURES / "bad" / "text_renamed.wav"), "-m", TINY,
                     "--server", server.base_url)  # fmt: skip
    assert not_audio.exit_code == 1
    assert not_audio.output.startswith("Error: ")


def test_default_model_comes_from_the_installed_models(
    server: RunningServer, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    env = {"THEO_MODELS_DIR": str(MODELS_DIR), "THEO_SERVER_URL": server.base_url}

    result = theo("transcribe", JFK, "--format", "verbose_json", env=env)

    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["language"] == "english"  # detected: faster-whisper-base comes first
    assert word_errors(fixture_manifest["jfk.flac"]["text"], body["text"]) <= 1


def test_serve_runs_the_bundle_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / TINY).mkdir(parents=True)
    for item in (MODELS_DIR / TINY).iterdir():
        os.link(item, models / TINY / item.name)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    command = [str(Path(sys.executable).parent / "theo"), "serve", "--host", "127.0.0.1",
               "--port", str(port), "--models-dir", str(models)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("THEO_")}
    process = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_healthy(RunningServer(url, process, log))
        [card] = httpx.get(f"{url}/v1/models").json()["data"]
        assert (card["id"], card["object"], card["owned_by"]) == (TINY, "model", "theo")
        # A request in flight when SIGTERM arrives still gets its answer.
        results: list[Result] = []
        request = threading.Thread(
            target=lambda: results.append(theo("transcribe", JFK, "-m", TINY, "--server", url))
        )
        request.start()
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        request.join(timeout=60)
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        _stop(process)
    assert results and results[0].exit_code == 0, results and results[0].output
    assert "ask not what your country can do for you" in results[0].output
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (theo forwards it), then a second one (theo kills the server), then SIGKILL."""
    for _ in range(2):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
    if process.poll() is None:
        process.kill()
        process.wait()
