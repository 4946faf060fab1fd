"""/v1/realtime in-process: handshake, both event generations, VAD and manual commits, faults.

The app runs in Starlette's TestClient with a scripted backend (no model); the audio is
real speech from tests/fixtures, so Silero VAD does what it does in production.
"""

from __future__ import annotations

import asyncio
import base64
import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from bench.live import pcm24
from tests.conftest import FIXTURES
from tests.unit.conftest import ENGLISH_MODEL, MULTILINGUAL_MODEL
from tests.unit.fakes import BackendSlot
from theo.errors import ServiceUnavailableError, TheoError
from theo.http.app import create_app
from theo.realtime.endpoint import RealtimeEndpoint
from theo.realtime.session import SPECULATE_BEFORE_MS
from theo.registry import ModelRegistry
from theo.serving.runner import LIVE_GROUP_SIZE
from theo.settings import Settings
from theo.transcription import TranscriptionJob, TranscriptionResult

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the reference G.711 encoder (Python < 3.13)

WORDS = [
    "and",
    "so",
    "my",
    "fellow",
    "americans",
    "ask",
    "not",
    "what",
    "your",
    "country",
    "can",
    "do",
    "for",
    "you",
]
JFK = pcm24(FIXTURES / "jfk.flac")  # 11 s
SHORT = pcm24(FIXTURES / "1089-134691-0000.flac")  # 2 s: "He could wait no longer."
SILENCE = bytes(2 * 24_000)  # 1 s
GA = "/v1/realtime?intent=transcription"


class ScriptedBackend:
    """Answers a job with one word per half second of its audio (so longer audio of the same
    utterance extends the text); can hold or fail calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool, float]] = []  # model, partial, seconds
        self.beams: list[tuple[bool, int | None]] = []  # partial, beam size asked for
        self.encoder_seconds: list[float | None] = []  # the encoder input asked for
        self.delays: list[float] = []  # seconds the next final calls take
        self.failures: list[TheoError] = []  # errors the next final calls raise

    def text(self, job: TranscriptionJob) -> str:
        return " ".join(WORDS[: max(1, int(job.duration * 2))][: len(WORDS)])

    async def transcribe(self, model: str, job: TranscriptionJob) -> TranscriptionResult:
        return (await self.transcribe_live(model, [job]))[0]

    async def transcribe_many(
        self, model: str, jobs: list[TranscriptionJob]
    ) -> list[TranscriptionResult]:
        return await self.transcribe_live(model, jobs)

    async def transcribe_live(
        self, model: str, jobs: list[TranscriptionJob], *, partial: bool = False
    ) -> list[TranscriptionResult]:
        self.calls += [(model, partial, job.duration) for job in jobs]
        self.beams += [(partial, job.beam_size) for job in jobs]
        self.encoder_seconds += [job.encoder_seconds for job in jobs]
        if not partial:
            if self.delays:
                await asyncio.sleep(self.delays.pop(0))
            if self.failures:
                raise self.failures.pop(0)
        return [TranscriptionResult(text=self.text(job), language="en") for job in jobs]

    async def readiness(self) -> dict[str, bool]:
        return {}

    async def warm_up(self) -> None:
        return None

    @property
    def finals(self) -> list[float]:
        return [seconds for _, partial, seconds in self.calls if not partial]


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
def make_client(
    registry: ModelRegistry, backend: ScriptedBackend
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = Settings(
            models_dir=registry.models_dir,
            default_model=ENGLISH_MODEL,
            **{"realtime_partials": False, **overrides},
        )
        app: FastAPI = create_app(settings, registry, BackendSlot(backend))
        client = TestClient(app)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def receive(ws: WebSocketTestSession, timeout: float = 20) -> dict[str, Any]:
    """The next event (TestClient's own receive would wait forever)."""

    async def get() -> Any:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    message = ws.portal.call(get)
    ws._raise_on_close(message)
    event: dict[str, Any] = json.loads(message["text"])
    return event


def until(
    ws: WebSocketTestSession, kind: str, seen: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Events up to the first of type ``kind`` (kept in ``seen``); that event."""
    while True:
        event = receive(ws)
        if seen is not None:
            seen.append(event)
        if event["type"] == kind:
            return event


def append(ws: WebSocketTestSession, pcm: bytes, chunk: int = 4800) -> None:
    for i in range(0, len(pcm), chunk):
        piece = base64.b64encode(pcm[i : i + chunk]).decode()
        ws.send_json({"type": "input_audio_buffer.append", "audio": piece})


def send(ws: WebSocketTestSession, kind: str, **fields: Any) -> None:
    ws.send_json({"type": kind, **fields})


COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"
FAILED = "conversation.item.input_audio_transcription.failed"


# -- Handshake and session ----------------------------------------------------------------------


def test_ga_session_with_the_realtime_subprotocol(client: TestClient) -> None:
    with client.websocket_connect(GA, subprotocols=["realtime"]) as ws:
        assert ws.accepted_subprotocol == "realtime"
        created = receive(ws)
        assert created["type"] == "session.created"
        session = created["session"]
        assert session["type"] == "transcription"
        assert session["audio"]["input"]["transcription"]["model"] == ENGLISH_MODEL
        assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"


def test_beta_session_from_the_openai_beta_header(client: TestClient) -> None:
    headers = {"OpenAI-Beta": "realtime=v1"}
    with client.websocket_connect(GA, headers=headers) as ws:
        assert ws.accepted_subprotocol is None
        created = receive(ws)
        assert created["type"] == "transcription_session.created"
        assert created["session"]["input_audio_format"] == "pcm16"
        send(
            ws,
            "transcription_session.update",
            session={"turn_detection": {"silence_duration_ms": 700}},
        )
        updated = receive(ws)
        assert updated["type"] == "transcription_session.updated"
        assert updated["session"]["turn_detection"]["silence_duration_ms"] == 700
        assert updated["session"]["turn_detection"]["threshold"] == 0.5  # unchanged


def test_a_query_model_picks_the_session_model(client: TestClient) -> None:
    with client.websocket_connect(GA + f"&model={MULTILINGUAL_MODEL}") as ws:
        session = receive(ws)["session"]
        assert session["audio"]["input"]["transcription"]["model"] == MULTILINGUAL_MODEL
    with client.websocket_connect(GA + "&model=gpt-4o-transcribe") as ws:  # not ours: ignored
        session = receive(ws)["session"]
        assert session["audio"]["input"]["transcription"]["model"] == ENGLISH_MODEL


def test_without_intent_a_first_transcription_update_makes_the_session(client: TestClient) -> None:
    with client.websocket_connect("/v1/realtime") as ws:
        send(
            ws,
            "session.update",
            session={"type": "transcription", "audio": {"input": {"turn_detection": None}}},
        )
        assert receive(ws)["type"] == "session.created"
        updated = receive(ws)
        assert updated["type"] == "session.updated"
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
    with client.websocket_connect("/v1/realtime") as ws:  # a beta update: beta events
        send(ws, "transcription_session.update", session={"input_audio_format": "g711_alaw"})
        assert receive(ws)["type"] == "transcription_session.created"
        assert receive(ws)["session"]["input_audio_format"] == "g711_alaw"


@pytest.mark.parametrize(
    "first",
    [
        {"type": "session.update", "session": {"type": "realtime", "model": "gpt-realtime"}},
        {"type": "response.create"},
        {"type": "input_audio_buffer.append", "audio": ""},
    ],
)
def test_a_conversation_session_gets_an_error_then_a_normal_close(
    client: TestClient, first: dict[str, Any]
) -> None:
    with client.websocket_connect("/v1/realtime?model=gpt-realtime") as ws:
        ws.send_json({**first, "event_id": "evt_1"})
        error = receive(ws)
        assert error["type"] == "error"
        assert error["error"]["code"] == "unsupported_session_type"
        assert error["error"]["event_id"] == "evt_1"
        assert "transcription sessions" in error["error"]["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            receive(ws)
        assert closed.value.code == 1000


# -- Utterances ----------------------------------------------------------------------------------


def test_server_vad_turns_speech_into_a_transcribed_item(
    client: TestClient, backend: ScriptedBackend
) -> None:
    with client.websocket_connect(GA) as ws:
        receive(ws)
        append(ws, SILENCE + SHORT + SILENCE)
        seen: list[dict[str, Any]] = []
        completed = until(ws, COMPLETED, seen)
        kinds = [e["type"] for e in seen]
        assert kinds == [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            DELTA,
            COMPLETED,
        ]
        started, stopped, committed, added, delta = seen[:5]
        item_id = started["item_id"]
        assert {e["item_id"] for e in (stopped, committed, delta, completed)} == {item_id}
        assert added["item"]["id"] == item_id and added["item"]["role"] == "user"
        assert committed["previous_item_id"] is None
        # Speech begins ~1.3 s in (after 1 s of silence and the clip's own); 300 ms padding.
        assert 900 <= started["audio_start_ms"] <= 1300
        assert 2900 <= stopped["audio_end_ms"] <= 3600
        seconds = (stopped["audio_end_ms"] - started["audio_start_ms"]) / 1000
        assert completed["usage"] == {
            "type": "duration",
            "seconds": pytest.approx(seconds, abs=0.01),
        }
        assert (
            delta["delta"]
            == completed["transcript"]
            == backend.text(
                TranscriptionJob.from_samples(np.zeros(int(backend.finals[-1] * 16000), np.float32))
            )
        )
        done = receive(ws)
        assert done["type"] == "conversation.item.done"
        assert done["item"]["content"][0]["transcript"] == completed["transcript"]


def test_manual_commits_with_turn_detection_off(
    make_client: Callable[..., TestClient], backend: ScriptedBackend
) -> None:
    client = make_client()
    with client.websocket_connect(GA, headers={"OpenAI-Beta": "realtime=v1"}) as ws:
        receive(ws)
        send(ws, "transcription_session.update", session={"turn_detection": None})
        receive(ws)
        send(ws, "input_audio_buffer.commit", event_id="evt_empty")
        error = receive(ws)
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        assert error["error"]["event_id"] == "evt_empty"
        append(ws, SHORT)
        send(ws, "input_audio_buffer.commit")
        committed = receive(ws)
        assert committed["type"] == "input_audio_buffer.committed"
        created = receive(ws)
        assert created["type"] == "conversation.item.created"  # beta's item event
        assert created["item"]["id"] == committed["item_id"]
        completed = until(ws, COMPLETED)
        assert completed["item_id"] == committed["item_id"]
        assert backend.finals == [pytest.approx(len(SHORT) / 2 / 24000, abs=0.01)]
        append(ws, SHORT)
        send(ws, "input_audio_buffer.commit")
        second = receive(ws)
        assert second["previous_item_id"] == committed["item_id"]


def test_clear_drops_the_uncommitted_audio(client: TestClient) -> None:
    with client.websocket_connect(GA) as ws:
        receive(ws)
        send(
            ws,
            "session.update",
            session={"type": "transcription", "audio": {"input": {"turn_detection": None}}},
        )
        receive(ws)
        append(ws, SHORT)
        send(ws, "input_audio_buffer.clear")
        assert receive(ws)["type"] == "input_audio_buffer.cleared"
        send(ws, "input_audio_buffer.commit")
        assert receive(ws)["error"]["code"] == "input_audio_buffer_commit_empty"


def test_silence_and_noise_complete_empty_without_a_decode(
    client: TestClient, backend: ScriptedBackend
) -> None:
    noise = (np.random.default_rng(0).normal(0, 0.05, 24000 * 2) * 32767).astype("<i2").tobytes()
    with client.websocket_connect(GA) as ws:
        receive(ws)
        send(
            ws,
            "session.update",
            session={"type": "transcription", "audio": {"input": {"turn_detection": None}}},
        )
        receive(ws)
        for audio in (SILENCE, noise):
            append(ws, audio)
            send(ws, "input_audio_buffer.commit")
            seen: list[dict[str, Any]] = []
            completed = until(ws, COMPLETED, seen)
            assert completed["transcript"] == ""
            assert [e["delta"] for e in seen if e["type"] == DELTA] == [""]  # one delta still
    assert backend.calls == []


def test_bad_events_get_errors_and_the_session_goes_on(client: TestClient) -> None:
    with client.websocket_connect(GA) as ws:
        receive(ws)
        ws.send_text("{not json")
        assert receive(ws)["error"]["code"] == "invalid_json"
        send(ws, "input_audio_buffer.append", audio="@@@", event_id="evt_b64")
        error = receive(ws)["error"]
        assert (error["code"], error["param"], error["event_id"]) == (
            "invalid_base64",
            "audio",
            "evt_b64",
        )
        send(ws, "no.such.event")
        assert receive(ws)["error"]["code"] == "invalid_event_type"
        send(ws, "response.create")
        assert receive(ws)["error"]["code"] == "unsupported_event"
        send(
            ws,
            "session.update",
            session={
                "type": "transcription",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 7}}},
            },
        )
        error = receive(ws)["error"]
        assert error["param"] == "session.audio.input.turn_detection.threshold"
        send(
            ws,
            "session.update",
            session={"type": "transcription", "audio": {"input": {"turn_detection": None}}},
        )
        assert receive(ws)["type"] == "session.updated"  # still there


def test_g711_mu_law_at_8_khz(client: TestClient) -> None:
    pcm8 = np.frombuffer(SILENCE + SHORT + SILENCE, dtype="<i2")[::3].astype("<i2").tobytes()
    with client.websocket_connect(GA) as ws:
        receive(ws)
        send(
            ws,
            "session.update",
            session={
                "type": "transcription",
                "audio": {"input": {"format": {"type": "audio/pcmu"}}},
            },
        )
        assert receive(ws)["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        append(ws, audioop.lin2ulaw(pcm8, 2), chunk=1600)
        started = until(ws, "input_audio_buffer.speech_started")
        assert 900 <= started["audio_start_ms"] <= 1300
        until(ws, COMPLETED)


def test_completions_come_in_commit_order(client: TestClient, backend: ScriptedBackend) -> None:
    backend.delays = [1.0, 0.0]  # the first utterance's decode is the slow one
    with client.websocket_connect(GA) as ws:
        receive(ws)
        append(ws, SHORT + SILENCE + SHORT + SILENCE)
        seen: list[dict[str, Any]] = []
        completions: list[str] = []
        while len(completions) < 2:
            event = receive(ws)
            seen.append(event)
            if event["type"] == COMPLETED:
                completions.append(event["item_id"])
    committed = [e["item_id"] for e in seen if e["type"] == "input_audio_buffer.committed"]
    assert completions == committed


def test_a_failed_decode_fails_its_item_and_the_session_goes_on(
    client: TestClient, backend: ScriptedBackend
) -> None:
    backend.failures = [
        ServiceUnavailableError("The runner for 'x' is unreachable; retry shortly.")
    ]
    with client.websocket_connect(GA) as ws:
        receive(ws)
        append(ws, SHORT + SILENCE)
        failed = until(ws, FAILED)
        assert failed["content_index"] == 0
        assert failed["error"]["code"] == "service_unavailable"
        assert failed["error"]["type"] == "server_error"
        append(ws, SHORT + SILENCE)
        assert until(ws, COMPLETED)["transcript"]


def test_the_final_decode_starts_before_the_silence_is_over(
    client: TestClient, backend: ScriptedBackend
) -> None:
    with client.websocket_connect(GA) as ws:
        receive(ws)
        append(ws, SILENCE + SHORT + SILENCE, chunk=960)  # 20 ms appends
        started = until(ws, "input_audio_buffer.speech_started")
        stopped = until(ws, "input_audio_buffer.speech_stopped")
        until(ws, COMPLETED)
    (decoded,) = backend.finals  # one decode, started before the silence was over
    committed = (stopped["audio_end_ms"] - started["audio_start_ms"]) / 1000
    assert decoded == pytest.approx(committed - SPECULATE_BEFORE_MS / 1000, abs=0.07)


def test_an_early_decode_is_not_the_text_when_speech_goes_on(
    client: TestClient, backend: ScriptedBackend
) -> None:
    words = SHORT[int(0.55 * 48000) : int(1.75 * 48000)]  # the clip's speech, 1.2 s
    pause = bytes(2 * int(0.4 * 24000))  # long enough to decode early, too short to end it
    with client.websocket_connect(GA) as ws:
        receive(ws)
        append(ws, SILENCE + words + pause + words + SILENCE, chunk=960)
        started = until(ws, "input_audio_buffer.speech_started")
        stopped = until(ws, "input_audio_buffer.speech_stopped")
        completed = until(ws, COMPLETED)
    committed = (stopped["audio_end_ms"] - started["audio_start_ms"]) / 1000
    assert len(backend.finals) >= 2  # the early one was not used
    assert backend.finals[-1] == pytest.approx(committed - SPECULATE_BEFORE_MS / 1000, abs=0.07)
    assert len(completed["transcript"].split()) == max(1, int(backend.finals[-1] * 2))


# -- Partial text -------------------------------------------------------------------------------


def test_partial_text_arrives_while_talking_and_adds_up(
    make_client: Callable[..., TestClient], backend: ScriptedBackend
) -> None:
    client = make_client(realtime_partials=True, realtime_partial_interval_seconds=0.5)
    with client.websocket_connect(GA) as ws:
        receive(ws)
        append(ws, JFK + SILENCE, chunk=2400)
        seen: list[dict[str, Any]] = []
        completed = until(ws, COMPLETED, seen)
    kinds = [e["type"] for e in seen]
    deltas = [e for e in seen if e["type"] == DELTA]
    assert kinds.index(DELTA) < kinds.index("input_audio_buffer.committed")  # while talking
    assert "".join(d["delta"] for d in deltas) == completed["transcript"]
    assert any(partial for _, partial, _ in backend.calls)
    # partial re-decodes are greedy drafts; final decodes use the model's beam
    assert {beam for partial, beam in backend.beams if partial} == {1}
    assert {beam for partial, beam in backend.beams if not partial} == {None}


@pytest.mark.parametrize(("setting", "asked"), [(None, 15.0), (20.0, 20.0), (0.0, None)])
def test_live_decodes_ask_for_a_shorter_encoder_input(
    make_client: Callable[..., TestClient],
    backend: ScriptedBackend,
    setting: float | None,
    asked: float | None,
) -> None:
    overrides = {} if setting is None else {"realtime_encoder_seconds": setting}
    client = make_client(realtime_partials=True, realtime_partial_interval_seconds=0.5, **overrides)
    with client.websocket_connect(GA) as ws:
        receive(ws)
        append(ws, JFK + SILENCE, chunk=2400)
        until(ws, COMPLETED, [])
    assert any(partial for _, partial, _ in backend.calls)
    assert set(backend.encoder_seconds) == {asked}  # finals and partials alike


# -- Limits and auth ------------------------------------------------------------------------------


def test_sessions_beyond_the_limit_get_an_error_and_1013(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(realtime_max_sessions_per_model=1)
    with client.websocket_connect(GA) as first:
        receive(first)
        with client.websocket_connect(GA) as second:
            error = receive(second)
            assert error["error"]["code"] == "session_limit_reached"
            with pytest.raises(WebSocketDisconnect) as closed:
                receive(second)
            assert closed.value.code == 1013
        with client.websocket_connect(GA + f"&model={MULTILINGUAL_MODEL}") as other_model:
            assert receive(other_model)["type"] == "session.created"
    with client.websocket_connect(GA) as again:  # the first one's slot was given back
        assert receive(again)["type"] == "session.created"


def test_oversized_events_and_buffers_are_refused(make_client: Callable[..., TestClient]) -> None:
    client = make_client(realtime_max_message_mb=0.01, realtime_max_buffered_seconds=1.5)
    with client.websocket_connect(GA) as ws:
        receive(ws)
        send(
            ws,
            "session.update",
            session={"type": "transcription", "audio": {"input": {"turn_detection": None}}},
        )
        receive(ws)
        append(ws, SHORT[:20000], chunk=20000)  # 27 KB of JSON: over 0.01 MB
        assert receive(ws)["error"]["code"] == "message_too_large"
        append(ws, SHORT[: 24000 * 2], chunk=4800)  # 1 s: fine
        append(ws, SHORT[: 24000 * 2], chunk=4800)  # 2 s in all: the last 0.5 s is refused
        errors = [receive(ws)["error"]["code"] for _ in range(5)]
        assert set(errors) == {"input_audio_buffer_full"}


def test_an_idle_session_is_closed(make_client: Callable[..., TestClient]) -> None:
    client = make_client(realtime_idle_timeout_seconds=0.3)
    with client.websocket_connect(GA) as ws:
        receive(ws)
        assert receive(ws)["error"]["code"] == "idle_timeout"
        with pytest.raises(WebSocketDisconnect) as closed:
            receive(ws)
        assert closed.value.code == 1000


@pytest.mark.parametrize(
    ("headers", "subprotocols"),
    [
        ({"Authorization": "Bearer sk-test"}, []),
        ({}, ["realtime", "openai-insecure-api-key.sk-test"]),
    ],
)
def test_the_key_in_a_header_or_a_subprotocol(
    make_client: Callable[..., TestClient], headers: dict[str, str], subprotocols: list[str]
) -> None:
    client = make_client(api_key="sk-test")
    with client.websocket_connect(GA, headers=headers, subprotocols=subprotocols) as ws:
        assert receive(ws)["type"] == "session.created"
        if subprotocols:
            assert ws.accepted_subprotocol == "realtime"  # never the key


@pytest.mark.parametrize(
    ("headers", "subprotocols", "says"),
    [
        ({}, [], "didn't provide"),
        ({"Authorization": "Bearer wrong"}, [], "Incorrect"),
        ({}, ["openai-insecure-api-key.wrong"], "Incorrect"),
    ],
)
def test_no_or_a_wrong_key_is_refused_before_accepting(
    make_client: Callable[..., TestClient],
    headers: dict[str, str],
    subprotocols: list[str],
    says: str,
) -> None:
    client = make_client(api_key="sk-test")
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        client.websocket_connect(GA, headers=headers, subprotocols=subprotocols),
    ):
        pass
    assert denied.value.status_code == 401
    error = denied.value.json()["error"]
    assert error["code"] == "invalid_api_key" and says in error["message"]


def test_partial_re_decodes_go_out_one_engine_group_at_a_time(
    registry: ModelRegistry, backend: ScriptedBackend
) -> None:
    # A partial batch of two engine groups took both of the live instance's workers, and a
    # final decode arriving meanwhile waited for it.
    settings = Settings(models_dir=registry.models_dir, default_model=ENGLISH_MODEL)
    endpoint = RealtimeEndpoint(settings, registry, lambda: backend)
    assert endpoint.decoder.partial_batch == LIVE_GROUP_SIZE
