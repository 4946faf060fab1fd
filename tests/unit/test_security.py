"""Security basics that cut across modules: manifests, request fields, secrets in settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from theo.manifest import ManifestError, load_manifest
from theo.settings import Settings
from theo.transcription import TranscriptionJob

# Everything a request can set on the engine: the documented form fields, nothing else
# (beam size, device, VAD... come from the model's manifest, or the server, only).
DOCUMENTED_JOB_FIELDS = {
    "audio",  # file
    "sample_format",  # set by the server: how it decoded the file
    "offset",  # set by the server when it windows long audio
    "task",  # the route
    "language",
    "prompt",
    "temperature",
    "word_timestamps",  # timestamp_granularities[]=word
    "long_form",  # set by the server: a window of a longer recording (theo/long_form.py)
    "language_hint",  # set by the server: the language that recording was heard in so far
    "beam_size",  # set by the server only: live partial text is decoded greedily (no form field)
    "encoder_seconds",  # set by the server only: live decodes' shorter encoder input
}


def test_jobs_carry_only_documented_fields() -> None:
    assert set(TranscriptionJob.model_fields) == DOCUMENTED_JOB_FIELDS


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:os.system ['touch /tmp/theo-pwned']",
        "name: !!python/object/new:os.system [echo pwned]\n",
        "name: x\nengine_config: !!python/name:os.system\n",
    ],
)
def test_manifests_never_build_python_objects(tmp_path: Path, payload: str) -> None:
    path = tmp_path / "theo.yaml"
    path.write_text(payload, encoding="utf-8")
    with pytest.raises(ManifestError):
        load_manifest(path)
    assert not Path("/tmp/theo-pwned").exists()


def test_the_api_key_does_not_show_in_settings_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THEO_API_KEY", "sk-very-secret")
    settings = Settings()
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings)
    assert "sk-very-secret" not in str(settings.model_dump())


def test_auth_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THEO_API_KEY", raising=False)
    assert Settings().api_key is None
