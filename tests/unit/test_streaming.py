"""stream=true: theo/http/streaming.py and the app's streamed path, with a fake backend.

The windows' order, incremental delivery, errors after the stream started, and what a
client that leaves stops; the events are read as raw SSE and through the real SDK.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from typing import Any

import numpy as np
import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI
from openai.types.audio import TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent

from tests.conftest import FIXTURES
from tests.unit.conftest import ENGLISH_MODEL, MULTILINGUAL_MODEL
from tests.unit.fakes import BackendSlot, FakeBackend, two_segment_result
from tests.unit.sounds import wav_bytes
from theo.audio import decode_audio
from theo.chunking import merge_window_results
from theo.errors import ServiceUnavailableError
from theo.http.app import WINDOWS_IN_FLIGHT_PER_REQUEST, create_app
from theo.http.streaming import encode_event, transcript_events
from theo.registry import ModelRegistry
from theo.settings import Settings
from theo.transcription import SAMPLE_RATE, TranscriptionJob, TranscriptionResult

TRANSCRIPTIONS = "/v1/audio/transcriptions"
TRANSLATIONS = "/v1/audio/translations"
FRENCH = (FIXTURES / "fleurs-fr-000.ogg").read_bytes()  # 10.2 s: one window
TEXT = "Hello there. General Kenobi."
WINDOWS = 8


def eight_windows() -> bytes:
    """120 s: JFK (11 s) then 4 s of silence, eight times; VAD cuts one window per JFK."""
    jfk = decode_audio((FIXTURES / "jfk.flac").read_bytes())
    pause = np.zeros(4 * SAMPLE_RATE, dtype=np.float32)
    return wav_bytes(np.concatenate([np.concatenate([jfk, pause]) for _ in range(WINDOWS)]))


LONG = eight_windows()


def window_text(offset: float) -> str:
    return f"Window at {offset:.0f} s."


class WindowBackend(FakeBackend):
    """Answers each window with a text naming its offset, after ``delay(job)`` seconds.

    ``gate``: when set, windows after the first wait for it (the test opens it).
    Records the jobs sent, and those whose call was cancelled.
    """

    def __init__(self, *, delay: float = 0.0, reverse: bool = False, gated: bool = False):
        super().__init__(ready={ENGLISH_MODEL: True, MULTILINGUAL_MODEL: True})
        self.delay = delay
        self.reverse = reverse  # later windows finish first
        self.gate = threading.Event() if gated else None
        self.cancelled: list[float] = []
        self.finished: list[float] = []
        self.started: dict[float, float] = {}  # offset -> when its call began

    async def transcribe(self, model: str, job: TranscriptionJob) -> TranscriptionResult:
        self.calls.append((model, job))
        self.started[job.offset] = time.monotonic()
        try:
            if self.reverse:
                await asyncio.sleep(max(0.0, 0.4 - job.offset / 300))
            if self.gate is not None and job.offset > 0:
                while not self.gate.is_set():
                    await asyncio.sleep(0.01)
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled.append(job.offset)
            raise
        self.finished.append(job.offset)
        result = two_segment_result(duration=job.duration, offset=job.offset)
        return result.model_copy(update={"text": window_text(job.offset)})


Start = Callable[..., TestClient]


@pytest.fixture
def start(settings: Settings, registry: ModelRegistry) -> Iterator[Start]:
    """A client of an app over ``backend`` (and ``settings``, if given), closed after the test."""
    with ExitStack() as stack:

        def make(backend: FakeBackend, app_settings: Settings = settings) -> TestClient:
            app = create_app(app_settings, registry, BackendSlot(backend))
            return stack.enter_context(TestClient(app))

        yield make


@pytest.fixture
def backend() -> WindowBackend:
    return WindowBackend()


@pytest.fixture
def app(settings: Settings, registry: ModelRegistry, backend: FakeBackend) -> FastAPI:
    return create_app(settings, registry, BackendSlot(backend))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def sdk(client: TestClient) -> OpenAI:
    return OpenAI(
        base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0
    )


def form(**fields: Any) -> dict[str, Any]:
    return {"model": MULTILINGUAL_MODEL, "stream": "true", **fields}


def read_events(lines: Iterator[str]) -> list[dict[str, Any]]:
    """Parse an SSE body strictly: only ``data:`` lines, each followed by a blank line."""
    events: list[dict[str, Any]] = []
    expect_blank = False
    for line in lines:
        if expect_blank:
            assert line == "", f"no blank line after an event: {line!r}"
            expect_blank = False
            continue
        assert line.startswith("data: "), line
        events.append(json.loads(line[len("data: ") :]))
        expect_blank = True
    return events


def stream(
    client: TestClient, audio: bytes = LONG, path: str = TRANSCRIPTIONS, **fields: Any
) -> tuple[int, dict[str, str], list[dict[str, Any]]]:
    with client.stream("POST", path, data=form(**fields), files={"file": ("a.wav", audio)}) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, dict(r.headers), [r.json()]
        return r.status_code, dict(r.headers), read_events(r.iter_lines())


# --- the events -------------------------------------------------------------------------------


def test_a_stream_is_a_delta_per_window_in_order_then_done(
    client: TestClient, backend: WindowBackend
) -> None:
    status, headers, events = stream(client)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    offsets = sorted(job.offset for _, job in backend.calls)
    assert len(offsets) == WINDOWS
    *deltas, done = events
    assert [e["type"] for e in deltas] == ["transcript.text.delta"] * WINDOWS
    assert deltas[0]["delta"] == window_text(offsets[0])
    assert [d["delta"] for d in deltas[1:]] == [" " + window_text(o) for o in offsets[1:]]
    assert done["type"] == "transcript.text.done"
    assert done["text"] == "".join(d["delta"] for d in deltas)
    assert done["usage"] == {"type": "duration", "seconds": 120}
    assert set(done) == {"type", "text", "usage"}


def test_the_streamed_text_is_the_json_text(client: TestClient) -> None:
    _, _, events = stream(client)
    response = client.post(
        TRANSCRIPTIONS, data={"model": MULTILINGUAL_MODEL}, files={"file": ("a.wav", LONG)}
    )
    assert events[-1]["text"] == response.json()["text"]
    assert events[-1]["usage"] == response.json()["usage"]


def test_a_window_that_finishes_early_waits_for_the_ones_before_it(start: Start) -> None:
    backend = WindowBackend(reverse=True)
    _, _, events = stream(start(backend))
    offsets = sorted(job.offset for _, job in backend.calls)
    # Of the windows sent together, the later finish first.
    assert backend.finished[0] > backend.finished[1]
    assert [e["delta"].strip() for e in events[:-1]] == [window_text(o) for o in offsets]


def test_the_first_delta_comes_before_the_other_windows_are_done(start: Start) -> None:
    backend = WindowBackend(gated=True)
    assert backend.gate is not None
    client = start(backend)
    with client.stream("POST", TRANSCRIPTIONS, data=form(), files={"file": ("a.wav", LONG)}) as r:
        lines = r.iter_lines()
        first = json.loads(next(lines)[len("data: ") :])
        assert first == {"type": "transcript.text.delta", "delta": window_text(0)}
        assert next(lines) == ""
        assert backend.finished == [0.0]  # the others are still at the "runner"
        backend.gate.set()
        rest = read_events(lines)
    assert len(rest) == WINDOWS  # 7 deltas and done
    assert rest[-1]["type"] == "transcript.text.done"


def test_a_stream_sends_its_first_window_alone(start: Start) -> None:
    # Alone, it is decoded in a batch of its own, so the first delta comes sooner; the
    # next windows go beside it, not after it.
    backend = WindowBackend(delay=0.3)
    _, _, events = stream(start(backend))
    assert len(events) == WINDOWS + 1
    assert backend.many_calls[:2] == [1, 2]
    first, second, third, *_ = sorted(backend.started.items(), key=lambda item: item[0])
    assert second[1] < first[1] + 0.2 and third[1] < first[1] + 0.2
    # Without stream=true, the first windows go together.
    backend.started.clear()
    plain = start(backend).post(
        TRANSCRIPTIONS, data={"model": MULTILINGUAL_MODEL}, files={"file": ("a.wav", LONG)}
    )
    assert plain.status_code == 200
    starts = sorted(backend.started.values())
    assert starts[WINDOWS_IN_FLIGHT_PER_REQUEST - 1] - starts[0] < 0.2


def test_silence_streams_only_done(client: TestClient, backend: WindowBackend) -> None:
    silence = wav_bytes(np.zeros(40 * SAMPLE_RATE, dtype=np.int16))
    status, _, events = stream(client, audio=silence)
    assert status == 200
    assert events == [
        {"type": "transcript.text.done", "text": "", "usage": {"type": "duration", "seconds": 40}}
    ]
    assert backend.calls == []


def test_text_format_streams_the_same_events(client: TestClient) -> None:
    _, _, as_json = stream(client, audio=FRENCH)
    _, _, as_text = stream(client, audio=FRENCH, response_format="text")
    assert as_text == as_json
    assert [e["type"] for e in as_json] == ["transcript.text.delta", "transcript.text.done"]
    assert as_json[-1]["usage"] == {"type": "duration", "seconds": 11}


def test_a_translation_streams_without_usage(client: TestClient, backend: WindowBackend) -> None:
    status, _, events = stream(client, audio=FRENCH, path=TRANSLATIONS)
    assert status == 200
    assert events[-1] == {"type": "transcript.text.done", "text": window_text(0)}
    assert backend.calls[0][1].task == "translate"


def test_deltas_add_up_to_the_merged_text_whatever_the_whitespace() -> None:
    texts = ["", "  Hello  ", " ", "there.", "\nGeneral Kenobi. "]

    async def results() -> AsyncIterator[TranscriptionResult]:
        for text in texts:
            yield TranscriptionResult(text=text)

    async def collect() -> list[dict[str, Any]]:
        events = transcript_events(
            results(), lambda windows: merge_window_results(windows, 1.0), usage=False
        )
        return [event async for event in events]

    *deltas, done = asyncio.run(collect())
    assert [d["delta"] for d in deltas] == ["Hello", " there.", " General Kenobi."]
    assert done == {"type": "transcript.text.done", "text": "Hello there. General Kenobi."}


def test_encode_event_is_one_data_line_and_a_blank_line() -> None:
    encoded = encode_event({"type": "transcript.text.delta", "delta": "Grüße\nzwei"})
    assert (
        encoded
        == b'data: {"type":"transcript.text.delta","delta":"Gr\xc3\xbc\xc3\x9fe\\nzwei"}\n\n'
    )


# --- errors -------------------------------------------------------------------------------------


def test_errors_before_the_stream_starts_are_ordinary_json(client: TestClient) -> None:
    status, headers, [body] = stream(client, model="large-v9")
    assert status == 404 and headers["content-type"] == "application/json"
    assert body["error"]["code"] == "model_not_found"
    status, _, [body] = stream(client, audio=b"not audio at all")
    assert status == 400 and body["error"]["code"] == "invalid_audio"
    status, _, [body] = stream(client, response_format="srt")
    assert status == 400 and body["error"]["param"] == "response_format"


def test_a_failing_first_window_is_an_ordinary_503(start: Start) -> None:
    backend = FakeBackend(failures=[ServiceUnavailableError("The runner is down.")])
    status, headers, [body] = stream(start(backend), audio=FRENCH)
    assert status == 503
    assert headers["retry-after"] == "7"
    assert body["error"]["message"] == "The runner is down."


def test_a_window_failing_mid_stream_ends_it_with_an_error_event(start: Start) -> None:
    backend = WindowBackend()
    down = ServiceUnavailableError("The runner for 'x' is unreachable; retry shortly.")
    original = backend.transcribe

    async def fourth_fails(model: str, job: TranscriptionJob) -> TranscriptionResult:
        if 40 < job.offset < 50:
            raise down
        return await original(model, job)

    backend.transcribe = fourth_fails  # type: ignore[method-assign]
    client = start(backend)
    status, _, events = stream(client)
    assert status == 200
    # The first window goes alone, the others two per call: the fourth fails its call.
    assert [e["type"] for e in events] == ["transcript.text.delta"] * 3 + ["error"]
    assert events[-1] == {"type": "error", **down.to_openai()}
    # The next request is fine.
    assert stream(client, audio=FRENCH)[2][-1]["type"] == "transcript.text.done"


def test_a_result_error_mid_stream_is_a_500_event_that_leaks_nothing(start: Start) -> None:
    backend = WindowBackend()
    original = backend.transcribe

    async def second_breaks(model: str, job: TranscriptionJob) -> TranscriptionResult:
        result = await original(model, job)
        if 10 < job.offset < 20:
            return result.model_copy(update={"error": "out of memory at 0xdeadbeef"})
        return result

    backend.transcribe = second_breaks  # type: ignore[method-assign]
    _, _, events = stream(start(backend))
    assert [e["type"] for e in events] == ["transcript.text.delta", "error"]
    assert events[-1]["error"]["type"] == "server_error"
    assert "0xdeadbeef" not in json.dumps(events)


def test_the_sdk_raises_the_error_event(start: Start) -> None:
    backend = WindowBackend()
    original = backend.transcribe

    async def second_fails(model: str, job: TranscriptionJob) -> TranscriptionResult:
        if job.offset > 10:
            raise ServiceUnavailableError("The runner for 'x' is unreachable; retry shortly.")
        return await original(model, job)

    backend.transcribe = second_fails  # type: ignore[method-assign]
    sdk = OpenAI(
        base_url="http://testserver/v1", api_key="k", http_client=start(backend), max_retries=0
    )
    events = sdk.audio.transcriptions.create(
        model="whisper-1", file=("long.wav", LONG), stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as excinfo:
        for event in events:
            received.append(event)
    assert [e.type for e in received] == ["transcript.text.delta"]
    assert excinfo.value.message == "The runner for 'x' is unreachable; retry shortly."
    assert excinfo.value.code == "service_unavailable"
    assert excinfo.value.type == "server_error"


# --- the SDK ------------------------------------------------------------------------------------


def test_sdk_iterates_the_stream_as_its_types(sdk: OpenAI, client: TestClient) -> None:
    events = list(
        sdk.audio.transcriptions.create(model="whisper-1", file=("long.wav", LONG), stream=True)
    )
    deltas = [e for e in events if isinstance(e, TranscriptionTextDeltaEvent)]
    done = events[-1]
    assert len(deltas) == len(events) - 1 == WINDOWS
    assert all(e.logprobs is None and e.segment_id is None for e in deltas)
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert "".join(e.delta for e in deltas) == done.text
    plain = sdk.audio.transcriptions.create(model="whisper-1", file=("long.wav", LONG))
    assert plain.text == done.text
    # The SDK types the done event's usage as token usage only; it keeps what it is sent.
    assert done.usage is not None
    assert done.usage.to_dict() == {"type": "duration", "seconds": 120}
    assert plain.usage is not None and plain.usage.type == "duration"
    assert plain.usage.seconds == 120


# --- what a stream holds, and what a client that leaves stops ------------------------------


def test_a_client_that_leaves_stops_the_windows_not_yet_sent(start: Start) -> None:
    backend = WindowBackend(gated=True)
    client = start(backend)
    with client.stream("POST", TRANSCRIPTIONS, data=form(), files={"file": ("a.wav", LONG)}) as r:
        lines = r.iter_lines()
        assert "transcript.text.delta" in next(lines)
    # Closing the response cancelled the request: the windows at the "runner" were
    # abandoned, and the rest never sent (nor even cut: windows are cut as they are needed,
    # so how many reached the runner depends on how far decoding got).
    deadline = time.monotonic() + 5
    while len(backend.cancelled) < len(backend.calls) - 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 1 <= len(backend.calls) <= WINDOWS_IN_FLIGHT_PER_REQUEST + 1 < WINDOWS
    assert backend.finished == [0.0]
    assert len(backend.cancelled) == len(backend.calls) - 1


def test_a_stream_holds_its_slot_until_it_ends(start: Start, settings: Settings) -> None:
    # One request at a time per model: a second request waits for the stream to end.
    backend = WindowBackend(gated=True)
    assert backend.gate is not None
    client = start(backend, settings.model_copy(update={"max_in_flight_per_model": 1}))
    second: list[int] = []

    def send_second() -> None:
        files = {"file": ("a.ogg", FRENCH)}
        second.append(
            client.post(TRANSCRIPTIONS, data=form(stream="false"), files=files).status_code
        )

    with client.stream("POST", TRANSCRIPTIONS, data=form(), files={"file": ("a.wav", LONG)}) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ") and next(lines) == ""
        thread = threading.Thread(target=send_second)
        thread.start()
        time.sleep(0.5)
        assert second == [] and len(backend.calls) == WINDOWS_IN_FLIGHT_PER_REQUEST + 1
        backend.gate.set()
        assert read_events(lines)[-1]["type"] == "transcript.text.done"
    thread.join(timeout=10)
    assert second == [200]


def test_a_client_that_leaves_gives_its_slot_back(start: Start, settings: Settings) -> None:
    one_at_a_time = {"max_in_flight_per_model": 1, "max_queue_wait_seconds": 3}
    client = start(WindowBackend(gated=True), settings.model_copy(update=one_at_a_time))
    for _ in range(3):
        with client.stream(
            "POST", TRANSCRIPTIONS, data=form(), files={"file": ("a.wav", LONG)}
        ) as r:
            assert r.status_code == 200
            next(r.iter_lines())
    response = client.post(TRANSCRIPTIONS, data=form(), files={"file": ("a.ogg", FRENCH)})
    assert response.status_code == 200, response.text


def test_sixteen_streams_at_once(start: Start) -> None:
    backend = WindowBackend(delay=0.05)
    client = start(backend)
    outcomes: list[list[dict[str, Any]]] = []

    def one() -> None:
        outcomes.append(stream(client)[2])

    threads = [threading.Thread(target=one) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 16
    texts = {events[-1]["text"] for events in outcomes}
    assert len(texts) == 1 and all(
        events[-1]["type"] == "transcript.text.done" for events in outcomes
    )
    assert len(backend.calls) == 16 * WINDOWS
