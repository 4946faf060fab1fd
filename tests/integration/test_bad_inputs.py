"""Malformed, odd and hostile requests: a clear 4xx in OpenAI's shape or the right transcript.

Every file of the shared eval set's ``bad/`` folder is in ``tests/fixtures/bad/`` (its
``expect`` in ``manifest.jsonl``); after each one the server must still serve a valid request.
"""

from __future__ import annotations

import hashlib
import io
import json
import wave
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.conftest import FIXTURES, normalize_text, word_errors
from tests.integration.conftest import BASE, TINY, RunningServer, post_audio

CLIP = FIXTURES / "LJ001-0008.mp3"  # "has never been surpassed." (1.9 s)
CLIP_TEXT = "has never been surpassed."

# Whisper hallucinates a word or two on silence ("you"); more than this is a transcript.
NEAR_EMPTY_WORDS = 2
# A fragment of speech (0.1-0.5 s) may come out as a word or three.
FRAGMENT_WORDS = 4
# Word error rate allowed on the degraded-but-intelligible copies (clipped, 8 kHz, 8-bit...).
MAX_WER = 0.10


def _bad_entries() -> list[dict[str, Any]]:
    lines = (FIXTURES / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [entry for entry in map(json.loads, lines) if entry["path"].startswith("bad/")]


BAD = _bad_entries()


def _entry_id(entry: dict[str, Any]) -> str:
    return upload_name(entry)


def upload_name(entry: dict[str, Any]) -> str:
    """The file name as in the eval set (a FLAC-stored WAV is uploaded as the WAV)."""
    return Path(entry.get("source_path", entry["path"])).name


def _flac_to_wav(data: bytes) -> bytes:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        rate, channels = stream.rate, stream.channels
        frames = [frame.to_ndarray() for frame in container.decode(audio=0)]
    # Packed s16 frames are (1, samples * channels), already interleaved.
    samples = np.concatenate([frame.reshape(-1) for frame in frames]).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return out.getvalue()


def load_bad_file(entry: dict[str, Any]) -> bytes:
    """The exact bytes of the eval file (rebuilt from its lossless FLAC copy if stored so)."""
    data: bytes = (FIXTURES / entry["path"]).read_bytes()
    if entry.get("stored_as") == "flac":
        data = _flac_to_wav(data)
    if "sha256" in entry:
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
    return data


def assert_openai_error(response: httpx.Response, status: int, param: str | None) -> str:
    """The response is OpenAI's error shape with ``status``; returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    assert "Traceback" not in error["message"]
    return str(error["message"])


def assert_still_serving(client: OpenAI) -> None:
    text = client.audio.transcriptions.create(model=TINY, file=(CLIP.name, CLIP.read_bytes())).text
    assert word_errors(CLIP_TEXT, text) == 0, text


def test_every_bad_file_of_the_eval_set_is_covered() -> None:
    names = {upload_name(entry) for entry in BAD}
    assert len(names) == 24, sorted(names)
    for entry in BAD:
        load_bad_file(entry)  # present, and byte-identical to the eval set's file


@pytest.mark.parametrize(
    "entry", [e for e in BAD if e["expect"].startswith("error")], ids=_entry_id
)
def test_undecodable_file_is_400_saying_so(
    server: RunningServer, client: OpenAI, entry: dict[str, Any]
) -> None:
    response = post_audio(server, upload_name(entry), load_bad_file(entry))
    if entry["expect"] == "error" or response.status_code != 200:
        message = assert_openai_error(response, 400, "file")
        assert response.json()["error"]["code"] == "invalid_audio"
        assert any(word in message for word in ("empty", "decoded", "no audio")), message
    elif entry["expect"] == "error_or_empty":
        assert response.json()["text"] == ""
    else:  # error_or_partial: 0.13 s of speech at most
        assert len(normalize_text(response.json()["text"])) <= FRAGMENT_WORDS
    assert_still_serving(client)


@pytest.mark.parametrize("entry", [e for e in BAD if e["expect"] == "transcribe"], ids=_entry_id)
def test_odd_but_valid_audio_is_transcribed(client: OpenAI, entry: dict[str, Any]) -> None:
    result = client.audio.transcriptions.create(
        model=BASE, file=(upload_name(entry), load_bad_file(entry))
    )
    reference = entry["text"]
    errors = word_errors(reference, result.text)
    assert errors <= MAX_WER * len(normalize_text(reference)), result.text
    assert_still_serving(client)


# Raw Whisper writes "You", ". . ." or "1.5kg 1.5kg" on these; the engine must drop them.
@pytest.mark.parametrize("model", [TINY, BASE])
@pytest.mark.parametrize(
    "entry", [e for e in BAD if e["expect"].startswith("no_speech")], ids=_entry_id
)
def test_silence_noise_and_fragments_give_little_or_no_text(
    client: OpenAI, entry: dict[str, Any], model: str
) -> None:
    result = client.audio.transcriptions.create(
        model=model, file=(upload_name(entry), load_bad_file(entry))
    )
    limit = NEAR_EMPTY_WORDS if entry["expect"] == "no_speech" else FRAGMENT_WORDS
    assert_still_serving(client)
    words = len(normalize_text(result.text))
    assert words <= limit, result.text


# --- form fields ---------------------------------------------------------------------------


def test_missing_file_is_400_naming_it(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions", data={"model": TINY}, timeout=30
    )
    assert "file" in assert_openai_error(response, 400, "file")


def test_missing_model_is_400_naming_it(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": (CLIP.name, CLIP.read_bytes())},
        timeout=30,
    )
    assert "model" in assert_openai_error(response, 400, "model")


def test_empty_file_with_the_sdk_is_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.transcriptions.create(model=TINY, file=("empty.wav", b""))
    assert raised.value.param == "file"
    assert raised.value.code == "invalid_audio"
    assert "empty" in raised.value.message


def test_unknown_fields_are_ignored(server: RunningServer) -> None:
    response = post_audio(
        server,
        CLIP.name,
        CLIP.read_bytes(),
        user="someone",
        beam_size="50",  # an engine option: must not reach the engine
        vad_filter="true",
        device="cuda",
        initial_prompt="ignored",
    )
    assert response.status_code == 200, response.text
    assert word_errors(CLIP_TEXT, response.json()["text"]) == 0


def test_bad_response_format_is_400(server: RunningServer) -> None:
    response = post_audio(server, CLIP.name, CLIP.read_bytes(), response_format="xml")
    message = assert_openai_error(response, 400, "response_format")
    assert "verbose_json" in message  # lists the valid values


@pytest.mark.parametrize("temperature", ["1.5", "-0.1", "nan", "inf", "hot"])
def test_temperature_out_of_range_is_400(server: RunningServer, temperature: str) -> None:
    response = post_audio(server, CLIP.name, CLIP.read_bytes(), temperature=temperature)
    assert "temperature" in assert_openai_error(response, 400, "temperature")


def test_word_timestamps_with_json_is_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.transcriptions.create(
            model=TINY,
            file=(CLIP.name, CLIP.read_bytes()),
            response_format="json",
            timestamp_granularities=["word"],
        )
    assert raised.value.param == "timestamp_granularities"
    assert "verbose_json" in str(raised.value)


def test_non_utf8_prompt_is_400(server: RunningServer, client: OpenAI) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={
            "file": (CLIP.name, CLIP.read_bytes()),
            "prompt": (None, b"\xff\xfe caf\xe9 \xc3\x28 \x80\x9f", "text/plain"),
        },
        data={"model": TINY},
        timeout=60,
    )
    assert "UTF-8" in assert_openai_error(response, 400, "prompt")
    assert_still_serving(client)


def test_utf8_prompt_with_accents_and_newlines_is_fine(client: OpenAI) -> None:
    result = client.audio.transcriptions.create(
        model=TINY, file=(CLIP.name, CLIP.read_bytes()), prompt="Café, naïve façade.\n\tÜber"
    )
    assert word_errors(CLIP_TEXT, result.text) == 0, result.text


def test_huge_prompt_field_is_400(server: RunningServer, client: OpenAI) -> None:
    response = post_audio(server, CLIP.name, CLIP.read_bytes(), prompt="word " * 400_000)
    message = assert_openai_error(response, 400, None)
    assert "maximum size" in message
    assert_still_serving(client)


def test_long_prompt_under_the_field_limit_is_accepted(client: OpenAI) -> None:
    # 270 KB: Whisper keeps the prompt's last 224 tokens; the rest must not break anything.
    result = client.audio.transcriptions.create(
        model=TINY,
        file=(CLIP.name, CLIP.read_bytes()),
        prompt="The quick brown fox jumps over the lazy dog. " * 6000,
    )
    assert word_errors(CLIP_TEXT, result.text) == 0, result.text


@pytest.mark.parametrize(
    "model",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        "faster-whisper-tiny.en/../faster-whisper-base",
        "models/faster-whisper-tiny.en",
        "faster-whisper-tiny.en\x00",
        "~/.ssh/id_rsa",
    ],
)
def test_model_names_that_look_like_paths_are_not_found(server: RunningServer, model: str) -> None:
    response = post_audio(server, CLIP.name, CLIP.read_bytes(), model=model)
    assert response.status_code in (400, 404), response.text
    error = response.json()["error"]
    assert error["param"] == "model"
    assert "root:" not in response.text  # never the content of a file


def test_model_lookup_by_path_is_not_found(server: RunningServer) -> None:
    for path in ("/v1/models/..%2F..%2Fetc%2Fpasswd", "/v1/models/%2Fetc%2Fpasswd"):
        response = httpx.get(server.base_url + path, timeout=10)
        assert response.status_code == 404, path
        assert "root:" not in response.text
