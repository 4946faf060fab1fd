"""The events of a transcription session, named and shaped as the OpenAI SDK's realtime types.

Server events mirror ``openai/types/realtime/*_event.py`` (GA) and
``openai/types/beta/realtime/`` (beta): the same ``type`` strings and field names; a unit
test parses each one with the SDK. ``event_id`` is filled in when an event is sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from theo.errors import InvalidRequestError, TheoError


def new_id(prefix: str) -> str:
    """An id in OpenAI's style: ``event_...``, ``item_...``, ``sess_...``."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class ServerEvent(BaseModel):
    type: str
    event_id: str = ""


class SessionEvent(ServerEvent):
    """``session.created``/``.updated``; beta: ``transcription_session.created``/``.updated``."""

    session: dict[str, Any]


class SpeechStarted(ServerEvent):
    type: Literal["input_audio_buffer.speech_started"] = "input_audio_buffer.speech_started"
    audio_start_ms: int
    item_id: str


class SpeechStopped(ServerEvent):
    type: Literal["input_audio_buffer.speech_stopped"] = "input_audio_buffer.speech_stopped"
    audio_end_ms: int
    item_id: str


class Committed(ServerEvent):
    type: Literal["input_audio_buffer.committed"] = "input_audio_buffer.committed"
    item_id: str
    previous_item_id: str | None


class Cleared(ServerEvent):
    type: Literal["input_audio_buffer.cleared"] = "input_audio_buffer.cleared"


class ItemContent(BaseModel):
    type: Literal["input_audio"] = "input_audio"
    transcript: str | None = None


class Item(BaseModel):
    """The user message a committed utterance becomes (its audio is not echoed back)."""

    id: str
    object: Literal["realtime.item"] = "realtime.item"
    type: Literal["message"] = "message"
    status: Literal["completed"] = "completed"
    role: Literal["user"] = "user"
    content: list[ItemContent]


class ItemEvent(ServerEvent):
    """``conversation.item.created`` (beta) or ``.added``/``.done`` (GA)."""

    previous_item_id: str | None
    item: Item


class TranscriptionDelta(ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.delta"] = (
        "conversation.item.input_audio_transcription.delta"
    )
    item_id: str
    content_index: int = 0
    delta: str


class DurationUsage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class TranscriptionCompleted(ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.completed"] = (
        "conversation.item.input_audio_transcription.completed"
    )
    item_id: str
    content_index: int = 0
    transcript: str
    usage: DurationUsage


class ErrorDetail(BaseModel):
    type: str
    code: str | None = None
    message: str
    param: str | None = None
    event_id: str | None = None

    @classmethod
    def of(cls, error: TheoError, event_id: str | None = None) -> ErrorDetail:
        return cls(
            type=error.error_type,
            code=error.code,
            message=error.message,
            param=error.param,
            event_id=event_id,
        )


class TranscriptionFailed(ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.failed"] = (
        "conversation.item.input_audio_transcription.failed"
    )
    item_id: str
    content_index: int = 0
    error: ErrorDetail


class ErrorEvent(ServerEvent):
    type: Literal["error"] = "error"
    error: ErrorDetail


# -- Client events ----------------------------------------------------------------------------


class ClientEventError(InvalidRequestError):
    """A client event that cannot be handled; ``event_id`` is the event's, when it had one."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        event_id: str | None = None,
    ):
        super().__init__(message, param=param, code=code)
        self.event_id = event_id


class ClientEvent(BaseModel):
    """Any client event: its type, its optional id, and the rest as sent."""

    model_config = ConfigDict(extra="allow")

    type: str
    event_id: str | None = None

    @property
    def fields(self) -> dict[str, Any]:
        return self.model_extra or {}


def parse_client_event(message: str | bytes) -> ClientEvent:
    """A client event from one WebSocket message; raises InvalidRequestError if malformed."""
    try:
        data = json.loads(message)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError("The message is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("An event must be a JSON object.", code="invalid_event")
    event_id = data.get("event_id")
    try:
        return ClientEvent.model_validate(data)
    except ValidationError:
        raise ClientEventError(
            "An event needs a string 'type' (and 'event_id', if given, a string).",
            param="type",
            code="invalid_event",
            event_id=event_id if isinstance(event_id, str) else None,
        ) from None


def decode_base64_audio(event: ClientEvent) -> bytes:
    """The bytes of an ``input_audio_buffer.append``; raises InvalidRequestError."""
    audio = event.fields.get("audio")
    if not isinstance(audio, str):
        raise InvalidRequestError(
            "Missing required parameter: 'audio' (base64-encoded audio bytes).", param="audio"
        )
    try:
        return base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            "Invalid 'audio': expected base64-encoded audio bytes.",
            param="audio",
            code="invalid_base64",
        ) from None
