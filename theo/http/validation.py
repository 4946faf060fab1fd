"""Turn the multipart form of a transcription/translation request into a validated request."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from theo.chunking import DEFAULT_CHUNKING, ChunkingStrategy
from theo.errors import InvalidRequestError
from theo.formats import RESPONSE_FORMATS, STREAMABLE_FORMATS, ResponseFormat
from theo.languages import LANGUAGE_NAMES
from theo.manifest import ModelManifest
from theo.registry import ModelRegistry
from theo.settings import Settings
from theo.transcription import Task

Granularity = Literal["word", "segment"]
# What a request may name: the formats Theo renders, and OpenAI's diarized one (a clear 400).
RequestedFormat = Literal["json", "verbose_json", "text", "srt", "vtt", "diarized_json"]

# Control characters other than tab and newlines. A prompt that is not UTF-8 reaches us
# decoded as Latin-1 (Starlette's fallback), which turns its stray bytes into these; fed to
# Whisper they come back as garbage in the transcript.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class TranscriptionRequest:
    """A request that passed validation: the model exists and supports what was asked."""

    task: Task
    model: str
    manifest: ModelManifest
    language: str | None
    prompt: str | None
    response_format: ResponseFormat
    temperature: float
    granularities: frozenset[Granularity]
    stream: bool = False
    # OpenAI's chunking_strategy: VAD cuts this request's audio at any length (None: only
    # audio over 30 s is cut, with the default settings).
    chunking: ChunkingStrategy | None = None

    @property
    def word_timestamps(self) -> bool:
        return "word" in self.granularities


def resolve_model_name(name: str, settings: Settings) -> str:
    """Map aliases such as ``whisper-1`` to the configured default model."""
    return settings.default_model if name in settings.model_aliases else name


class _ServerVad(BaseModel):
    """OpenAI's ``server_vad`` chunking object; missing fields take OpenAI's defaults."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["server_vad"]
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    prefix_padding_ms: int = Field(default=300, ge=0, le=30_000)
    silence_duration_ms: int = Field(default=200, ge=0, le=30_000)


def parse_chunking_strategy(
    value: str | None, fields: Mapping[str, Any] | None = None
) -> ChunkingStrategy | None:
    """``chunking_strategy`` as the SDKs and curl users send it, or None when it is absent.

    ``value`` is the plain field: ``auto`` or a JSON object (what curl users type).
    ``fields`` are the nested ones the SDKs send for an object, keyed by what is inside
    the brackets: ``chunking_strategy[type]=server_vad`` arrives as ``{"type": ...}``.
    """
    fields = dict(fields or {})
    if value is None and not fields:
        return None
    if value is not None and fields:
        raise InvalidRequestError(
            "Send 'chunking_strategy' either as one field or as 'chunking_strategy[...]' "
            "fields, not both.",
            param="chunking_strategy",
        )
    if value is not None:
        text = value.strip()
        if text in ("auto", '"auto"'):
            return DEFAULT_CHUNKING
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise InvalidRequestError(
                "Invalid value for 'chunking_strategy': use \"auto\" or an object such as "
                '{"type": "server_vad", "threshold": 0.5}.',
                param="chunking_strategy",
            )
        fields = parsed
    try:
        vad = _ServerVad.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "type"
        raise InvalidRequestError(
            f"Invalid value for 'chunking_strategy[{where}]': {first['msg']}.",
            param="chunking_strategy",
        ) from None
    return ChunkingStrategy(
        threshold=vad.threshold,
        prefix_padding_ms=vad.prefix_padding_ms,
        silence_duration_ms=vad.silence_duration_ms,
    )


def _renderable(response_format: str) -> TypeGuard[ResponseFormat]:
    return response_format in RESPONSE_FORMATS


def _check_unsupported_fields(
    name: str,
    response_format: RequestedFormat,
    include: Sequence[str],
    known_speaker_names: Sequence[str],
    known_speaker_references: Sequence[str],
) -> None:
    """OpenAI fields for models Theo does not have: diarization, token log-probabilities."""
    diarization = [
        ("response_format", response_format == "diarized_json"),
        ("known_speaker_names", bool(known_speaker_names)),
        ("known_speaker_references", bool(known_speaker_references)),
    ]
    for param, asked in diarization:
        if asked:
            raise InvalidRequestError(
                f"Speaker diarization is not supported by the model '{name}' ('{param}'); "
                "Theo's Whisper models transcribe without speaker labels.",
                param=param,
            )
    for value in include:
        if value != "logprobs":
            raise InvalidRequestError(
                f"Invalid value for 'include': '{value}'; the only value is 'logprobs'.",
                param="include",
            )
        raise InvalidRequestError(
            f"include[]=logprobs is not supported by the model '{name}': as for whisper-1, "
            "token log-probabilities are not returned; verbose_json has each segment's "
            "avg_logprob.",
            param="include",
        )


def build_request(
    *,
    task: Task,
    model: str,
    language: str | None,
    prompt: str | None,
    response_format: RequestedFormat,
    temperature: float,
    granularities: list[Granularity],
    stream: bool,
    registry: ModelRegistry,
    settings: Settings,
    chunking: ChunkingStrategy | None = None,
    include: Sequence[str] = (),
    known_speaker_names: Sequence[str] = (),
    known_speaker_references: Sequence[str] = (),
) -> TranscriptionRequest:
    """Check the fields against each other and the model; raise ``TheoError`` if invalid."""
    name = resolve_model_name(model.strip(), settings)
    manifest = registry.get_manifest(name)  # ModelNotFoundError (404) lists installed models
    capabilities = manifest.capabilities

    if task == "translate" and not capabilities.translation:
        raise InvalidRequestError(
            f"The model '{name}' cannot translate; use a multilingual model.", param="model"
        )
    _check_unsupported_fields(
        name, response_format, include, known_speaker_names, known_speaker_references
    )
    if not _renderable(response_format):  # only diarized_json, refused above
        raise InvalidRequestError(
            f"Invalid value for 'response_format': '{response_format}'.", param="response_format"
        )
    if stream and response_format not in STREAMABLE_FORMATS:
        raise InvalidRequestError(
            f"response_format '{response_format}' cannot be streamed: a stream carries the "
            "text only. Use 'json' or 'text' with stream=true, or omit 'stream'.",
            param="response_format",
        )
    if prompt and _CONTROL_CHARACTERS.search(prompt):
        raise InvalidRequestError(
            "The prompt contains control characters; send it as UTF-8 text.", param="prompt"
        )
    language = (language or "").strip().lower() or None
    if language is not None:
        if language not in LANGUAGE_NAMES:
            raise InvalidRequestError(
                f"Unsupported language '{language}': use an ISO-639-1 code such as 'en'.",
                param="language",
            )
        if language not in capabilities.languages:
            raise InvalidRequestError(
                f"The model '{name}' does not support language '{language}'.",
                param="language",
            )
    if granularities and response_format != "verbose_json":
        raise InvalidRequestError(
            "timestamp_granularities requires response_format 'verbose_json'.",
            param="timestamp_granularities",
        )
    if "word" in granularities and not capabilities.word_timestamps:
        raise InvalidRequestError(
            f"The model '{name}' does not provide word timestamps.",
            param="timestamp_granularities",
        )
    return TranscriptionRequest(
        task=task,
        model=name,
        manifest=manifest,
        language=language,
        prompt=prompt or None,
        response_format=response_format,
        temperature=temperature,
        granularities=frozenset(granularities) or frozenset({"segment"}),
        stream=stream,
        chunking=chunking,
    )
