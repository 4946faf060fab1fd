"""Unit-test fixtures: a temporary models folder holding manifests only (no weights)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from theo.manifest import MANIFEST_FILENAME
from theo.registry import ModelRegistry
from theo.settings import Settings

ENGLISH_MODEL = "faster-whisper-tiny.en"
MULTILINGUAL_MODEL = "faster-whisper-base"


def manifest_data(name: str, **capabilities: Any) -> dict[str, Any]:
    """A valid ``theo.yaml`` as a dict; ``capabilities`` override the English-only defaults."""
    return {
        "name": name,
        "version": "1.0",
        "engine": "faster-whisper",
        "type": "stt",
        "description": f"test model {name}",
        "capabilities": {
            "languages": ["en"],
            "translation": False,
            "word_timestamps": True,
            **capabilities,
        },
        "engine_config": {"device": "cpu", "compute_type": "int8", "beam_size": 2},
    }


def write_manifest(models_dir: Path, folder: str, content: dict[str, Any] | str) -> Path:
    """Write ``models_dir/folder/theo.yaml`` (a dict is dumped as YAML); return the folder."""
    target = models_dir / folder
    target.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    (target / MANIFEST_FILENAME).write_text(text, encoding="utf-8")
    return target


@pytest.fixture(autouse=True)
def _no_theo_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep THEO_* variables of the developer's shell out of the Settings the tests build."""
    for key in list(os.environ):
        if key.startswith("THEO_"):
            monkeypatch.delenv(key)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """An English-only model and a multilingual, translating one."""
    root = tmp_path / "models"
    write_manifest(root, ENGLISH_MODEL, manifest_data(ENGLISH_MODEL))
    write_manifest(
        root,
        MULTILINGUAL_MODEL,
        manifest_data(
            MULTILINGUAL_MODEL,
            languages=["en", "fr", "de", "es"],
            translation=True,
            language_detection=True,
        ),
    )
    return root


@pytest.fixture
def registry(models_dir: Path) -> ModelRegistry:
    return ModelRegistry(models_dir)


@pytest.fixture
def settings(models_dir: Path) -> Settings:
    return Settings(models_dir=models_dir, default_model=MULTILINGUAL_MODEL, retry_after_seconds=7)
