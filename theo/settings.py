"""Runtime configuration, read once from ``THEO_*`` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from theo.manifest import EngineConfig

_DEPRECATED_IN_FLIGHT = "THEO_MAX_QUEUE_PER_MODEL"


def _default_decoded_audio_mb() -> float:
    """A tenth of the machine's memory (at least 256 MB) for decoded audio."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1024.0
    return max(256.0, total / 10 / 2**20)


class Settings(BaseSettings):
    """Every knob of the server; each field is ``THEO_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="THEO_", extra="ignore")

    models_dir: Path = Field(default=Path("models"), description="Folder of installed models.")
    default_model: str = Field(
        default="faster-whisper-base",
        description="Model that the aliases (e.g. whisper-1) resolve to.",
    )
    model_aliases: list[str] = Field(
        default=["whisper-1"], description="Names that resolve to the default model."
    )
    max_file_size_mb: float = Field(default=25.0, gt=0, description="Upload cap (413 above).")
    max_audio_seconds: float = Field(
        # 25 MB (OpenAI's cap) of 16 kb/s Opus is ~3.5 h; past 3 h a long file on a slow
        # model outlasts the request timeout anyway (docs/reliability.md).
        default=3 * 3600.0,
        gt=0,
        description="Longest audio accepted after decoding.",
    )
    long_form_encoder_seconds: float = Field(
        default=15.0,
        ge=0,
        le=30,
        description="Least audio Whisper's encoder is given for a window of a long recording "
        "(a file of more than one window): a shorter window is padded to this, or past it in "
        "5 s steps, instead of to 30 s, with a 30 s retry of a decode that looks failed (0 or "
        "30: always 30 s). Base decodes a chain of short talks ~20% faster at the same WER.",
    )
    long_form_window_seconds: float | None = Field(
        default=None,
        ge=5,
        le=30,
        description="Longest window a recording of more than 30 s is cut into, at its pauses, "
        "for every model (unset: each model's own, `long_form_window_seconds` in its "
        "manifest: 20 s, base 23 s; 30: Whisper's full window). Whisper's encoder costs more "
        "per second on a longer input: long files decode ~10% faster at 20 s than at 30 s.",
    )
    max_decoded_audio_mb: float = Field(
        default_factory=lambda: _default_decoded_audio_mb(),
        gt=0,
        description="MB of decoded audio all requests may hold at once; more wait (default: "
        "a tenth of the machine's memory, at least 256).",
    )
    log_format: Literal["json", "console"] = "console"
    log_level: str = "INFO"
    retry_after_seconds: int = Field(
        default=5,
        ge=1,
        description="Retry-After sent with 503s when no better estimate is known.",
    )
    request_timeout_seconds: float = Field(
        default=840.0,
        gt=0,
        # Below the service's BentoML traffic timeout (900 s), so the client gets
        # OpenAI's error shape from Theo rather than BentoML's own 504 body.
        description="Longest time an audio request may take (504 after).",
    )
    max_in_flight_per_model: int = Field(
        default=32,
        ge=1,
        # THEO_MAX_QUEUE_PER_MODEL was this setting's name before the queue existed.
        validation_alias=AliasChoices(
            "max_in_flight_per_model", "THEO_MAX_IN_FLIGHT_PER_MODEL", _DEPRECATED_IN_FLIGHT
        ),
        description="Requests a model processes at once (decoding + runner); more wait.",
    )
    max_queued_per_model: int = Field(
        default=256,
        ge=0,
        description="Requests that may wait for a model; more get 503 + Retry-After.",
    )
    max_queued_mb_per_model: float = Field(
        default=1024.0,
        ge=0,
        description="MB of uploads that may wait for a model; more get 503 + Retry-After.",
    )
    max_queue_wait_seconds: float = Field(
        default=120.0,
        gt=0,
        description="Longest a request waits for its model; then 503 + Retry-After.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="If set, /v1/ routes require 'Authorization: Bearer <key>'.",
    )
    # Live transcription (/v1/realtime, theo/realtime/).
    realtime_max_sessions_per_model: int = Field(
        default=32,
        ge=0,
        description="Live sessions a model serves at once; one more gets an error and close 1013.",
    )
    realtime_idle_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A live session that sends nothing and awaits nothing this long is closed.",
    )
    realtime_max_message_mb: float = Field(
        default=15.0, gt=0, description="Largest client event on /v1/realtime (OpenAI's limit)."
    )
    realtime_max_buffered_seconds: float = Field(
        default=120.0,
        gt=0,
        description="Audio a live session may hold: not yet committed plus awaiting its text.",
    )
    realtime_partials: bool = Field(
        default=True,
        description="Send text while someone still talks (re-decodes of the growing utterance).",
    )
    realtime_partial_interval_seconds: float = Field(
        default=1.0, gt=0, description="Audio between two re-decodes of a growing utterance."
    )
    realtime_live_instance: bool = Field(
        default=True,
        description="Runners load a model instance of their own for live decodes, so these "
        "never queue behind a long file's windows (costs the model's memory once more).",
    )
    realtime_file_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="With the live instance, the nice value of the file instance's decoding "
        "threads: live decodes take the cores first, even from a file's decode in progress "
        "(0: the same priority).",
    )
    realtime_encoder_seconds: float = Field(
        default=15.0,
        ge=0,
        le=30,
        description="Least audio Whisper's encoder is given for a live decode: an utterance is "
        "padded to this, or past it in 5 s steps, instead of to 30 s; about 2.5x less compute "
        "per utterance on CPU, with a 30 s retry of a decode that looks failed (0 or 30: "
        "always 30 s). Below 15 s tiny and base start to repeat themselves.",
    )
    realtime_shutdown_grace_seconds: float = Field(
        default=15.0,
        ge=0,
        description="On shutdown, how long live sessions get to finish their utterances.",
    )

    @property
    def max_file_size_bytes(self) -> int:
        return int(self.max_file_size_mb * 1024 * 1024)

    @property
    def max_decoded_audio_bytes(self) -> int:
        return int(self.max_decoded_audio_mb * 1024 * 1024)

    @property
    def max_queued_bytes_per_model(self) -> int:
        return int(self.max_queued_mb_per_model * 1024 * 1024)

    @property
    def realtime_max_message_bytes(self) -> int:
        return int(self.realtime_max_message_mb * 1024 * 1024)

    def long_window_seconds(self, engine: EngineConfig) -> float:
        """The longest window of a long recording for a model: this setting, else the model's."""
        return self.long_form_window_seconds or engine.long_form_window_seconds

    def deprecation_warnings(self) -> list[str]:
        """One line per deprecated variable set in the environment, saying what replaces it."""
        if _DEPRECATED_IN_FLIGHT in os.environ:
            return [
                f"{_DEPRECATED_IN_FLIGHT} is deprecated: it is read as "
                "THEO_MAX_IN_FLIGHT_PER_MODEL (requests processed at once per model); "
                "THEO_MAX_QUEUED_PER_MODEL now bounds the requests waiting."
            ]
        return []


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read from the environment on first use)."""
    return Settings()
