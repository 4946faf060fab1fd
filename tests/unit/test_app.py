"""theo/http/app.py: the OpenAI routes end to end in-process, with a fake backend."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2  # what starlette's TestClient and the openai SDK are built on here
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import BadRequestError, NotFoundError, OpenAI
from openai.types import Model

from tests.conftest import FIXTURES
from tests.unit.conftest import ENGLISH_MODEL, MULTILINGUAL_MODEL, manifest_data, write_manifest
from tests.unit.fakes import BackendSlot, FakeBackend
from tests.unit.sounds import long_speech, wav_bytes
from theo.errors import ServiceUnavailableError
from theo.http.app import create_app
from theo.registry import ModelRegistry
from theo.settings import Settings

TRANSCRIPTIONS = "/v1/audio/transcriptions"
TRANSLATIONS = "/v1/audio/translations"
JFK = (FIXTURES / "jfk.flac").read_bytes()  # 11 s
FRENCH = (FIXTURES / "fleurs-fr-000.ogg").read_bytes()  # 10.2 s, 17 KB
TEXT = "Hello there. General Kenobi."
# OpenAI's usage for whisper-1: the audio's seconds, rounded up (FRENCH is 10.2 s).
FRENCH_USAGE = {"type": "duration", "seconds": 11}

EXPECTED_SRT = (
    "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n"
    "2\n00:00:02,500 --> 00:00:05,250\nGeneral Kenobi.\n"
)
EXPECTED_VTT = (
    "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n"
    "00:00:02.500 --> 00:00:05.250\nGeneral Kenobi.\n"
)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(ready={ENGLISH_MODEL: True, MULTILINGUAL_MODEL: True})


@pytest.fixture
def app(settings: Settings, registry: ModelRegistry, backend: FakeBackend) -> FastAPI:
    return create_app(settings, registry, BackendSlot(backend))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def post(
    client: TestClient,
    data: dict[str, Any] | None = None,
    *,
    audio: bytes | None = FRENCH,
    path: str = TRANSCRIPTIONS,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    """POST a multipart form the way the OpenAI SDK does (``file`` plus form fields)."""
    fields: dict[str, Any] = {"model": MULTILINGUAL_MODEL}
    fields.update(data or {})
    files = (
        {"file": ("audio.ogg", audio, "application/octet-stream")} if audio is not None else None
    )
    return client.post(path, data=fields, files=files, headers=headers)


def assert_openai_error(
    response: httpx2.Response, status: int, param: str | None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert error["message"]
    assert "Traceback" not in response.text
    return error


# --- response formats -------------------------------------------------------------------------


def test_json(client: TestClient, backend: FakeBackend) -> None:
    response = post(client)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"text": TEXT, "usage": FRENCH_USAGE}
    # The app decoded the upload to 16 kHz float32 before handing it over.
    [(model, job)] = backend.calls
    assert model == MULTILINGUAL_MODEL
    assert job.task == "transcribe"
    assert abs(job.duration - 10.2) < 0.1
    assert job.word_timestamps is False


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [("text", TEXT + "\n"), ("srt", EXPECTED_SRT), ("vtt", EXPECTED_VTT)],
)
def test_plain_text_formats(client: TestClient, response_format: str, expected: str) -> None:
    response = post(client, {"response_format": response_format})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == expected


def test_verbose_json_defaults_to_segments(client: TestClient) -> None:
    response = post(client, {"response_format": "verbose_json"}, audio=JFK)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["task"] == "transcribe"
    assert body["language"] == "english"
    assert body["duration"] == pytest.approx(11.0, abs=0.05)  # from the decoded upload
    assert body["usage"] == {"type": "duration", "seconds": math.ceil(body["duration"])}
    assert body["text"] == TEXT
    assert [s["id"] for s in body["segments"]] == [0, 1]
    assert "words" not in body


def test_sdk_repeated_granularities_reach_the_backend(
    client: TestClient, backend: FakeBackend
) -> None:
    # The openai SDK sends one `timestamp_granularities[]` form field per value.
    response = post(
        client,
        {"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [w["word"] for w in body["words"]] == [" Hello", " there.", " General", " Kenobi."]
    assert set(body["words"][0]) == {"word", "start", "end"}
    assert len(body["segments"]) == 2
    assert backend.calls[0][1].word_timestamps is True


def test_word_granularity_only(client: TestClient) -> None:
    response = post(
        client, {"response_format": "verbose_json", "timestamp_granularities[]": "word"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["words"]) == 4
    assert "segments" not in body


def test_language_and_prompt_reach_the_backend(client: TestClient, backend: FakeBackend) -> None:
    response = post(
        client,
        {
            "response_format": "verbose_json",
            "language": "FR",
            "prompt": "Kowloon",
            "temperature": "0.2",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["language"] == "french"
    job = backend.calls[0][1]
    assert (job.language, job.prompt, job.temperature) == ("fr", "Kowloon", 0.2)


def test_unknown_fields_are_ignored(client: TestClient) -> None:
    response = post(client, {"user": "someone", "keywords[]": "Kenobi"})
    assert response.status_code == 200, response.text


# --- chunking_strategy, include[], diarization ------------------------------------------------


def test_without_chunking_strategy_short_audio_is_one_window(
    client: TestClient, backend: FakeBackend
) -> None:
    assert post(client).status_code == 200
    [(_, job)] = backend.calls
    assert job.offset == 0.0 and job.duration == pytest.approx(10.2, abs=0.1)


@pytest.mark.parametrize(
    "fields",
    [
        {"chunking_strategy": "auto"},
        {"chunking_strategy": '{"type": "server_vad", "threshold": 0.5}'},
        # What openai-python and openai-node send for an object.
        {"chunking_strategy[type]": "server_vad", "chunking_strategy[prefix_padding_ms]": "100"},
    ],
)
def test_chunking_strategy_cuts_short_audio_at_its_speech(
    client: TestClient, backend: FakeBackend, fields: dict[str, str]
) -> None:
    response = post(client, {"response_format": "verbose_json", **fields})
    assert response.status_code == 200, response.text
    [(_, job)] = backend.calls
    # fleurs-fr starts with ~2 s without speech: VAD cut it off.
    assert 1.0 < job.offset < 2.5
    assert job.duration < 9.0
    assert response.json()["segments"][0]["start"] == job.offset


def test_chunking_strategy_parameters_are_used(client: TestClient, backend: FakeBackend) -> None:
    padded = {
        "chunking_strategy[type]": "server_vad",
        "chunking_strategy[prefix_padding_ms]": "900",
    }
    tight = {"chunking_strategy[type]": "server_vad", "chunking_strategy[prefix_padding_ms]": "0"}
    assert post(client, padded).status_code == 200
    assert post(client, tight).status_code == 200
    (_, wide), (_, narrow) = backend.calls
    assert wide.offset < narrow.offset and wide.duration > narrow.duration + 1.0


def test_sdk_chunking_strategy(sdk: OpenAI, backend: FakeBackend) -> None:
    result = sdk.audio.transcriptions.create(
        model="whisper-1",
        file=("a.ogg", FRENCH),
        chunking_strategy={"type": "server_vad", "threshold": 0.4, "silence_duration_ms": 300},
    )
    assert result.text == TEXT
    assert backend.calls[0][1].offset > 1.0
    auto = sdk.audio.transcriptions.create(
        model="whisper-1", file=("a.ogg", FRENCH), chunking_strategy="auto"
    )
    assert auto.text == TEXT


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"chunking_strategy": "semantic"}, "chunking_strategy"),
        (
            {"chunking_strategy[type]": "server_vad", "chunking_strategy[threshold]": "2"},
            "threshold",
        ),
        ({"chunking_strategy[threshold]": "0.5"}, "chunking_strategy[type]"),
    ],
)
def test_bad_chunking_strategy(
    client: TestClient, backend: FakeBackend, fields: dict[str, str], named: str
) -> None:
    error = assert_openai_error(post(client, fields), 400, "chunking_strategy")
    assert named in error["message"]
    assert backend.calls == []


def test_sdk_include_logprobs_is_a_400(sdk: OpenAI, backend: FakeBackend) -> None:
    with pytest.raises(BadRequestError) as excinfo:
        sdk.audio.transcriptions.create(
            model="whisper-1", file=("a.ogg", FRENCH), include=["logprobs"]
        )
    assert excinfo.value.param == "include"
    assert "logprobs" in excinfo.value.message
    assert backend.calls == []


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "diarized_json"}, "response_format"),
        ({"known_speaker_names": ["agent"]}, "known_speaker_names"),
        (
            {"known_speaker_references": ["data:audio/wav;base64,UklGRg=="]},
            "known_speaker_references",
        ),
    ],
)
def test_sdk_diarization_is_a_400(
    sdk: OpenAI, backend: FakeBackend, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(BadRequestError) as excinfo:
        sdk.audio.transcriptions.create(model="whisper-1", file=("a.ogg", FRENCH), **fields)
    assert excinfo.value.param == param
    assert "diarization is not supported" in excinfo.value.message
    assert backend.calls == []


def test_translation(settings: Settings, registry: ModelRegistry) -> None:
    backend = FakeBackend(language="fr")
    with TestClient(create_app(settings, registry, BackendSlot(backend))) as client:
        response = post(client, {"response_format": "verbose_json"}, path=TRANSLATIONS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "translate"
    assert body["language"] == "english"
    assert "usage" not in body  # OpenAI reports usage on transcriptions only
    [(model, job)] = backend.calls
    assert (model, job.task, job.language) == (MULTILINGUAL_MODEL, "translate", None)


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "vtt"])
def test_translation_formats(client: TestClient, response_format: str) -> None:
    response = post(client, {"response_format": response_format}, path=TRANSLATIONS)
    assert response.status_code == 200, response.text
    expected = {"json": '{"text":"' + TEXT + '"}', "text": TEXT + "\n"}
    expected.update({"srt": EXPECTED_SRT, "vtt": EXPECTED_VTT})
    assert response.text == expected[response_format]


def test_whisper_1_alias(client: TestClient, backend: FakeBackend) -> None:
    response = post(client, {"model": "whisper-1"})
    assert response.status_code == 200, response.text
    assert backend.calls[0][0] == MULTILINGUAL_MODEL


# --- long audio -------------------------------------------------------------------------------


def test_long_audio_is_sent_as_windows_and_merged(client: TestClient, backend: FakeBackend) -> None:
    audio = wav_bytes(long_speech())  # 36.4 s: more than one 30 s window
    response = post(
        client,
        {"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]},
        audio=audio,
    )
    assert response.status_code == 200, response.text

    jobs = sorted((job for _, job in backend.calls), key=lambda job: job.offset)
    assert len(jobs) >= 2
    assert all(job.duration <= 30.0 for job in jobs)
    # The speech at both ends of the file is inside a window.
    assert jobs[0].offset < 1.0
    assert jobs[-1].offset + jobs[-1].duration > 35.0
    body = response.json()
    assert body["duration"] == pytest.approx(36.4, abs=0.1)
    # One result per window, in file order, renumbered, with the windows' real offsets.
    assert [s["id"] for s in body["segments"]] == list(range(2 * len(jobs)))
    assert [s["start"] for s in body["segments"][::2]] == [job.offset for job in jobs]
    assert len(body["words"]) == 4 * len(jobs)
    assert body["text"] == " ".join([TEXT] * len(jobs))


def long_speech_sent(
    registry: ModelRegistry, models_dir: Path, *, then: bytes | None = None, **setting: float | None
) -> FakeBackend:
    """The fake backend of an app with ``setting`` (None: the default) that was sent the
    36 s long speech fixture, and then ``then``."""
    settings = Settings(models_dir=models_dir, default_model=MULTILINGUAL_MODEL)
    settings = settings.model_copy(update={k: v for k, v in setting.items() if v is not None})
    backend = FakeBackend()
    with TestClient(create_app(settings, registry, BackendSlot(backend))) as client:
        assert post(client, audio=wav_bytes(long_speech())).status_code == 200
        if then is not None:
            assert post(client, audio=then).status_code == 200
    return backend


@pytest.mark.parametrize(("setting", "asked"), [(None, 15.0), (20.0, 20.0), (0.0, None)])
def test_long_audio_windows_ask_for_a_shorter_encoder_input(
    registry: ModelRegistry, models_dir: Path, setting: float | None, asked: float | None
) -> None:
    backend = long_speech_sent(registry, models_dir, long_form_encoder_seconds=setting, then=JFK)
    long, short = [job for _, job in backend.calls if job.long_form], backend.calls[-1][1]
    assert len(long) >= 2 and {job.encoder_seconds for job in long} == {asked}
    assert not short.long_form and short.encoder_seconds is None  # one window: 30 s


@pytest.mark.parametrize(
    ("model_says", "setting", "longest"),
    [(None, None, 20.0), (None, 30.0, 30.0), (30.0, None, 30.0), (30.0, 20.0, 20.0)],
)
def test_long_audio_is_cut_into_windows_of_the_models_long_form_length_unless_set(
    tmp_path: Path, model_says: float | None, setting: float | None, longest: float
) -> None:
    # jfk (11 s), 2 s, a LibriSpeech line (10.4 s), 2 s, jfk: the first two fit 30 s, not 20 s.
    manifest = manifest_data(MULTILINGUAL_MODEL, languages=["en"], language_detection=True)
    if model_says is not None:
        manifest["engine_config"]["long_form_window_seconds"] = model_says
    write_manifest(tmp_path, MULTILINGUAL_MODEL, manifest)
    registry = ModelRegistry(tmp_path)
    backend = long_speech_sent(registry, tmp_path, long_form_window_seconds=setting)
    durations = [job.duration for _, job in backend.calls]
    assert max(durations) <= longest
    assert max(durations) > 20.0 if longest > 20.0 else len(durations) == 3


@pytest.mark.parametrize(("language", "name"), [(None, "english"), ("fr", "french")])
def test_long_silence_is_not_sent_to_the_backend(
    client: TestClient, backend: FakeBackend, language: str | None, name: str
) -> None:
    silence = wav_bytes(np.zeros(40 * 16_000, dtype=np.int16))
    fields = {"response_format": "verbose_json"} | ({"language": language} if language else {})
    response = post(client, fields, audio=silence)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == ""
    assert body["segments"] == []
    assert body["duration"] == pytest.approx(40.0)
    assert body["language"] == name  # not "": nothing was decoded, so nothing was detected
    assert backend.calls == []


# --- invalid requests -----------------------------------------------------------------------


def test_missing_file(client: TestClient, backend: FakeBackend) -> None:
    error = assert_openai_error(post(client, audio=None), 400, "file")
    assert error["type"] == "invalid_request_error"
    assert "file" in error["message"]
    assert backend.calls == []


def test_missing_model(client: TestClient, backend: FakeBackend) -> None:
    response = client.post(TRANSCRIPTIONS, files={"file": ("a.ogg", FRENCH)})
    error = assert_openai_error(response, 400, "model")
    assert "model" in error["message"]
    assert backend.calls == []


@pytest.mark.parametrize("path", [TRANSCRIPTIONS, TRANSLATIONS])
def test_bad_response_format(client: TestClient, path: str) -> None:
    error = assert_openai_error(
        post(client, {"response_format": "xml"}, path=path), 400, "response_format"
    )
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("temperature", ["1.5", "-0.1", "warm"])
def test_bad_temperature(client: TestClient, backend: FakeBackend, temperature: str) -> None:
    assert_openai_error(post(client, {"temperature": temperature}), 400, "temperature")
    assert backend.calls == []


def test_bad_granularity_value(client: TestClient) -> None:
    response = post(
        client, {"response_format": "verbose_json", "timestamp_granularities[]": "sentence"}
    )
    assert_openai_error(response, 400, "timestamp_granularities")


def test_granularities_without_verbose_json(client: TestClient) -> None:
    response = post(client, {"timestamp_granularities[]": "word"})
    assert_openai_error(response, 400, "timestamp_granularities")


@pytest.mark.parametrize("response_format", ["srt", "vtt", "verbose_json"])
def test_stream_with_a_format_that_cannot_stream(
    client: TestClient, backend: FakeBackend, response_format: str
) -> None:
    response = post(client, {"stream": "true", "response_format": response_format})
    error = assert_openai_error(response, 400, "response_format")
    assert response_format in error["message"] and "stream" in error["message"]
    assert backend.calls == []


def test_translate_with_english_only_model(client: TestClient, backend: FakeBackend) -> None:
    response = post(client, {"model": ENGLISH_MODEL}, path=TRANSLATIONS)
    assert_openai_error(response, 400, "model")
    assert backend.calls == []


def test_language_not_supported_by_model(client: TestClient) -> None:
    assert_openai_error(post(client, {"model": ENGLISH_MODEL, "language": "fr"}), 400, "language")


def test_unknown_model(client: TestClient, backend: FakeBackend) -> None:
    error = assert_openai_error(post(client, {"model": "large-v9"}), 404, "model")
    assert error["code"] == "model_not_found"
    assert "large-v9" in error["message"]
    assert ENGLISH_MODEL in error["message"] and MULTILINGUAL_MODEL in error["message"]
    assert backend.calls == []


@pytest.mark.parametrize("name", ["text_renamed.wav", "empty.wav", "truncated_1k.flac"])
def test_undecodable_audio(client: TestClient, backend: FakeBackend, name: str) -> None:
    response = post(client, audio=(FIXTURES / "bad" / name).read_bytes())
    error = assert_openai_error(response, 400, "file")
    assert error["code"] == "invalid_audio"
    assert backend.calls == []


def test_audio_too_long(registry: ModelRegistry, models_dir: Path) -> None:
    settings = Settings(
        models_dir=models_dir, default_model=MULTILINGUAL_MODEL, max_audio_seconds=5
    )
    backend = FakeBackend()
    with TestClient(create_app(settings, registry, BackendSlot(backend))) as client:
        error = assert_openai_error(post(client, audio=JFK), 400, "file")
    assert error["code"] == "audio_too_long"
    assert backend.calls == []


# --- upload cap -------------------------------------------------------------------------------


@pytest.fixture
def small_cap_client(
    models_dir: Path, registry: ModelRegistry, backend: FakeBackend
) -> Iterator[TestClient]:
    # 0.05 MB (52 KB): fleurs-fr (17 KB) fits, jfk.flac (1.1 MB) does not.
    settings = Settings(
        models_dir=models_dir, default_model=MULTILINGUAL_MODEL, max_file_size_mb=0.05
    )
    with TestClient(create_app(settings, registry, BackendSlot(backend))) as client:
        yield client


def _multipart(fields: dict[str, str], audio: bytes, boundary: str) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    head = "".join(parts) + (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.flac"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return head.encode() + audio + f"\r\n--{boundary}--\r\n".encode()


def test_upload_under_the_cap_is_accepted(small_cap_client: TestClient) -> None:
    response = post(small_cap_client, audio=FRENCH)
    assert response.status_code == 200, response.text


def test_upload_over_the_cap_with_content_length(
    small_cap_client: TestClient, backend: FakeBackend
) -> None:
    response = post(small_cap_client, audio=JFK)
    error = assert_openai_error(response, 413, "file")
    assert error["code"] == "file_too_large"
    assert "0.05 MB" in error["message"]
    assert backend.calls == []


def test_file_over_the_cap_within_the_form_allowance(
    small_cap_client: TestClient, backend: FakeBackend
) -> None:
    # 1.7 s of 16 kHz WAV is ~54 KB: over the 52 KB file cap, though the whole request
    # is still within the cap plus the room left for the other form fields.
    audio = wav_bytes(np.zeros(27_200, dtype=np.int16))
    assert 0.05 * 1024 * 1024 < len(audio) < 0.06 * 1024 * 1024
    assert_openai_error(post(small_cap_client, audio=audio), 413, "file")
    assert backend.calls == []


def test_upload_over_the_cap_chunked(small_cap_client: TestClient, backend: FakeBackend) -> None:
    boundary = "theo-test-boundary"
    body = _multipart({"model": MULTILINGUAL_MODEL}, JFK, boundary)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    response = small_cap_client.post(
        TRANSCRIPTIONS,
        content=chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_openai_error(response, 413, "file")
    assert backend.calls == []


def test_chunked_upload_under_the_cap(small_cap_client: TestClient) -> None:
    boundary = "theo-test-boundary"
    body = _multipart({"model": MULTILINGUAL_MODEL}, FRENCH, boundary)
    response = small_cap_client.post(
        TRANSCRIPTIONS,
        content=iter([body[:5000], body[5000:]]),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"text": TEXT, "usage": FRENCH_USAGE}


# --- backend failures -------------------------------------------------------------------------


def test_backend_unavailable_is_503_with_retry_after(
    settings: Settings, registry: ModelRegistry
) -> None:
    backend = FakeBackend(failures=[ServiceUnavailableError("runner busy")])
    with TestClient(create_app(settings, registry, BackendSlot(backend))) as client:
        response = post(client)
    error = assert_openai_error(response, 503, None)
    assert error["type"] == "server_error"
    assert response.headers["retry-after"] == "7"


def test_no_backend_yet_is_503_with_retry_after(
    settings: Settings, registry: ModelRegistry
) -> None:
    with TestClient(create_app(settings, registry, BackendSlot(None))) as client:
        response = post(client)
    assert_openai_error(response, 503, None)
    assert response.headers["retry-after"] == "7"


def test_backend_crash_is_500_and_the_next_request_works(
    settings: Settings, registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "CUDA exploded at /srv/theo/secret_path.py line 42"
    backend = FakeBackend(failures=[RuntimeError(secret)])
    app = create_app(settings, registry, BackendSlot(backend))
    with (
        caplog.at_level(logging.INFO, logger="theo.request"),
        TestClient(app, raise_server_exceptions=False) as c,
    ):
        failed = post(c, {"response_format": "srt"})
        after = post(c, {"response_format": "srt"})
    error = assert_openai_error(failed, 500, None)
    assert error["type"] == "server_error"
    assert secret not in failed.text
    assert "RuntimeError" not in failed.text
    assert "x-request-id" in failed.headers
    assert after.status_code == 200, after.text
    assert after.text == EXPECTED_SRT
    request_lines = [r for r in caplog.records if r.getMessage() == "request"]
    assert [r.__dict__["status"] for r in request_lines] == [500, 200]


def test_result_error_is_500(settings: Settings, registry: ModelRegistry) -> None:
    backend = FakeBackend(failures=["engine said: out of memory at 0xdeadbeef"])
    with TestClient(create_app(settings, registry, BackendSlot(backend))) as client:
        response = post(client)
        after = post(client)
    error = assert_openai_error(response, 500, None)
    assert "0xdeadbeef" not in response.text
    assert error["type"] == "server_error"
    assert after.json() == {"text": TEXT, "usage": FRENCH_USAGE}


# --- health and models ------------------------------------------------------------------------


def test_health_ready(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert "retry-after" not in response.headers


def test_health_one_runner_not_ready(settings: Settings, registry: ModelRegistry) -> None:
    backend = FakeBackend(ready={ENGLISH_MODEL: True, MULTILINGUAL_MODEL: False})
    with TestClient(create_app(settings, registry, BackendSlot(backend))) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.json()["models"] == {ENGLISH_MODEL: True, MULTILINGUAL_MODEL: False}
    assert response.json()["status"] != "ok"


def test_health_without_backend_then_with(settings: Settings, registry: ModelRegistry) -> None:
    slot = BackendSlot(None)
    app = create_app(settings, registry, slot)
    with TestClient(app) as client:
        before = client.get("/health")
        slot.backend = FakeBackend(ready={MULTILINGUAL_MODEL: True})
        after = client.get("/health")
        transcribed = post(client)
    assert before.status_code == 503
    assert before.headers["retry-after"] == "7"
    assert after.status_code == 200
    assert transcribed.status_code == 200


def test_list_models(client: TestClient) -> None:
    response = client.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == sorted([ENGLISH_MODEL, MULTILINGUAL_MODEL])
    for card in body["data"]:
        assert card["object"] == "model"
        assert isinstance(card["created"], int)
        assert card["owned_by"]


def test_model_cards_say_what_each_model_can_do(client: TestClient) -> None:
    cards = {card["id"]: card for card in client.get("/v1/models").json()["data"]}
    english = cards[ENGLISH_MODEL]["capabilities"]
    multilingual = cards[MULTILINGUAL_MODEL]["capabilities"]
    assert english["translation"] is False and english["languages"] == ["en"]
    assert multilingual["translation"] is True and len(multilingual["languages"]) > 1
    assert set(english) == {"languages", "translation", "language_detection", "word_timestamps"}
    # Still a valid OpenAI model object: the SDK keeps the extra field.
    model = Model.model_validate(cards[ENGLISH_MODEL])
    assert model.id == ENGLISH_MODEL and model.model_extra == {"capabilities": english}


def test_get_model(client: TestClient) -> None:
    response = client.get(f"/v1/models/{ENGLISH_MODEL}")
    assert response.status_code == 200
    assert response.json()["id"] == ENGLISH_MODEL
    assert response.json()["object"] == "model"


def test_get_unknown_model(client: TestClient) -> None:
    error = assert_openai_error(client.get("/v1/models/large-v9"), 404, "model")
    assert MULTILINGUAL_MODEL in error["message"]


def test_unknown_route_is_openai_shaped(client: TestClient) -> None:
    assert_openai_error(client.get("/v1/nothing-here"), 404, None)


# --- request id and the request log -----------------------------------------------------------


def test_request_id_is_generated(client: TestClient) -> None:
    first = client.get("/v1/models").headers["x-request-id"]
    second = post(client).headers["x-request-id"]
    assert first and second and first != second


def test_request_id_is_echoed(client: TestClient) -> None:
    assert post(client, headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    error_response = post(client, {"model": "nope"}, headers={"X-Request-ID": "err-1"})
    assert error_response.status_code == 404
    assert error_response.headers["x-request-id"] == "err-1"


def test_one_log_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="theo.request"):
        post(
            client, {"model": "whisper-1", "response_format": "srt"}, headers={"X-Request-ID": "r1"}
        )
        post(client, {"model": "nope"}, headers={"X-Request-ID": "r2"})
        client.get("/health")

    records = [r for r in caplog.records if r.name == "theo.request"]
    assert len(records) == 2
    ok, missing = records
    assert ok.__dict__["request_id"] == "r1"
    assert ok.__dict__["model"] == MULTILINGUAL_MODEL
    assert ok.__dict__["status"] == 200
    assert ok.__dict__["task"] == "transcribe"
    assert ok.__dict__["format"] == "srt"
    assert ok.__dict__["audio_seconds"] == pytest.approx(10.2, abs=0.1)
    assert missing.__dict__["request_id"] == "r2"
    assert missing.__dict__["status"] == 404


def test_log_line_never_holds_the_transcript_or_audio(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="theo"):
        post(client, {"prompt": "top secret prompt"})
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "General Kenobi" not in logged
    assert "top secret prompt" not in logged


# --- the real openai SDK, in-process ----------------------------------------------------------


@pytest.fixture
def sdk(client: TestClient) -> OpenAI:
    """The official SDK, sending its requests through the in-process test client."""
    return OpenAI(
        base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0
    )


def test_sdk_verbose_json_with_words(sdk: OpenAI, backend: FakeBackend) -> None:
    result = sdk.audio.transcriptions.create(
        model="whisper-1",
        file=("jfk.flac", JFK),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert result.language == "english"
    assert result.duration == pytest.approx(11.0, abs=0.05)
    assert result.words is not None and [w.word for w in result.words][-1] == " Kenobi."
    assert result.segments is not None and result.segments[1].start == 2.5
    assert backend.calls[0][0] == MULTILINGUAL_MODEL


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # OpenAI deprecates the route
def test_sdk_srt_and_translation(sdk: OpenAI) -> None:
    srt = sdk.audio.transcriptions.create(
        model=ENGLISH_MODEL, file=("a.ogg", FRENCH), response_format="srt"
    )
    assert srt == EXPECTED_SRT
    translation = sdk.audio.translations.create(model=MULTILINGUAL_MODEL, file=("a.ogg", FRENCH))
    assert translation.text == TEXT


def test_sdk_errors(sdk: OpenAI) -> None:
    with pytest.raises(NotFoundError) as not_found:
        sdk.models.retrieve("large-v9")
    assert "Installed models" in not_found.value.message
    with pytest.raises(BadRequestError) as bad_request:
        sdk.audio.transcriptions.create(
            model=MULTILINGUAL_MODEL, file=("a.txt", b"not audio at all"), response_format="json"
        )
    assert bad_request.value.body is not None
    assert [m.id for m in sdk.models.list()] == sorted([ENGLISH_MODEL, MULTILINGUAL_MODEL])
