"""A CTranslate2 Whisper model folder: the files it must hold, and the manifest it implies."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from theo.languages import LANGUAGE_NAMES
from theo.manifest import Capabilities, EngineConfig, ModelManifest, Resources

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
VOCABULARY_FILES = ("vocabulary.txt", "vocabulary.json")
# English-only Whisper vocabularies have 51864 tokens; multilingual ones 51865 (v1/v2) or
# 51866 (v3). CTranslate2 tells the two apart the same way.
MULTILINGUAL_VOCABULARY = 51865
_LANGUAGE_TOKEN = re.compile(r"^<\|([a-z]{2,3})\|>$")


class ModelFolderError(ValueError):
    """The folder is not a usable CTranslate2 Whisper model; the message says why."""


def check_model_folder(folder: Path) -> None:
    """Raise :class:`ModelFolderError` unless ``folder`` holds a complete model."""
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is not a folder")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in VOCABULARY_FILES):
        missing.append(" or ".join(VOCABULARY_FILES))
    if missing:
        raise ModelFolderError(
            f"{folder} is not a CTranslate2 Whisper model: missing {', '.join(missing)}"
        )
    empty = sorted(p.name for p in folder.iterdir() if p.is_file() and p.stat().st_size == 0)
    if empty:
        raise ModelFolderError(f"{folder}: empty files: {', '.join(empty)}")


def folder_size(folder: Path) -> int:
    """Bytes on disk of every file under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def vocabulary_size(folder: Path) -> int:
    """The number of tokens in the model's vocabulary file."""
    text_vocabulary = folder / "vocabulary.txt"
    if text_vocabulary.is_file():
        with text_vocabulary.open(encoding="utf-8") as handle:
            return sum(1 for _ in handle)
    tokens: Any = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
    if not isinstance(tokens, list):
        raise ModelFolderError(f"{folder / 'vocabulary.json'}: expected a list of tokens")
    return len(tokens)


def model_languages(folder: Path) -> list[str]:
    """The language codes of the model's language tokens (``config.json`` ``lang_ids``)."""
    try:
        config: Any = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        tokenizer: Any = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        token_of = {item["id"]: item["content"] for item in tokenizer.get("added_tokens", [])}
        codes = set()
        for token_id in config.get("lang_ids", []):
            match = _LANGUAGE_TOKEN.match(token_of.get(token_id, ""))
            if match and match.group(1) in LANGUAGE_NAMES:
                codes.add(match.group(1))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFolderError(f"{folder}: cannot read the language tokens: {exc}") from None
    return sorted(codes)


def derive_manifest(folder: Path, name: str, *, origin: str) -> ModelManifest:
    """A manifest for a model that has none, from what its files say.

    English-only models (``.en``: a 51864-token vocabulary) accept ``en`` and cannot
    translate. Distil-Whisper checkpoints keep the multilingual vocabulary but were
    trained on English only, so a ``distil`` name counts as English-only too.
    ``origin`` (a repository or folder) goes into the description.
    """
    check_model_folder(folder)
    multilingual = vocabulary_size(folder) >= MULTILINGUAL_VOCABULARY
    if "distil" in f"{name} {origin}".lower():
        multilingual = False
    languages = model_languages(folder) if multilingual else ["en"]
    if not languages:
        raise ModelFolderError(f"{folder}: config.json lists no language tokens")
    weights_mb = (folder / "model.bin").stat().st_size / 1_000_000
    large = weights_mb > 1000
    kind = "multilingual, translates to English" if multilingual else "English only"
    return ModelManifest(
        name=name,
        description=f"Whisper model ({kind}), CTranslate2 weights from {origin}",
        capabilities=Capabilities(
            languages=languages, translation=multilingual, language_detection=multilingual
        ),
        resources=Resources(
            # int8 weights plus the decoder's buffers; an upper bound, not a measurement
            memory_mb=int(300 + 2 * weights_mb),
            gpu_recommended=large,
            load_time_seconds=round(max(1.0, weights_mb / 200), 1),
        ),
        engine_config=EngineConfig(
            device="auto" if large else "cpu",
            compute_type="int8",
            max_latency_ms=300_000 if large else 60_000,
        ),
    )
