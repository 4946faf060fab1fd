"""/v1/realtime against a real ``bentoml serve``: the OpenAI SDK (GA and beta), a plain
WebSocket client, ``theo live``, and the faults: a runner killed mid-session, a shutdown.

Clips from tests/fixtures are streamed as 24 kHz PCM; one test streams at real-time pace,
the others faster where pacing is not the point.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from openai import AsyncOpenAI

from bench.live import pcm24
from tests.conftest import FIXTURES, word_errors
from tests.integration.conftest import (
    TINY,
    RunningServer,
    post_audio,
    runner_process,
    start_server,
    stop_server,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the reference G.711 encoder (Python < 3.13)

RATE = 24_000
CLIPS = [FIXTURES / "1089-134686-0000.flac", FIXTURES / "LJ001-0002.wav"]  # 10.4 s, 1.9 s
PAUSE = bytes(2 * int(1.5 * RATE))
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"
DELTA = "conversation.item.input_audio_transcription.delta"
TINY_RUNNER = "runner_faster_whisper_tiny_en"
KEY = "sk-live-test"


def ws_url(server: RunningServer, query: str = "intent=transcription") -> str:
    return server.base_url.replace("http://", "ws://") + "/v1/realtime?" + query


def chunks(pcm: bytes, seed: int = 0) -> Iterator[bytes]:
    """``pcm`` in pieces of 20-100 ms, as microphones send it."""
    rng = np.random.default_rng(seed)
    position = 0
    while position < len(pcm):
        size = 2 * int(rng.uniform(0.02, 0.1) * RATE)
        yield pcm[position : position + size]
        position += size


def file_text(server: RunningServer, clip: Path) -> str:
    response = post_audio(server, clip.name, clip.read_bytes())
    assert response.status_code == 200, response.text
    text: str = response.json()["text"]
    return text


def vad_session(model: str = TINY) -> dict[str, Any]:
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "transcription": {"model": model},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
            }
        },
    }


# -- The OpenAI SDK -------------------------------------------------------------------------------


def test_ga_sdk_at_real_time_pace_transcribes_as_files_do(server: RunningServer) -> None:
    client = AsyncOpenAI(
        api_key="not-needed",
        base_url=f"{server.base_url}/v1",
        websocket_base_url=server.base_url.replace("http://", "ws://") + "/v1",
    )
    stream = PAUSE + PAUSE.join(pcm24(clip) for clip in CLIPS) + PAUSE

    async def main() -> tuple[list[Any], float]:
        events: list[Any] = []
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
            await conn.session.update(session=vad_session())  # type: ignore[arg-type]
            began = time.monotonic()

            async def send() -> None:
                sent = 0
                for piece in chunks(stream):
                    await asyncio.sleep(max(0.0, began + sent / 2 / RATE - time.monotonic()))
                    await conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
                    sent += len(piece)

            sender = asyncio.create_task(send())
            async for event in conn:
                events.append(event)
                if sum(e.type == COMPLETED for e in events) == len(CLIPS):
                    break
            await sender
        return events, time.monotonic() - began

    events, seconds = asyncio.run(main())
    assert (
        seconds >= len(stream) / 2 / RATE - 0.1
    )  # real time (the last piece is sent at its start)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["session.created", "session.updated"]
    assert "response.created" not in kinds  # no model "response" in a transcription session
    completed = [e for e in events if e.type == COMPLETED]
    for clip, event in zip(CLIPS, completed, strict=True):
        assert word_errors(file_text(server, clip), event.transcript) <= 1, event.transcript
        deltas = [e.delta for e in events if e.type == DELTA and e.item_id == event.item_id]
        assert deltas  # at least one delta per utterance, before its completed
        assert event.usage.type == "duration" and event.usage.seconds > 1
    # Item events: added at the commit, done (with the transcript) after completed.
    added = [e.item.id for e in events if e.type == "conversation.item.added"]
    assert added == [c.item_id for c in completed]
    done = [e.item.content[0].transcript for e in events if e.type == "conversation.item.done"]
    assert done == [completed[0].transcript]  # the last one's came after the loop stopped


def test_beta_sdk_with_manual_commits(server: RunningServer) -> None:
    client = AsyncOpenAI(
        api_key="not-needed", websocket_base_url=server.base_url.replace("http://", "ws://") + "/v1"
    )
    clip = CLIPS[0]

    async def main() -> list[Any]:
        events: list[Any] = []
        async with client.beta.realtime.connect(
            model="whisper-1", extra_query={"intent": "transcription"}
        ) as conn:
            # The beta SDK's types list OpenAI's models only, and no null turn detection
            # (which the API takes, and which turns server VAD off).
            session: Any = {"input_audio_transcription": {"model": TINY}, "turn_detection": None}
            await conn.transcription_session.update(session=session)
            for piece in chunks(pcm24(clip)):
                await conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
            await conn.input_audio_buffer.commit()
            async for event in conn:
                events.append(event)
                if event.type in (COMPLETED, FAILED):
                    break
        return events

    events = asyncio.run(main())
    kinds = [e.type for e in events]
    assert kinds[:2] == ["transcription_session.created", "transcription_session.updated"]
    assert kinds[2:] == [
        "input_audio_buffer.committed",
        "conversation.item.created",
        DELTA,
        COMPLETED,
    ]
    assert word_errors(file_text(server, clip), events[-1].transcript) <= 1


# -- A plain WebSocket client, bad input, batching -------------------------------------------------


async def _events_until(
    ws: Any, kind: str, count: int = 1, *, answers: int = 0
) -> list[dict[str, Any]]:
    """Events up to the ``count``-th of type ``kind`` or, with ``answers``, up to that many
    completed or failed transcriptions."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(60):
        while True:
            if answers and sum(e["type"] in (COMPLETED, FAILED) for e in events) >= answers:
                return events
            if not answers and sum(e["type"] == kind for e in events) >= count:
                return events
            events.append(json.loads(await ws.recv()))


def test_plain_client_g711_bad_input_and_silence(server: RunningServer) -> None:
    clip = CLIPS[1]
    pcm8 = np.frombuffer(pcm24(clip), dtype="<i2")[::3].astype("<i2").tobytes()

    async def main() -> list[dict[str, Any]]:
        async with websockets.connect(ws_url(server), max_size=None) as ws:
            audio_input = {"format": {"type": "audio/pcmu"}, "turn_detection": None}
            session = {"type": "transcription", "audio": {"input": audio_input}}
            await ws.send(json.dumps({"type": "session.update", "session": session}))
            await ws.send("{not json")
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "%%"}))
            await ws.send(json.dumps({"type": "what.is.this"}))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))  # empty
            silence = base64.b64encode(audioop.lin2ulaw(bytes(16000), 2)).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": silence}))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))  # 1 s of silence
            ulaw = audioop.lin2ulaw(pcm8, 2)
            for i in range(0, len(ulaw), 800):
                piece = base64.b64encode(ulaw[i : i + 800]).decode()
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": piece}))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            return await _events_until(ws, COMPLETED, 2)

    events = asyncio.run(main())
    codes = [e["error"]["code"] for e in events if e["type"] == "error"]
    assert codes == [
        "invalid_json",
        "invalid_base64",
        "invalid_event_type",
        "input_audio_buffer_commit_empty",
    ]
    silent, spoken = [e["transcript"] for e in events if e["type"] == COMPLETED]
    assert silent == ""  # nothing hallucinated from silence
    assert word_errors(file_text(server, clip), spoken) <= 2  # 8 kHz mu-law: phone quality


def test_concurrent_sessions_are_batched_and_logged_without_text(server: RunningServer) -> None:
    clip = CLIPS[0]
    audio = pcm24(clip) + PAUSE

    async def one() -> str:
        async with websockets.connect(ws_url(server), max_size=None) as ws:
            await ws.send(json.dumps({"type": "session.update", "session": vad_session()}))
            for piece in chunks(audio):
                encoded = base64.b64encode(piece).decode()
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": encoded}))
            events = await _events_until(ws, COMPLETED)
            return str(events[-1]["transcript"])

    async def main() -> list[str]:
        return await asyncio.gather(*(one() for _ in range(4)))

    expected = file_text(server, clip)
    for transcript in asyncio.run(main()):
        assert word_errors(expected, transcript) <= 1
    time.sleep(0.5)
    lines = [line for line in server.log().splitlines() if "live utterance" in line]
    assert any("batch_size=" in line and "batch_size=1 " not in line for line in lines), lines[-4:]
    assert any("live session" in line for line in server.log().splitlines())
    assert "turnips" not in server.log().lower()  # no transcript (nor audio) in the logs


def test_the_file_instance_decodes_at_a_lower_priority_than_the_live_one(
    server: RunningServer,
) -> None:
    file_text(server, CLIPS[0])  # both instances have decoded by now (warm-up, this file)
    threads = runner_process(server, TINY_RUNNER).threads()
    nice = {t.id: os.getpriority(os.PRIO_PROCESS, t.id) for t in threads}
    # the file instance's CTranslate2 threads (two workers and the solo instance's) at the
    # default THEO_REALTIME_FILE_NICENESS; the live instance's and BentoML's at 0
    assert sum(1 for value in nice.values() if value == 10) >= 3
    assert set(nice.values()) == {0, 10}


def test_theo_live_prints_the_text(server: RunningServer) -> None:
    theo = Path(sys.executable).parent / "theo"
    result = subprocess.run(
        [str(theo), "live", str(CLIPS[0]), "--server", server.base_url, "-m", TINY, "--speed", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert word_errors(file_text(server, CLIPS[0]), result.stdout.replace("» ", "")) <= 2


# -- Auth, limits, faults, shutdown: a server of their own ----------------------------------------


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[RunningServer]:
    env = {
        "THEO_API_KEY": KEY,
        "THEO_REALTIME_MAX_SESSIONS_PER_MODEL": "2",
        "THEO_REALTIME_PARTIALS": "false",
    }
    running = start_server(tmp_path, env=env)
    yield running
    stop_server(running)


async def _open(server: RunningServer, **options: Any) -> Any:
    ws = await websockets.connect(ws_url(server), max_size=None, **options)
    assert json.loads(await ws.recv())["type"] == "session.created"
    return ws


async def _say(ws: Any, clip: Path) -> None:
    """Send ``clip`` fast and commit it (turn detection off)."""
    manual = {"type": "transcription", "audio": {"input": {"turn_detection": None}}}
    await ws.send(json.dumps({"type": "session.update", "session": manual}))
    for piece in chunks(pcm24(clip)):
        audio = base64.b64encode(piece).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
    await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))


def test_key_limits_a_killed_runner_and_shutdown(guarded: RunningServer) -> None:
    bearer: dict[str, Any] = {"additional_headers": {"Authorization": f"Bearer {KEY}"}}
    subprotocol: dict[str, Any] = {"subprotocols": ["realtime", f"openai-insecure-api-key.{KEY}"]}

    async def refused_without_key() -> int:
        try:
            await websockets.connect(ws_url(guarded))
        except websockets.InvalidStatus as refused:
            return refused.response.status_code
        return 101

    async def limits() -> None:
        first = await _open(guarded, **bearer)
        second = await _open(guarded, **subprotocol)
        assert second.subprotocol == "realtime"
        third = await websockets.connect(ws_url(guarded), **bearer)
        assert json.loads(await third.recv())["error"]["code"] == "session_limit_reached"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await third.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        await first.close()
        await second.close()

    async def runner_dies_then_comes_back() -> None:
        ws = await _open(guarded, **bearer)
        await _say(ws, CLIPS[0])
        await _events_until(ws, "input_audio_buffer.committed")
        await asyncio.sleep(0.3)  # its decode is at the runner (it takes a second)
        runner_process(guarded, TINY_RUNNER).kill()
        # Failed, or completed when BentoML's respawned runner was up within the router's
        # probe (it retries a dropped call once then): answered either way, never lost.
        answer = (await _events_until(ws, COMPLETED, answers=1))[-1]
        if answer["type"] == FAILED:
            assert answer["error"]["type"] == "server_error"
        print(f"\nthe utterance in flight when its runner was killed: {answer['type']}")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # BentoML respawns the runner
            if httpx.get(f"{guarded.base_url}/health", timeout=5).status_code == 200:
                break
            await asyncio.sleep(1)
        await _say(ws, CLIPS[1])  # the same session works again
        completed = (await _events_until(ws, COMPLETED))[-1]
        assert word_errors(file_text_with_key(guarded, CLIPS[1]), completed["transcript"]) <= 1
        await ws.close()

    async def shutdown_finishes_utterances_then_closes_1001() -> None:
        ws = await _open(guarded, **bearer)
        await _say(ws, CLIPS[0])
        await _events_until(ws, "input_audio_buffer.committed")
        os.kill(guarded.process.pid, signal.SIGTERM)  # as `docker stop` does
        events = await _events_until(ws, COMPLETED)
        assert events[-1]["transcript"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(30):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001

    assert asyncio.run(refused_without_key()) == 401
    asyncio.run(limits())
    asyncio.run(runner_dies_then_comes_back())
    asyncio.run(shutdown_finishes_utterances_then_closes_1001())
    assert guarded.process.wait(timeout=60) == 0


def file_text_with_key(server: RunningServer, clip: Path) -> str:
    response = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": (clip.name, clip.read_bytes())},
        data={"model": TINY},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["text"])
