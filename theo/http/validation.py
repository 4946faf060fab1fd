"""Turn the multipart form of a transcription/translation request into a validated request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from theo.errors import InvalidRequestError
from theo.formats import ResponseFormat
from theo.languages import LANGUAGE_NAMES
from theo.manifest import ModelManifest
from theo.registry import ModelRegistry
from theo.settings import Settings
from theo.transcription import Task

Granularity = Literal["word", "segment"]

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

    @property
    def word_timestamps(self) -> bool:
        return "word" in self.granularities


def resolve_model_name(name: str, settings: Settings) -> str:
    """Map aliases such as ``whisper-1`` to the configured default model."""
    return settings.default_model if name in settings.model_aliases else name


def build_request(
    *,
    task: Task,
    model: str,
    language: str | None,
    prompt: str | None,
    response_format: ResponseFormat,
    temperature: float,
    granularities: list[Granularity],
    stream: bool,
    registry: ModelRegistry,
    settings: Settings,
) -> TranscriptionRequest:
    """Check the fields against each other and the model; raise ``TheoError`` if invalid."""
    if stream:
        raise InvalidRequestError(
            "Streaming is not supported yet; omit 'stream' or set it to false.", param="stream"
        )
    name = resolve_model_name(model.strip(), settings)
    manifest = registry.get_manifest(name)  # ModelNotFoundError (404) lists installed models
    capabilities = manifest.capabilities

    if task == "translate" and not capabilities.translation:
        raise InvalidRequestError(
            f"The model '{name}' cannot translate; use a multilingual model.", param="model"
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
    )
