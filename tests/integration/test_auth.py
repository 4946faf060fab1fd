"""Optional bearer-token auth (THEO_API_KEY) and what the server log must never hold."""

from __future__ import annotations

import io
import secrets
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.conftest import FIXTURES, MODELS_DIR, word_errors
from tests.integration.conftest import TINY, RunningServer, start_server, stop_server

KEY = "sk-theo-" + secrets.token_hex(24)
CLIP = FIXTURES / "LJ001-0008.mp3"
CLIP_TEXT = "has never been surpassed."


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("auth")
    models = tmp / "models"  # the small model only: this server tests the door, not the room
    models.mkdir()
    (models / TINY).symlink_to(MODELS_DIR / TINY, target_is_directory=True)
    server = start_server(
        tmp,
        models_dir=models,
        env={"THEO_API_KEY": KEY, "THEO_DEFAULT_MODEL": TINY, "THEO_LOG_LEVEL": "DEBUG"},
    )
    yield server
    stop_server(server)


def sdk(server: RunningServer, api_key: str) -> OpenAI:
    return OpenAI(base_url=f"{server.base_url}/v1", api_key=api_key, max_retries=0)


def assert_401(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] is None
    assert error["code"] == "invalid_api_key"
    return str(error["message"])


def test_the_sdk_with_the_key_is_served(secured: RunningServer) -> None:
    client = sdk(secured, KEY)
    result = client.audio.transcriptions.create(model=TINY, file=(CLIP.name, CLIP.read_bytes()))
    assert word_errors(CLIP_TEXT, result.text) == 0
    assert [model.id for model in client.models.list()] == [TINY]


def test_a_wrong_key_gets_openais_401(secured: RunningServer) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(secured, "sk-wrong-" + secrets.token_hex(8)).models.list()
    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"
    assert "Incorrect API key provided" in raised.value.message


def test_no_key_gets_401_saying_so(secured: RunningServer) -> None:
    response = httpx.post(
        f"{secured.base_url}/v1/audio/transcriptions",
        files={"file": (CLIP.name, CLIP.read_bytes())},
        data={"model": TINY},
        timeout=30,
    )
    assert "didn't provide an API key" in assert_401(response)


@pytest.mark.parametrize(
    "authorization",
    [
        KEY,  # no scheme
        f"Basic {KEY}",
        "Bearer",
        "Bearer null",
        f"Bearer {KEY}x",
        f"Bearer {KEY[:-1]}",
        f"Bearer {KEY.upper()}",
    ],
)
def test_malformed_or_near_miss_keys_are_401(secured: RunningServer, authorization: str) -> None:
    response = httpx.get(
        f"{secured.base_url}/v1/models", headers={"Authorization": authorization}, timeout=10
    )
    assert_401(response)


def test_the_scheme_is_case_insensitive(secured: RunningServer) -> None:
    response = httpx.get(
        f"{secured.base_url}/v1/models", headers={"Authorization": f"bearer {KEY}"}, timeout=10
    )
    assert response.status_code == 200, response.text


def test_every_api_route_needs_the_key(secured: RunningServer) -> None:
    spec = httpx.get(f"{secured.base_url}/openapi.json", timeout=10).json()
    routes = [(m, p) for p, ops in spec["paths"].items() for m in ops if p.startswith("/v1/")]
    assert len(routes) >= 4
    for method, path in routes:
        url = secured.base_url + path.replace("{model_id}", TINY)
        assert_401(httpx.request(method.upper(), url, timeout=10))


@pytest.mark.parametrize(
    "path", ["/health", "/livez", "/readyz", "/metrics", "/docs", "/openapi.json"]
)
def test_probes_and_docs_stay_public(secured: RunningServer, path: str) -> None:
    assert httpx.get(secured.base_url + path, timeout=10).status_code == 200


def marked_wav(marker: bytes) -> bytes:
    """A valid 1 s WAV whose sample bytes contain ``marker`` (it must never reach a log)."""
    samples = np.zeros(16_000, dtype="<i2").tobytes()
    samples = marker + samples[len(marker) :]
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(samples)
    return out.getvalue()


def test_logs_hold_neither_the_key_nor_the_audio(secured: RunningServer) -> None:
    marker = b"THEO-AUDIO-MARKER-" + secrets.token_hex(8).encode()
    prompt = "THEO-PROMPT-MARKER-" + secrets.token_hex(8)
    wrong_key = "sk-wrong-" + secrets.token_hex(12)
    request_ids = []
    for index, (key, name, data) in enumerate(
        [
            (KEY, "marked.wav", marked_wav(marker)),  # decodes: goes to the runner
            (KEY, "marked.txt", marker * 20),  # undecodable: 400
            (wrong_key, "marked.wav", marked_wav(marker)),  # 401
            (KEY, CLIP.name, CLIP.read_bytes() + marker),  # trailing junk after the MP3
        ]
    ):
        request_id = f"log-check-{index}-{secrets.token_hex(4)}"
        request_ids.append(request_id)
        httpx.post(
            f"{secured.base_url}/v1/audio/transcriptions",
            files={"file": (name, data)},
            data={"model": TINY, "prompt": prompt},
            headers={"Authorization": f"Bearer {key}", "X-Request-ID": request_id},
            timeout=60,
        )
    # A request's access line is written after its response is sent: wait for the last.
    deadline = time.monotonic() + 10
    log = Path(secured.log_path).read_bytes()
    while request_ids[-1].encode() not in log and time.monotonic() < deadline:
        time.sleep(0.1)
        log = Path(secured.log_path).read_bytes()
    for request_id in request_ids:
        assert request_id.encode() in log  # the requests were logged...
    assert KEY.encode() not in log  # ...without the key,
    assert wrong_key.encode() not in log  # a wrong key,
    assert marker not in log  # or any audio bytes,
    assert prompt.encode() not in log  # or the prompt
    assert KEY[-12:].encode() not in log  # not even the tail of the key
