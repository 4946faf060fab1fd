"""The OpenAI audio API end to end: a real `bentoml serve`, real models, the real openai SDK."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import FIXTURES, word_errors
from tests.integration.conftest import BASE, TINY, RunningServer

JFK = FIXTURES / "jfk.flac"


def transcribe(client: OpenAI, **kwargs: Any) -> Any:
    with JFK.open("rb") as audio:
        return client.audio.transcriptions.create(file=audio, **kwargs)


def test_curl_style_json_request_gives_the_jfk_transcript(
    server: RunningServer, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    with JFK.open("rb") as audio:
        response = httpx.post(
            f"{server.base_url}/v1/audio/transcriptions",
            files={"file": ("jfk.flac", audio)},
            data={"model": TINY},
            timeout=60,
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["text", "usage"]
    assert body["usage"] == {"type": "duration", "seconds": 11}  # 176,000 samples: 11.0 s
    assert word_errors(fixture_manifest["jfk.flac"]["text"], body["text"]) == 0


@pytest.mark.parametrize("model", [TINY, BASE])
def test_json_format_with_sdk(
    client: OpenAI, model: str, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    result = transcribe(client, model=model, response_format="json")
    assert word_errors(fixture_manifest["jfk.flac"]["text"], result.text) == 0


def test_verbose_json_format(client: OpenAI) -> None:
    result = transcribe(client, model=TINY, response_format="verbose_json")
    assert result.language == "english"
    assert result.duration == pytest.approx(11.0, abs=0.1)
    assert result.segments and result.segments[0].start == 0.0
    assert result.segments[-1].end <= 11.1
    assert result.words is None
    assert "ask not what your country" in result.text.lower()
    segment = result.segments[0]
    assert segment.tokens and segment.avg_logprob < 0 and 0 <= segment.no_speech_prob <= 1


def test_text_format_is_plain_text(client: OpenAI) -> None:
    result = transcribe(client, model=TINY, response_format="text")
    assert isinstance(result, str)
    assert result.strip().lower().startswith("and so")
    assert not result.strip().startswith("{")


def test_srt_format(client: OpenAI) -> None:
    result = transcribe(client, model=TINY, response_format="srt")
    blocks = result.strip().split("\n\n")
    assert len(blocks) >= 1
    for number, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert lines[0] == str(number)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
        assert lines[2].strip()


def test_vtt_format(client: OpenAI) -> None:
    result = transcribe(client, model=TINY, response_format="vtt")
    assert result.startswith("WEBVTT\n\n")
    cues = re.findall(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})", result)
    assert cues and cues[0][0] == "00:00:00.000"


@pytest.mark.parametrize(
    ("granularities", "want_words", "want_segments"),
    [(["word"], True, False), (["segment"], False, True), (["word", "segment"], True, True)],
)
def test_timestamp_granularities(
    client: OpenAI, granularities: list[str], want_words: bool, want_segments: bool
) -> None:
    result = transcribe(
        client,
        model=TINY,
        response_format="verbose_json",
        timestamp_granularities=granularities,
    )
    assert bool(result.words) is want_words
    assert bool(result.segments) is want_segments
    if want_words:
        assert result.words is not None
        words = [w.word.strip(" ,.").lower() for w in result.words]
        assert words[:4] == ["and", "so", "my", "fellow"]
        starts = [w.start for w in result.words]
        assert starts == sorted(starts) and result.words[-1].end <= 11.1


@pytest.mark.parametrize("language", ["fr", "de", "es", "pt"])
def test_translation_returns_english(
    client: OpenAI, language: str, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    path = FIXTURES / f"fleurs-{language}-000.ogg"
    with path.open("rb") as audio:
        result = client.audio.translations.create(
            file=audio, model=BASE, response_format="verbose_json"
        )
    assert result.language == "english"
    # English output: mostly ASCII words, and not the source-language transcript.
    words = result.text.split()
    assert len(words) >= 5
    assert sum(w.isascii() for w in words) / len(words) > 0.9
    source = fixture_manifest[path.name]["text"]
    assert word_errors(source, result.text) > len(source.split()) // 2


def test_transcription_keeps_the_spoken_language(client: OpenAI) -> None:
    with (FIXTURES / "fleurs-fr-000.ogg").open("rb") as audio:
        result = client.audio.transcriptions.create(
            file=audio, model=BASE, response_format="verbose_json"
        )
    assert result.language == "french"
    assert "accident" in result.text.lower()


def test_librispeech_transcript(
    client: OpenAI, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    name = "1089-134686-0000.flac"
    with (FIXTURES / name).open("rb") as audio:
        result = client.audio.transcriptions.create(file=audio, model=BASE, language="en")
    reference = fixture_manifest[name]["text"]
    assert word_errors(reference, result.text) <= 3


def test_whisper_1_alias_uses_the_default_model(client: OpenAI) -> None:
    result = transcribe(client, model="whisper-1", response_format="verbose_json")
    assert "ask not what your country" in result.text.lower()


def test_models_list(client: OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert TINY in ids and BASE in ids
    assert client.models.retrieve(TINY).id == TINY


def test_unknown_model_is_404_listing_installed_models(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        transcribe(client, model="no-such-model")
    error = info.value.body
    assert isinstance(error, dict)
    assert error["param"] == "model" and error["code"] == "model_not_found"
    assert TINY in error["message"] and BASE in error["message"]


def test_translation_on_english_only_model_is_400(client: OpenAI) -> None:
    with (
        (FIXTURES / "fleurs-fr-000.ogg").open("rb") as audio,
        pytest.raises(openai.BadRequestError) as info,
    ):
        client.audio.translations.create(file=audio, model=TINY)
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "model"


def test_undecodable_audio_is_400(client: OpenAI) -> None:
    with (
        (FIXTURES / "bad" / "text_renamed.wav").open("rb") as audio,
        pytest.raises(openai.BadRequestError) as info,
    ):
        client.audio.transcriptions.create(file=audio, model=TINY)
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == "file" and "decoded" in info.value.body["message"]


def test_bad_field_is_400_naming_it(server: RunningServer) -> None:
    with JFK.open("rb") as audio:
        response = httpx.post(
            f"{server.base_url}/v1/audio/transcriptions",
            files={"file": ("jfk.flac", audio)},
            data={"model": TINY, "response_format": "xml"},
            timeout=60,
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format"


def test_upload_over_the_cap_is_413(server: RunningServer) -> None:
    payload = b"\0" * (26 * 1024 * 1024)
    response = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": ("big.wav", payload)},
        data={"model": TINY},
        timeout=60,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"


def test_health_and_bentoml_probes(server: RunningServer) -> None:
    health = httpx.get(f"{server.base_url}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert httpx.get(f"{server.base_url}/livez", timeout=10).status_code == 200
    assert httpx.get(f"{server.base_url}/readyz", timeout=10).status_code == 200


def _batch_count_above_one(server: RunningServer, runner: str) -> float:
    """How many runner batches held more than one request (BentoML's histogram)."""
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    total = le_one = 0.0
    for line in metrics.splitlines():
        if not line.startswith("bentoml_service_adaptive_batch_size") or runner not in line:
            continue
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith("bentoml_service_adaptive_batch_size_count"):
            total += value
        elif 'le="1.0"' in line:
            le_one += value
    return total - le_one


def test_concurrent_requests_are_batched(
    server: RunningServer, client: OpenAI, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    runner = "runner_faster_whisper_tiny_en"
    before = _batch_count_above_one(server, runner)
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda _: transcribe(client, model=TINY).text, range(8)))
    reference = fixture_manifest["jfk.flac"]["text"]
    assert all(word_errors(reference, text) == 0 for text in texts)
    assert _batch_count_above_one(server, runner) > before
