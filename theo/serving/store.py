"""Theo models in the BentoML model store, where ``bentoml build`` can package them.

A stored model is the model folder as it is (weights and ``theo.yaml``) in the store's
``<name>/<version>/`` folder, so it loads exactly like ``models/<name>/``.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import NotFound

from theo.manifest import MANIFEST_FILENAME, ModelManifest, load_manifest, parse_manifest

# Metadata key of the content digest: importing an unchanged folder again is a no-op.
DIGEST_KEY = "theo_sha256"
LABELS = {"app": "theo"}


class StoreError(Exception):
    """A model cannot be stored or is not in the store; the message says what to do."""


@dataclass(frozen=True)
class StoredModel:
    """One Theo model in the store."""

    tag: str
    path: Path
    manifest: ModelManifest
    created: bool = False


def store_name(model_name: str) -> str:
    """The store name of a Theo model (BentoML names are lower case, at most 63 chars)."""
    name = model_name.lower()
    try:
        bentoml.Tag(name, None)
    except ValueError as exc:
        raise StoreError(f"model {model_name!r} cannot be stored: {exc}") from None
    return name


def _model_files(folder: Path) -> Iterator[Path]:
    """The files to store: everything but hidden files and the manifest (rewritten)."""
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        hidden = any(part.startswith(".") for part in relative.parts)
        if path.is_file() and relative.as_posix() != MANIFEST_FILENAME and not hidden:
            yield path


def _digest(folder: Path, manifest_text: str) -> str:
    digest = hashlib.sha256(manifest_text.encode())
    for path in _model_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def import_model(folder: Path, engine_overrides: Mapping[str, Any] | None = None) -> StoredModel:
    """Copy a model folder into the store as a new version of ``store_name(name)``.

    ``engine_overrides`` replaces ``engine_config`` fields of the stored manifest (for
    example ``device: cuda``). If the latest stored version has the same content, it is
    returned as is (``created`` is false).
    """
    manifest_path = folder / MANIFEST_FILENAME
    manifest = load_manifest(manifest_path)
    if engine_overrides:
        data = manifest.model_dump(mode="json")
        data["engine_config"].update(engine_overrides)
        manifest = parse_manifest(data, manifest_path)
    manifest_text = manifest.to_yaml()
    digest = _digest(folder, manifest_text)
    name = store_name(manifest.name)
    try:
        latest = bentoml.models.get(name)
    except NotFound:
        latest = None
    if latest is not None and latest.info.metadata.get(DIGEST_KEY) == digest:
        return StoredModel(str(latest.tag), Path(latest.path), manifest)
    metadata = {DIGEST_KEY: digest, "theo_model": manifest.name}
    with bentoml.models.create(name, labels=LABELS, metadata=metadata) as model:
        target = Path(model.path)
        for source in _model_files(folder):
            destination = target / source.relative_to(folder)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
        (target / MANIFEST_FILENAME).write_text(manifest_text, encoding="utf-8")
    stored = bentoml.models.get(model.tag)
    return StoredModel(str(stored.tag), Path(stored.path), manifest, created=True)


def find_model(spec: str) -> StoredModel:
    """The stored model ``NAME`` (its latest version) or ``NAME:VERSION``."""
    name, _, version = spec.partition(":")
    tag = f"{store_name(name)}:{version}" if version else store_name(name)
    try:
        model = bentoml.models.get(tag)
    except NotFound:
        raise StoreError(
            f"model {spec!r} is not in the BentoML model store; import it first "
            "(`make bento-models`, or `python scripts/import_models.py`)"
        ) from None
    path = Path(model.path)
    return StoredModel(str(model.tag), path, load_manifest(path / MANIFEST_FILENAME))
