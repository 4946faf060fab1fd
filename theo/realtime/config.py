"""A transcription session's configuration: its two wire shapes (GA and beta) and partial updates.

The GA shape nests everything under ``session.audio.input`` (``session.update`` with
``session.type: "transcription"``); the beta shape, sent by clients with the
``OpenAI-Beta: realtime=v1`` header, is flat (``transcription_session.update``). Both
parse into one :class:`ConfigChange`: the fields an update names, and only those, change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from theo.errors import InvalidRequestError
from theo.languages import LANGUAGE_NAMES
from theo.realtime.audio import AudioFormat
from theo.registry import ModelRegistry

Dialect = Literal["ga", "beta"]

# The GA shape's format types, and the beta names Theo uses internally.
_GA_FORMATS: dict[str, AudioFormat] = {
    "audio/pcm": "pcm16",
    "audio/pcmu": "g711_ulaw",
    "audio/pcma": "g711_alaw",
}
_GA_FORMAT_NAMES = {name: ga for ga, name in _GA_FORMATS.items()}
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class ServerVad:
    """Server-side turn detection: where speech starts and, after a silence, stops."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500


@dataclass(frozen=True)
class Transcription:
    """Which model transcribes, and the language and prompt it is given."""

    model: str
    language: str | None = None
    prompt: str | None = None


@dataclass(frozen=True)
class SessionConfig:
    """The effective configuration of one transcription session."""

    transcription: Transcription
    format: AudioFormat = "pcm16"
    turn_detection: ServerVad | None = field(default_factory=ServerVad)
    # Accepted and reported back; Theo does not filter noise (Silero VAD ignores most of it).
    noise_reduction: dict[str, Any] | None = None
    include: list[str] | None = None

    def render(self, dialect: Dialect, session_id: str) -> dict[str, Any]:
        """The session object of ``session.created``/``.updated`` in the client's shape."""
        transcription = {
            "model": self.transcription.model,
            "language": self.transcription.language,
            "prompt": self.transcription.prompt or "",
        }
        turn_detection = None
        if self.turn_detection is not None:
            turn_detection = {"type": "server_vad", **vars(self.turn_detection)}
        if dialect == "beta":
            return {
                "id": session_id,
                "object": "realtime.transcription_session",
                "input_audio_format": self.format,
                "input_audio_transcription": transcription,
                "turn_detection": turn_detection,
                "input_audio_noise_reduction": self.noise_reduction,
                "include": self.include,
                "modalities": ["text"],
                "client_secret": None,
            }
        audio_format: dict[str, Any] = {"type": _GA_FORMAT_NAMES[self.format]}
        if self.format == "pcm16":
            audio_format["rate"] = 24_000
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": session_id,
            "audio": {
                "input": {
                    "format": audio_format,
                    "transcription": transcription,
                    "noise_reduction": self.noise_reduction,
                    "turn_detection": turn_detection,
                }
            },
            "include": self.include,
        }


# -- Updates as sent ----------------------------------------------------------------------


class _Part(BaseModel):
    # Fields of OpenAI's that Theo has no use for (create_response, eagerness...) are ignored.
    model_config = ConfigDict(extra="ignore")


class _TranscriptionPart(_Part):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None


class _TurnDetectionPart(_Part):
    type: str | None = None
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=10_000)
    silence_duration_ms: int | None = Field(default=None, ge=0, le=30_000)


class _FormatPart(_Part):
    type: Literal["audio/pcm", "audio/pcmu", "audio/pcma"]
    rate: Literal[24_000] | None = None


class _NoiseReductionPart(_Part):
    type: Literal["near_field", "far_field"] | None = None
    strength: float | None = None


class _InputPart(_Part):
    format: _FormatPart | None = None
    transcription: _TranscriptionPart | None = None
    turn_detection: _TurnDetectionPart | None = None
    noise_reduction: _NoiseReductionPart | None = None


class _AudioPart(_Part):
    input: _InputPart | None = None


class GaSessionPart(_Part):
    """``session`` of a GA ``session.update``."""

    type: str | None = None
    audio: _AudioPart | None = None
    include: list[str] | None = None


class BetaSessionPart(_Part):
    """``session`` of a beta ``transcription_session.update``."""

    input_audio_format: AudioFormat | None = None
    input_audio_transcription: _TranscriptionPart | None = None
    turn_detection: _TurnDetectionPart | None = None
    input_audio_noise_reduction: _NoiseReductionPart | None = None
    include: list[str] | None = None


_UNSET: Any = object()


@dataclass
class ConfigChange:
    """The fields one update names (anything left ``_UNSET`` stays as it is)."""

    format: AudioFormat = _UNSET
    transcription: _TranscriptionPart | None = _UNSET
    turn_detection: _TurnDetectionPart | None = _UNSET
    noise_reduction: _NoiseReductionPart | None = _UNSET
    include: list[str] | None = _UNSET
    # Where each part sits in the client's shape, for the ``param`` of an error.
    paths: dict[str, str] = field(default_factory=dict)


def _named(part: BaseModel, name: str) -> bool:
    return name in part.model_fields_set


def _invalid(exc: ValidationError, prefix: str) -> InvalidRequestError:
    first = exc.errors()[0]
    where = ".".join([prefix, *(str(p) for p in first["loc"])])
    return InvalidRequestError(f"Invalid value for '{where}': {first['msg']}.", param=where)


def parse_ga_update(session: object) -> ConfigChange:
    """The change a GA ``session.update`` asks for; raises InvalidRequestError."""
    try:
        part = GaSessionPart.model_validate(session)
    except ValidationError as exc:
        raise _invalid(exc, "session") from None
    if part.type not in (None, "transcription"):
        raise InvalidRequestError(
            "Only transcription sessions are supported: set session.type to 'transcription'.",
            param="session.type",
            code="unsupported_session_type",
        )
    prefix = "session.audio.input"
    change = ConfigChange(
        paths={
            "transcription": f"{prefix}.transcription",
            "turn_detection": f"{prefix}.turn_detection",
            "format": f"{prefix}.format",
        }
    )
    if _named(part, "include"):
        change.include = part.include
    audio_input = part.audio.input if part.audio is not None else None
    if audio_input is None:
        return change
    if _named(audio_input, "format") and audio_input.format is not None:
        change.format = _GA_FORMATS[audio_input.format.type]
    for name in ("transcription", "turn_detection", "noise_reduction"):
        if _named(audio_input, name):
            setattr(change, name, getattr(audio_input, name))
    return change


def parse_beta_update(session: object) -> ConfigChange:
    """The change a beta ``transcription_session.update`` asks for; raises InvalidRequestError."""
    try:
        part = BetaSessionPart.model_validate(session)
    except ValidationError as exc:
        raise _invalid(exc, "session") from None
    change = ConfigChange(
        paths={
            "transcription": "session.input_audio_transcription",
            "turn_detection": "session.turn_detection",
            "format": "session.input_audio_format",
        }
    )
    if _named(part, "input_audio_format") and part.input_audio_format is not None:
        change.format = part.input_audio_format
    if _named(part, "input_audio_transcription"):
        change.transcription = part.input_audio_transcription
    if _named(part, "turn_detection"):
        change.turn_detection = part.turn_detection
    if _named(part, "input_audio_noise_reduction"):
        change.noise_reduction = part.input_audio_noise_reduction
    if _named(part, "include"):
        change.include = part.include
    return change


# -- Applying an update ---------------------------------------------------------------------


def resolve_model(
    name: str, registry: ModelRegistry, default_model: str, aliases: list[str]
) -> str:
    """An installed model's name for ``name`` (aliases such as whisper-1 -> the default)."""
    name = name.strip()
    resolved = default_model if name in aliases else name
    registry.get_manifest(resolved)  # ModelNotFoundError lists the installed models
    return resolved


def apply_change(
    config: SessionConfig,
    change: ConfigChange,
    *,
    registry: ModelRegistry,
    default_model: str,
    aliases: list[str],
) -> SessionConfig:
    """``config`` with ``change`` applied, validated as a whole; raises TheoError."""
    updated = config
    if change.format is not _UNSET:
        updated = replace(updated, format=change.format)
    if change.include is not _UNSET:
        updated = replace(updated, include=change.include)
    if change.noise_reduction is not _UNSET:
        noise = change.noise_reduction
        updated = replace(
            updated,
            noise_reduction=None if noise is None else noise.model_dump(exclude_none=True),
        )
    if change.turn_detection is not _UNSET:
        updated = replace(
            updated,
            turn_detection=_turn_detection(
                updated.turn_detection, change.turn_detection, change.paths["turn_detection"]
            ),
        )
    if change.transcription is not _UNSET:
        path = change.paths["transcription"]
        current = updated.transcription
        part = change.transcription
        if part is None:  # "null": back to the defaults
            transcription = Transcription(model=default_model)
        else:
            transcription = Transcription(
                model=current.model if part.model is None else part.model,
                language=current.language if not _named(part, "language") else part.language,
                prompt=current.prompt if not _named(part, "prompt") else part.prompt,
            )
        updated = replace(
            updated, transcription=_checked(transcription, path, registry, default_model, aliases)
        )
    return updated


def _turn_detection(
    current: ServerVad | None, part: _TurnDetectionPart | None, path: str
) -> ServerVad | None:
    if part is None:
        return None  # the client commits
    if part.type not in (None, "server_vad"):
        raise InvalidRequestError(
            f"Unsupported turn detection '{part.type}': use 'server_vad' or null.",
            param=f"{path}.type",
        )
    base = current or ServerVad()
    named = {name: value for name, value in part if name != "type" and value is not None}
    return replace(base, **named)


def _checked(
    transcription: Transcription,
    path: str,
    registry: ModelRegistry,
    default_model: str,
    aliases: list[str],
) -> Transcription:
    try:
        model = resolve_model(transcription.model, registry, default_model, aliases)
    except InvalidRequestError:
        raise
    except Exception as exc:  # ModelNotFoundError: the same message, the session's param
        message = getattr(exc, "message", str(exc))
        raise InvalidRequestError(message, param=f"{path}.model", code="model_not_found") from None
    manifest = registry.get_manifest(model)
    language = (transcription.language or "").strip().lower() or None
    if language is not None:
        if language not in LANGUAGE_NAMES:
            raise InvalidRequestError(
                f"Unsupported language '{language}': use an ISO-639-1 code such as 'en'.",
                param=f"{path}.language",
            )
        if language not in manifest.capabilities.languages:
            raise InvalidRequestError(
                f"The model '{model}' does not support language '{language}'.",
                param=f"{path}.language",
            )
    prompt = transcription.prompt or None
    if prompt and _CONTROL_CHARACTERS.search(prompt):
        raise InvalidRequestError(
            "The prompt contains control characters; send it as UTF-8 text.",
            param=f"{path}.prompt",
        )
    return Transcription(model=model, language=language, prompt=prompt)
