"""theo/realtime/events.py: every server event is one the OpenAI SDK's types accept."""

from __future__ import annotations

from typing import Any

import pytest
from openai._models import construct_type_unchecked
from openai.types.beta.realtime import realtime_server_event as beta_events
from openai.types.realtime import realtime_server_event as ga_events
from pydantic import TypeAdapter

from theo.errors import InvalidRequestError, ServiceUnavailableError
from theo.realtime.config import SessionConfig, Transcription
from theo.realtime.events import (
    Cleared,
    ClientEventError,
    Committed,
    DurationUsage,
    ErrorDetail,
    ErrorEvent,
    Item,
    ItemContent,
    ItemEvent,
    ServerEvent,
    SessionEvent,
    SpeechStarted,
    SpeechStopped,
    TranscriptionCompleted,
    TranscriptionDelta,
    TranscriptionFailed,
    decode_base64_audio,
    parse_client_event,
)

GA = TypeAdapter(ga_events.RealtimeServerEvent)
BETA = TypeAdapter(beta_events.RealtimeServerEvent)
ITEM = Item(id="item_1", content=[ItemContent(transcript="Hello.")])
FAILURE = ErrorDetail.of(ServiceUnavailableError("The runner is down."))

COMMON: list[ServerEvent] = [
    SpeechStarted(audio_start_ms=120, item_id="item_1"),
    SpeechStopped(audio_end_ms=2400, item_id="item_1"),
    Committed(item_id="item_1", previous_item_id=None),
    Cleared(),
    ItemEvent(type="conversation.item.created", previous_item_id="item_0", item=ITEM),
    TranscriptionDelta(item_id="item_1", delta="Hel"),
    TranscriptionCompleted(
        item_id="item_1", transcript="Hello.", usage=DurationUsage(seconds=2.28)
    ),
    TranscriptionFailed(item_id="item_1", error=FAILURE),
    ErrorEvent(error=ErrorDetail.of(InvalidRequestError("Bad.", param="type"), "evt_9")),
]


def wire(event: ServerEvent) -> dict[str, Any]:
    event.event_id = "event_1"
    return event.model_dump(mode="json")


@pytest.mark.parametrize("event", COMMON, ids=lambda e: e.type)
def test_each_event_validates_as_its_ga_and_beta_sdk_type(event: ServerEvent) -> None:
    data = wire(event)
    for adapter in (GA, BETA):
        parsed = adapter.validate_python(data)
        assert parsed.type == event.type
        assert parsed.model_dump(exclude_unset=True) == data


@pytest.mark.parametrize("kind", ["conversation.item.added", "conversation.item.done"])
def test_ga_item_events(kind: str) -> None:
    parsed = GA.validate_python(wire(ItemEvent(type=kind, previous_item_id=None, item=ITEM)))
    assert parsed.type == kind
    assert parsed.item.content[0].transcript == "Hello."  # type: ignore[union-attr]


def test_session_events_of_both_generations() -> None:
    config = SessionConfig(transcription=Transcription(model="whisper-1"))
    for kind in ("session.created", "session.updated"):
        event = wire(SessionEvent(type=kind, session=config.render("ga", "sess_1")))
        parsed = GA.validate_python(event)
        assert parsed.session.type == "transcription"  # type: ignore[union-attr]
    updated = wire(
        SessionEvent(type="transcription_session.updated", session=config.render("beta", "s"))
    )
    beta_type: Any = beta_events.RealtimeServerEvent  # what the SDK's parse_event passes
    parsed_beta: Any = construct_type_unchecked(value=updated, type_=beta_type)
    assert parsed_beta.session.input_audio_format == "pcm16"
    # Not in the beta SDK's union (it was sent by the API all the same): parsed loosely.
    created = wire(SessionEvent(type="transcription_session.created", session={}))
    assert construct_type_unchecked(value=created, type_=beta_type)


def test_client_events_parse_or_say_what_is_wrong() -> None:
    event = parse_client_event(
        '{"type": "input_audio_buffer.append", "audio": "AAEC", "event_id": "e1"}'
    )
    assert (event.type, event.event_id) == ("input_audio_buffer.append", "e1")
    assert decode_base64_audio(event) == b"\x00\x01\x02"
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        parse_client_event("{nope")
    with pytest.raises(InvalidRequestError, match="JSON object"):
        parse_client_event("[1]")
    with pytest.raises(ClientEventError) as raised:
        parse_client_event('{"type": 3, "event_id": "e2"}')
    assert raised.value.event_id == "e2"
    bad = parse_client_event('{"type": "input_audio_buffer.append", "audio": "%%%"}')
    with pytest.raises(InvalidRequestError, match="base64") as not_base64:
        decode_base64_audio(bad)
    assert not_base64.value.param == "audio"
    with pytest.raises(InvalidRequestError, match="Missing"):
        decode_base64_audio(parse_client_event('{"type": "input_audio_buffer.append"}'))
