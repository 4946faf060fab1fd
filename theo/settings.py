"""Runtime configuration, read once from ``THEO_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        default=3 * 3600.0, gt=0, description="Longest audio accepted after decoding."
    )
    log_format: Literal["json", "console"] = "console"
    log_level: str = "INFO"
    retry_after_seconds: int = Field(default=5, ge=1, description="Retry-After sent with 503s.")
    request_timeout_seconds: float = Field(
        default=840.0,
        gt=0,
        # Below the service's BentoML traffic timeout (900 s), so the client gets
        # OpenAI's error shape from Theo rather than BentoML's own 504 body.
        description="Longest time an audio request may take (504 after).",
    )
    max_queue_per_model: int = Field(
        default=32,
        ge=1,
        description="Requests a model may have in flight; more get 503 + Retry-After.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="If set, /v1/ routes require 'Authorization: Bearer <key>'.",
    )

    @property
    def max_file_size_bytes(self) -> int:
        return int(self.max_file_size_mb * 1024 * 1024)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read from the environment on first use)."""
    return Settings()
