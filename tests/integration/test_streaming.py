"""stream=true and the rest of OpenAI's transcription fields, against a real `bentoml serve`.

Read by the real openai SDKs (Python, and Node when `node` is installed) and by curl, as the
example in docs/api.md shows; bad input while streaming; a client that leaves (runner CPU
measured); 16 streams at once; a runner killed mid-stream.
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import psutil
import pytest
from openai import OpenAI
from openai.types.audio import TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent

from tests.conftest import FIXTURES, REPO_ROOT, normalize_text, word_errors
from tests.integration.conftest import (
    BASE,
    TINY,
    RunningServer,
    runner_process,
    start_server,
    stop_server,
)
from theo.audio import decode_audio
from theo.transcription import SAMPLE_RATE

pytestmark = pytest.mark.integration

JFK = FIXTURES / "jfk.flac"
JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
FRENCH = FIXTURES / "fleurs-fr-000.ogg"
TINY_RUNNER = "runner_faster_whisper_tiny_en"
URL_IN_DOCS = "http://localhost:8000"
DOCS_EXAMPLE = re.compile(
    re.escape("<!-- tested by tests/integration/test_streaming.py -->") + r"\n```bash\n(.*?)\n```",
    re.DOTALL,
)


def clip(name: str) -> np.ndarray:
    return decode_audio((FIXTURES / name).read_bytes())


def wav(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(np.clip(samples * 32768.0, -32768, 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def joined(names: list[str], pause: float = 4.0) -> np.ndarray:
    """The clips one after another with ``pause`` s of silence between: a window each."""
    gap = np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32)
    parts = [part for name in names for part in (clip(name), gap)][:-1]
    return np.concatenate(parts)


# 66.8 s, six windows of English speech.
SPEECH = joined(
    [
        "jfk.flac",
        "1089-134686-0000.flac",
        "LJ001-0002.wav",
        "1089-134691-0000.flac",
        "jfk.flac",
        "1089-134686-0000.flac",
    ]
)
SPEECH_WAV = wav(SPEECH)
SPEECH_SECONDS = math.ceil(len(SPEECH) / SAMPLE_RATE)


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The events of an SSE body, checking its framing: a ``data:`` line, then a blank line."""
    lines = response.iter_lines()
    for line in lines:
        assert line.startswith("data: "), line
        yield json.loads(line[len("data: ") :])
        assert next(lines) == ""


def stream_events(server: RunningServer, audio: bytes, **fields: Any) -> list[dict[str, Any]]:
    with httpx.stream(
        "POST",
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": ("audio.wav", audio)},
        data={"model": TINY, "stream": "true", **fields},
        timeout=120,
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(sse_events(response))


def sdk_stream(client: OpenAI, model: str, audio: bytes, **kwargs: Any) -> list[Any]:
    return list(
        client.audio.transcriptions.create(
            model=model, file=("audio.wav", audio), stream=True, **kwargs
        )
    )


# --- the Python SDK ---------------------------------------------------------------------------


def test_sdk_stream_of_several_windows_adds_up_to_the_json_text(client: OpenAI) -> None:
    events = sdk_stream(client, TINY, SPEECH_WAV)
    *deltas, done = events
    assert len(deltas) >= 4  # a delta per window with speech
    assert all(isinstance(e, TranscriptionTextDeltaEvent) for e in deltas)
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert "".join(e.delta for e in deltas) == done.text
    plain = client.audio.transcriptions.create(model=TINY, file=("audio.wav", SPEECH_WAV))
    assert done.text == plain.text
    assert done.usage is not None
    assert done.usage.to_dict() == {"type": "duration", "seconds": SPEECH_SECONDS}
    assert plain.usage is not None and plain.usage.to_dict() == done.usage.to_dict()
    assert word_errors(JFK_TEXT, deltas[0].delta) == 0  # in audio order


@pytest.mark.parametrize("model", [TINY, BASE])
def test_sdk_stream_both_models(client: OpenAI, model: str) -> None:
    audio = JFK.read_bytes()
    *deltas, done = sdk_stream(client, model, audio, language="en", response_format="text")
    assert word_errors(JFK_TEXT, done.text) == 0
    assert "".join(e.delta for e in deltas) == done.text
    plain = client.audio.transcriptions.create(model=model, file=("jfk.flac", audio), language="en")
    assert plain.text == done.text
    assert plain.usage is not None and plain.usage.to_dict() == {"type": "duration", "seconds": 11}


def test_translation_stream(server: RunningServer, client: OpenAI) -> None:
    audio = FRENCH.read_bytes()
    with httpx.stream(
        "POST",
        f"{server.base_url}/v1/audio/translations",
        files={"file": ("fr.ogg", audio)},
        data={"model": BASE, "stream": "true"},
        timeout=120,
    ) as response:
        assert response.status_code == 200
        *deltas, done = sse_events(response)
    assert done["type"] == "transcript.text.done" and "usage" not in done
    assert "".join(d["delta"] for d in deltas) == done["text"]
    plain = client.audio.translations.create(model=BASE, file=("fr.ogg", audio))
    assert plain.text == done["text"]
    assert "accident" in done["text"].lower()


# --- chunking_strategy, include[], diarization -------------------------------------------------


def test_sdk_chunking_strategy(client: OpenAI) -> None:
    # Silence around the speech: VAD leaves it out, and the timestamps stay the file's.
    audio = wav(np.concatenate([np.zeros(3 * SAMPLE_RATE, np.float32), clip("jfk.flac")]))
    result = client.audio.transcriptions.create(
        model=TINY,
        file=("jfk.wav", audio),
        response_format="verbose_json",
        chunking_strategy={"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 200},
    )
    assert word_errors(JFK_TEXT, result.text) == 0
    assert result.segments and result.segments[0].start >= 2.5
    assert result.usage is not None and result.usage.seconds == 14
    auto = client.audio.transcriptions.create(
        model=TINY, file=("jfk.wav", audio), chunking_strategy="auto"
    )
    assert word_errors(JFK_TEXT, auto.text) == 0


def test_chunking_strategy_as_json_and_bad_values(server: RunningServer) -> None:
    def post(value: str) -> httpx.Response:
        return httpx.post(
            f"{server.base_url}/v1/audio/transcriptions",
            files={"file": ("jfk.flac", JFK.read_bytes())},
            data={"model": TINY, "chunking_strategy": value},
            timeout=60,
        )

    assert post('{"type": "server_vad", "silence_duration_ms": 500}').status_code == 200
    bad = post('{"type": "server_vad", "threshold": 7}')
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "chunking_strategy"
    assert "chunking_strategy[threshold]" in bad.json()["error"]["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"include": ["logprobs"]}, "include"),
        ({"response_format": "diarized_json"}, "response_format"),
        ({"known_speaker_names": ["agent"]}, "known_speaker_names"),
    ],
)
def test_unsupported_fields_are_clear_400s(
    client: OpenAI, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.audio.transcriptions.create(
            model=TINY, file=("jfk.flac", JFK.read_bytes()), **fields
        )
    assert excinfo.value.param == param
    assert TINY in excinfo.value.message


# --- curl, as docs/api.md shows it --------------------------------------------------------------


def test_the_curl_example_in_the_docs_runs_as_pasted(server: RunningServer, tmp_path: Path) -> None:
    text = (REPO_ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    [code] = DOCS_EXAMPLE.findall(text)
    assert "curl -sN" in code and "stream=true" in code
    (tmp_path / "tests" / "fixtures").mkdir(parents=True)
    shutil.copy(JFK, tmp_path / "tests" / "fixtures" / "jfk.flac")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code.replace(URL_IN_DOCS, server.base_url)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert printed[1::2] == [""] * (len(printed) // 2)  # a blank line after each event
    shown = [json.loads(line[len("# data: ") :]) for line in code.splitlines() if "data:" in line]
    sent = [json.loads(line[len("data: ") :]) for line in printed[::2]]
    assert [e["type"] for e in sent] == [e["type"] for e in shown]
    assert sent[-1]["usage"] == shown[-1]["usage"]
    for event, example in zip(sent, shown, strict=True):
        text = event.get("delta", event.get("text"))
        assert normalize_text(text) == normalize_text(example.get("delta", example.get("text")))


# --- bad input while streaming -----------------------------------------------------------------


def test_bad_input_while_streaming_is_an_ordinary_error(server: RunningServer) -> None:
    def post(audio: bytes, **fields: str) -> httpx.Response:
        return httpx.post(
            f"{server.base_url}/v1/audio/transcriptions",
            files={"file": ("audio", audio)},
            data={"model": TINY, "stream": "true", **fields},
            timeout=60,
        )

    undecodable = post(b"this is not audio" * 100)
    assert undecodable.status_code == 400
    assert undecodable.headers["content-type"] == "application/json"
    assert undecodable.json()["error"]["code"] == "invalid_audio"
    unknown = post(JFK.read_bytes(), model="large-v9")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    srt = post(JFK.read_bytes(), response_format="srt")
    assert srt.status_code == 400 and srt.json()["error"]["param"] == "response_format"
    # The next stream is fine.
    events = stream_events(server, JFK.read_bytes())
    assert events[-1]["type"] == "transcript.text.done"
    assert word_errors(JFK_TEXT, events[-1]["text"]) == 0


def test_sixteen_streams_at_once(server: RunningServer, client: OpenAI) -> None:
    audio = JFK.read_bytes()
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda _: sdk_stream(client, TINY, audio), range(16)))
    texts = {events[-1].text for events in outcomes}
    assert len(texts) == 1
    assert word_errors(JFK_TEXT, texts.pop()) == 0
    assert all("".join(e.delta for e in events[:-1]) == events[-1].text for events in outcomes)
    assert stream_events(server, audio)[-1]["type"] == "transcript.text.done"


# --- a client that leaves ----------------------------------------------------------------------


def settled_cpu(process: psutil.Process, timeout: float = 60.0) -> float:
    """The process's CPU seconds, once it has stopped using CPU (less than 5% for 1 s)."""
    deadline = time.monotonic() + timeout
    times = process.cpu_times()
    last: float = times.user + times.system
    while time.monotonic() < deadline:
        time.sleep(1.0)
        times = process.cpu_times()
        now: float = times.user + times.system
        if now - last < 0.05:
            return now
        last = now
    raise AssertionError("the runner is still busy")


def test_a_client_that_leaves_stops_the_work(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # 16 windows of JFK: the first is decoded alone, the next four once it is; the client
    # leaves at the first delta, so the eleven after those must never reach the runner.
    audio = wav(joined(["jfk.flac"] * 16))
    runner = runner_process(server, TINY_RUNNER)
    url = f"{server.base_url}/v1/audio/transcriptions"
    before = settled_cpu(runner)
    complete = stream_events(server, audio)
    assert len(complete) == 17
    full = settled_cpu(runner) - before

    started = time.monotonic()
    with httpx.stream(
        "POST",
        url,
        files={"file": ("a.wav", audio)},
        data={"model": TINY, "stream": "true"},
        timeout=120,
    ) as response:
        first = next(sse_events(response))
        left_after = time.monotonic() - started
    assert first["type"] == "transcript.text.delta"
    left = settled_cpu(runner) - before - full
    with capsys.disabled():
        print(
            f"\nrunner CPU: whole stream {full:.1f} s; client gone at the first delta "
            f"({left_after:.1f} s): {left:.1f} s ({left / full:.0%})"
        )
    assert left < 0.6 * full
    # Nothing is stuck: the next request is served.
    assert stream_events(server, JFK.read_bytes())[-1]["type"] == "transcript.text.done"


# --- a runner that dies mid-stream -------------------------------------------------------------


@pytest.fixture
def tiny_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A server of its own, with tiny.en only: this test kills its runner."""
    models = tmp_path / "models"
    models.mkdir()
    (models / TINY).symlink_to(REPO_ROOT / "models" / TINY)
    server = start_server(tmp_path, models_dir=models, env={"THEO_DEFAULT_MODEL": TINY})
    yield server
    stop_server(server)


def test_a_runner_that_dies_mid_stream_ends_it_with_an_error_event(
    tiny_server: RunningServer,
) -> None:
    client = OpenAI(base_url=f"{tiny_server.base_url}/v1", api_key="x", max_retries=0)
    audio = wav(joined(["jfk.flac"] * 12))
    received: list[Any] = []
    with pytest.raises(openai.APIError) as excinfo:
        for event in client.audio.transcriptions.create(
            model=TINY, file=("a.wav", audio), stream=True
        ):
            received.append(event)
            if len(received) == 1:
                runner_process(tiny_server, TINY_RUNNER).kill()
    assert received and received[0].type == "transcript.text.delta"
    assert excinfo.value.type == "server_error"
    assert excinfo.value.code == "service_unavailable"
    assert "runner" in excinfo.value.message
    # BentoML brings the runner back; the server serves again.
    events: list[Any] = []
    deadline = time.monotonic() + 60
    while not events and time.monotonic() < deadline:
        try:
            events = sdk_stream(client, TINY, JFK.read_bytes())
        except openai.APIError:
            time.sleep(1)
    assert events and word_errors(JFK_TEXT, events[-1].text) == 0


# --- the Node SDK -----------------------------------------------------------------------------

NODE_STREAM = """
import fs from "node:fs";
import OpenAI, { toFile } from "openai";
const [baseURL, path, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "x", maxRetries: 0 });
const audio = () => toFile(fs.readFileSync(path), "audio.wav");
// An object: openai-node sends it as chunking_strategy[type], chunking_strategy[threshold], ...
const chunking_strategy = { type: "server_vad", threshold: 0.5, silence_duration_ms: 300 };
const events = [];
try {
  const stream = await client.audio.transcriptions.create({
    model, file: await audio(), stream: true, chunking_strategy,
  });
  for await (const event of stream) events.push(event);
} catch (error) {
  events.push({ thrown: error.constructor.name, message: error.message, code: error.code ?? null,
                type: error.type ?? null, status: error.status ?? null });
}
let plain = null;
if (!events.some((e) => e.thrown)) {
  plain = await client.audio.transcriptions.create({
    model, file: await audio(), chunking_strategy,
  });
}
console.log(JSON.stringify({ events, plain }));
"""


@pytest.fixture(scope="session")
def node_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the latest openai-node 6.x and the script above (skips without node)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed")
    folder = tmp_path_factory.mktemp("node-sdk")
    (folder / "package.json").write_text('{"name": "theo-sdk-test", "private": true}')
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", "openai@6"],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (folder / "stream.mjs").write_text(NODE_STREAM)
    return folder


def run_node(folder: Path, base_url: str, audio: Path, model: str = TINY) -> dict[str, Any]:
    done = subprocess.run(
        ["node", "stream.mjs", f"{base_url}/v1", str(audio), model],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_node_sdk_stream(node_sdk: Path, server: RunningServer, tmp_path: Path) -> None:
    audio = tmp_path / "speech.wav"
    audio.write_bytes(SPEECH_WAV)
    result = run_node(node_sdk, server.base_url, audio)
    *deltas, done = result["events"]
    assert len(deltas) >= 4
    assert {e["type"] for e in deltas} == {"transcript.text.delta"}
    assert done["type"] == "transcript.text.done"
    assert "".join(e["delta"] for e in deltas) == done["text"] == result["plain"]["text"]
    assert done["usage"] == {"type": "duration", "seconds": SPEECH_SECONDS}
    assert result["plain"]["usage"] == done["usage"]
    assert normalize_text(JFK_TEXT) == normalize_text(deltas[0]["delta"])


class _FailingStream(BaseHTTPRequestHandler):
    """A stream that fails after one delta, with the event Theo sends then."""

    body = (
        b'data: {"type":"transcript.text.delta","delta":"Hello."}\n\n'
        b'data: {"type":"error","error":{"message":"The runner is down.",'
        b'"type":"server_error","param":null,"code":"service_unavailable"}}\n\n'
    )

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def test_node_sdk_raises_the_error_event(node_sdk: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FailingStream)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        result = run_node(node_sdk, f"http://127.0.0.1:{httpd.server_address[1]}", JFK)
    finally:
        httpd.shutdown()
        httpd.server_close()
    delta, thrown = result["events"]
    assert delta == {"type": "transcript.text.delta", "delta": "Hello."}
    assert thrown["thrown"] == "APIError"
    assert thrown["message"] == "The runner is down."
    assert (thrown["code"], thrown["type"]) == ("service_unavailable", "server_error")
