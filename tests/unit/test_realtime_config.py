"""theo/realtime/config.py: both update shapes, partial updates, validation, rendering."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.beta.realtime.transcription_session import TranscriptionSession
from openai.types.realtime.realtime_transcription_session_create_request import (
    RealtimeTranscriptionSessionCreateRequest,
)

from tests.unit.conftest import ENGLISH_MODEL, MULTILINGUAL_MODEL
from theo.errors import InvalidRequestError
from theo.realtime.config import (
    ServerVad,
    SessionConfig,
    Transcription,
    apply_change,
    parse_beta_update,
    parse_ga_update,
)
from theo.registry import ModelRegistry

DEFAULT = SessionConfig(transcription=Transcription(model=MULTILINGUAL_MODEL))


def ga(
    registry: ModelRegistry, session: dict[str, Any], config: SessionConfig = DEFAULT
) -> SessionConfig:
    return apply_change(
        config,
        parse_ga_update({"type": "transcription", **session}),
        registry=registry,
        default_model=MULTILINGUAL_MODEL,
        aliases=["whisper-1"],
    )


def beta(
    registry: ModelRegistry, session: dict[str, Any], config: SessionConfig = DEFAULT
) -> SessionConfig:
    return apply_change(
        config,
        parse_beta_update(session),
        registry=registry,
        default_model=MULTILINGUAL_MODEL,
        aliases=["whisper-1"],
    )


def test_the_rendered_sessions_are_what_the_sdk_parses() -> None:
    config = SessionConfig(
        transcription=Transcription(model=ENGLISH_MODEL, language="en", prompt="Kenobi"),
        format="g711_ulaw",
    )
    ga_session = RealtimeTranscriptionSessionCreateRequest.model_validate(
        config.render("ga", "sess_1")
    )
    assert ga_session.audio and ga_session.audio.input
    assert ga_session.audio.input.format and ga_session.audio.input.format.type == "audio/pcmu"
    assert (
        ga_session.audio.input.transcription
        and ga_session.audio.input.transcription.prompt == "Kenobi"
    )
    turn = ga_session.audio.input.turn_detection
    assert turn is not None and turn.type == "server_vad" and turn.silence_duration_ms == 500
    rendered = config.render("beta", "sess_1")
    # The beta type lists OpenAI's model names only (the SDK does not validate what it
    # receives), and a client secret only sessions made over REST have.
    rendered["input_audio_transcription"]["model"] = "whisper-1"
    rendered["client_secret"] = {"expires_at": 0, "value": ""}
    beta_session = TranscriptionSession.model_validate(rendered)
    assert beta_session.input_audio_format == "g711_ulaw"
    assert beta_session.turn_detection and beta_session.turn_detection.prefix_padding_ms == 300


def test_pcm_renders_its_rate() -> None:
    assert DEFAULT.render("ga", "s")["audio"]["input"]["format"] == {
        "type": "audio/pcm",
        "rate": 24000,
    }


def test_a_partial_update_changes_only_the_fields_it_names(registry: ModelRegistry) -> None:
    config = ga(
        registry, {"audio": {"input": {"transcription": {"language": "fr", "prompt": "Bonjour"}}}}
    )
    config = ga(
        registry,
        {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.7}}}},
        config,
    )
    assert config.turn_detection == ServerVad(threshold=0.7)
    assert config.transcription == Transcription(MULTILINGUAL_MODEL, "fr", "Bonjour")
    config = beta(registry, {"turn_detection": {"silence_duration_ms": 800}}, config)
    assert config.turn_detection == ServerVad(threshold=0.7, silence_duration_ms=800)
    config = beta(registry, {"input_audio_transcription": {"prompt": None}}, config)
    assert config.transcription == Transcription(MULTILINGUAL_MODEL, "fr", None)


def test_turn_detection_null_means_the_client_commits(registry: ModelRegistry) -> None:
    config = ga(registry, {"audio": {"input": {"turn_detection": None}}})
    assert config.turn_detection is None
    config = ga(registry, {"audio": {"input": {"turn_detection": {"type": "server_vad"}}}}, config)
    assert config.turn_detection == ServerVad()
    assert beta(registry, {"turn_detection": None}).turn_detection is None


def test_formats_of_both_shapes(registry: ModelRegistry) -> None:
    assert (
        ga(registry, {"audio": {"input": {"format": {"type": "audio/pcma"}}}}).format == "g711_alaw"
    )
    assert beta(registry, {"input_audio_format": "g711_ulaw"}).format == "g711_ulaw"


def test_aliases_and_installed_models(registry: ModelRegistry) -> None:
    config = beta(registry, {"input_audio_transcription": {"model": ENGLISH_MODEL}})
    assert config.transcription.model == ENGLISH_MODEL
    config = beta(registry, {"input_audio_transcription": {"model": "whisper-1"}}, config)
    assert config.transcription.model == MULTILINGUAL_MODEL


def test_noise_reduction_is_accepted_and_reported(registry: ModelRegistry) -> None:
    config = ga(registry, {"audio": {"input": {"noise_reduction": {"type": "near_field"}}}})
    assert config.render("ga", "s")["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    assert (
        ga(registry, {"audio": {"input": {"noise_reduction": None}}}, config).noise_reduction
        is None
    )


@pytest.mark.parametrize(
    ("session", "param", "code"),
    [
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}},
            "session.audio.input.turn_detection.threshold",
            None,
        ),
        (
            {"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}},
            "session.audio.input.turn_detection.type",
            None,
        ),
        (
            {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
            "session.audio.input.format.rate",
            None,
        ),
        (
            {"audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}},
            "session.audio.input.transcription.model",
            "model_not_found",
        ),
        (
            {"audio": {"input": {"transcription": {"language": "xx"}}}},
            "session.audio.input.transcription.language",
            None,
        ),
    ],
)
def test_invalid_updates_say_which_field(
    registry: ModelRegistry, session: dict[str, Any], param: str, code: str | None
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        ga(registry, session)
    assert raised.value.param == param
    if code:
        assert raised.value.code == code


def test_a_language_the_model_lacks_is_refused(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidRequestError, match="does not support language 'fr'"):
        beta(registry, {"input_audio_transcription": {"model": ENGLISH_MODEL, "language": "fr"}})


def test_a_conversation_session_update_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="Only transcription sessions") as raised:
        parse_ga_update({"type": "realtime", "model": "gpt-realtime"})
    assert raised.value.code == "unsupported_session_type"
