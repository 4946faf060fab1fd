"""theo/http/validation.py: cross-field validation of a transcription/translation request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest import (
    ENGLISH_MODEL,
    MULTILINGUAL_MODEL,
    manifest_data,
    write_manifest,
)
from theo.chunking import DEFAULT_CHUNKING, ChunkingStrategy
from theo.errors import InvalidRequestError, ModelNotFoundError, TheoError
from theo.http.validation import (
    TranscriptionRequest,
    build_request,
    parse_chunking_strategy,
    resolve_model_name,
)
from theo.registry import ModelRegistry
from theo.settings import Settings


def build(registry: ModelRegistry, settings: Settings, **fields: Any) -> TranscriptionRequest:
    values: dict[str, Any] = {
        "task": "transcribe",
        "model": MULTILINGUAL_MODEL,
        "language": None,
        "prompt": None,
        "response_format": "json",
        "temperature": 0.0,
        "granularities": [],
        "stream": False,
    }
    values.update(fields)
    return build_request(registry=registry, settings=settings, **values)


def rejected(registry: ModelRegistry, settings: Settings, **fields: Any) -> TheoError:
    with pytest.raises(TheoError) as excinfo:
        build(registry, settings, **fields)
    return excinfo.value


def test_valid_request(registry: ModelRegistry, settings: Settings) -> None:
    request = build(
        registry,
        settings,
        language=" FR ",
        prompt="Kowloon, Hong Kong",
        response_format="srt",
        temperature=0.4,
    )
    assert request.model == MULTILINGUAL_MODEL
    assert request.manifest.name == MULTILINGUAL_MODEL
    assert request.language == "fr"
    assert request.prompt == "Kowloon, Hong Kong"
    assert request.response_format == "srt"
    assert request.temperature == 0.4
    assert request.granularities == frozenset({"segment"})
    assert request.word_timestamps is False


def test_empty_language_and_prompt_mean_none(registry: ModelRegistry, settings: Settings) -> None:
    request = build(registry, settings, language="  ", prompt="")
    assert request.language is None
    assert request.prompt is None


@pytest.mark.parametrize("response_format", ["json", "text"])
def test_stream_with_text_formats(
    registry: ModelRegistry, settings: Settings, response_format: str
) -> None:
    request = build(registry, settings, stream=True, response_format=response_format)
    assert request.stream is True
    assert build(registry, settings, stream=True, task="translate").stream is True


@pytest.mark.parametrize("response_format", ["verbose_json", "srt", "vtt"])
def test_stream_with_timestamped_formats_is_rejected(
    registry: ModelRegistry, settings: Settings, response_format: str
) -> None:
    error = rejected(registry, settings, stream=True, response_format=response_format)
    assert isinstance(error, InvalidRequestError)
    assert error.status_code == 400
    assert error.param == "response_format"
    assert f"'{response_format}' cannot be streamed" in error.message


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "diarized_json"}, "response_format"),
        ({"known_speaker_names": ["agent"]}, "known_speaker_names"),
        ({"known_speaker_references": ["data:audio/wav;base64,AAAA"]}, "known_speaker_references"),
    ],
)
def test_diarization_is_not_supported(
    registry: ModelRegistry, settings: Settings, fields: dict[str, Any], param: str
) -> None:
    error = rejected(registry, settings, **fields)
    assert error.status_code == 400
    assert error.param == param
    assert "diarization is not supported" in error.message
    assert MULTILINGUAL_MODEL in error.message


def test_include_logprobs_is_not_supported(registry: ModelRegistry, settings: Settings) -> None:
    error = rejected(registry, settings, include=["logprobs"])
    assert (error.status_code, error.param) == (400, "include")
    assert "logprobs" in error.message
    other = rejected(registry, settings, include=["words"])
    assert (other.status_code, other.param) == (400, "include")
    assert "'words'" in other.message


def test_chunking_reaches_the_request(registry: ModelRegistry, settings: Settings) -> None:
    chunking = ChunkingStrategy(threshold=0.7, prefix_padding_ms=100, silence_duration_ms=500)
    assert build(registry, settings, chunking=chunking).chunking == chunking
    assert build(registry, settings).chunking is None


# --- chunking_strategy ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["auto", " auto ", '"auto"'])
def test_chunking_auto(value: str) -> None:
    assert parse_chunking_strategy(value) == DEFAULT_CHUNKING


def test_chunking_absent() -> None:
    assert parse_chunking_strategy(None) is None
    assert parse_chunking_strategy(None, {}) is None


def test_chunking_as_the_sdks_send_it() -> None:
    # openai-python and openai-node: one form field per key, chunking_strategy[key].
    fields = {
        "type": "server_vad",
        "threshold": "0.6",
        "prefix_padding_ms": "100",
        "silence_duration_ms": "700",
    }
    assert parse_chunking_strategy(None, fields) == ChunkingStrategy(0.6, 100, 700)


def test_chunking_as_json_with_openai_defaults() -> None:
    assert parse_chunking_strategy('{"type": "server_vad"}') == ChunkingStrategy(0.5, 300, 200)
    assert parse_chunking_strategy('{"type":"server_vad","threshold":0.3}') == ChunkingStrategy(
        0.3, 300, 200
    )


@pytest.mark.parametrize(
    ("value", "fields", "named"),
    [
        ("manual", None, "chunking_strategy"),
        ("[1, 2]", None, "chunking_strategy"),
        ('{"threshold": 0.5}', None, "chunking_strategy[type]"),
        ('{"type": "semantic_vad"}', None, "chunking_strategy[type]"),
        ('{"type": "server_vad", "threshold": 1.5}', None, "chunking_strategy[threshold]"),
        (None, {"type": "server_vad", "threshold": "high"}, "chunking_strategy[threshold]"),
        (None, {"type": "server_vad", "silence_duration_ms": "-5"}, "silence_duration_ms"),
        (None, {"type": "server_vad", "prefix_padding_ms": "0.5"}, "prefix_padding_ms"),
        (None, {"type": "server_vad", "loudness": "1"}, "chunking_strategy[loudness]"),
        ("auto", {"type": "server_vad"}, "chunking_strategy"),
    ],
)
def test_chunking_invalid(value: str | None, fields: dict[str, str] | None, named: str) -> None:
    with pytest.raises(InvalidRequestError) as excinfo:
        parse_chunking_strategy(value, fields)
    assert excinfo.value.status_code == 400
    assert excinfo.value.param == "chunking_strategy"
    assert named in excinfo.value.message


def test_translate_on_english_only_model(registry: ModelRegistry, settings: Settings) -> None:
    error = rejected(registry, settings, task="translate", model=ENGLISH_MODEL)
    assert error.status_code == 400
    assert error.param == "model"
    assert ENGLISH_MODEL in error.message


def test_translate_on_multilingual_model(registry: ModelRegistry, settings: Settings) -> None:
    request = build(registry, settings, task="translate", response_format="verbose_json")
    assert request.task == "translate"
    assert request.model == MULTILINGUAL_MODEL


def test_unsupported_language_code(registry: ModelRegistry, settings: Settings) -> None:
    error = rejected(registry, settings, language="klingon")
    assert error.status_code == 400
    assert error.param == "language"
    assert "klingon" in error.message


def test_language_not_in_model_list(registry: ModelRegistry, settings: Settings) -> None:
    # A real Whisper language, but the English-only model does not list it.
    error = rejected(registry, settings, model=ENGLISH_MODEL, language="fr")
    assert error.status_code == 400
    assert error.param == "language"
    assert ENGLISH_MODEL in error.message
    # ... while the same code is fine on the multilingual model.
    assert build(registry, settings, language="fr").language == "fr"


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "vtt"])
def test_granularities_need_verbose_json(
    registry: ModelRegistry, settings: Settings, response_format: str
) -> None:
    error = rejected(registry, settings, response_format=response_format, granularities=["segment"])
    assert error.status_code == 400
    assert error.param == "timestamp_granularities"


@pytest.mark.parametrize(
    ("granularities", "expected", "words"),
    [
        (["word"], {"word"}, True),
        (["segment"], {"segment"}, False),
        (["word", "segment"], {"word", "segment"}, True),
        (["word", "word"], {"word"}, True),
    ],
)
def test_granularities_with_verbose_json(
    registry: ModelRegistry,
    settings: Settings,
    granularities: list[str],
    expected: set[str],
    words: bool,
) -> None:
    request = build(registry, settings, response_format="verbose_json", granularities=granularities)
    assert request.granularities == expected
    assert request.word_timestamps is words


def test_word_granularity_needs_model_support(tmp_path: Path) -> None:
    write_manifest(tmp_path, "no-words", manifest_data("no-words", word_timestamps=False))
    registry = ModelRegistry(tmp_path)
    settings = Settings(models_dir=tmp_path, default_model="no-words")
    error = rejected(
        registry, settings, model="no-words", response_format="verbose_json", granularities=["word"]
    )
    assert error.status_code == 400
    assert error.param == "timestamp_granularities"


def test_whisper_1_is_the_default_model(registry: ModelRegistry, settings: Settings) -> None:
    assert build(registry, settings, model="whisper-1").model == MULTILINGUAL_MODEL
    english_default = settings.model_copy(update={"default_model": ENGLISH_MODEL})
    assert build(registry, english_default, model="whisper-1").model == ENGLISH_MODEL


def test_configured_aliases(registry: ModelRegistry, models_dir: Path) -> None:
    settings = Settings(
        models_dir=models_dir, default_model=ENGLISH_MODEL, model_aliases=["fast", "default"]
    )
    assert resolve_model_name("fast", settings) == ENGLISH_MODEL
    assert resolve_model_name("whisper-1", settings) == "whisper-1"
    assert build(registry, settings, model="default").model == ENGLISH_MODEL
    assert isinstance(rejected(registry, settings, model="whisper-1"), ModelNotFoundError)


def test_unknown_model_is_404_listing_installed(
    registry: ModelRegistry, settings: Settings
) -> None:
    error = rejected(registry, settings, model="gpt-4o-transcribe")
    assert isinstance(error, ModelNotFoundError)
    assert error.status_code == 404
    assert error.param == "model"
    assert "gpt-4o-transcribe" in error.message
    assert ENGLISH_MODEL in error.message
    assert MULTILINGUAL_MODEL in error.message


def test_model_name_is_stripped(registry: ModelRegistry, settings: Settings) -> None:
    assert build(registry, settings, model=f" {ENGLISH_MODEL}\n").model == ENGLISH_MODEL
