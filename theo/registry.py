"""Discovers the installed models: one folder with a ``theo.yaml`` per model."""

from __future__ import annotations

import logging
from pathlib import Path

from theo.errors import ModelNotFoundError
from theo.manifest import MANIFEST_FILENAME, ManifestError, ModelManifest, load_manifest

logger = logging.getLogger(__name__)


class ModelRegistry:
    """An index of the models installed under ``models_dir``, keyed by manifest name."""

    def __init__(self, models_dir: Path):
        self.models_dir = Path(models_dir)
        self._manifests: dict[str, ModelManifest] = {}
        self._paths: dict[str, Path] = {}
        self.refresh()

    def refresh(self) -> None:
        """Rescan the models folder."""
        manifests: dict[str, ModelManifest] = {}
        paths: dict[str, Path] = {}
        if self.models_dir.is_dir():
            for folder in sorted(p for p in self.models_dir.iterdir() if p.is_dir()):
                if folder.name.startswith("."):
                    continue  # temporary folders of an unfinished pull
                manifest_path = folder / MANIFEST_FILENAME
                if not manifest_path.is_file():
                    logger.warning("skipping %s: no %s", folder, MANIFEST_FILENAME)
                    continue
                try:
                    manifest = load_manifest(manifest_path)
                except ManifestError as exc:
                    logger.error("skipping model: %s", exc)
                    continue
                if manifest.name in manifests:
                    logger.error(
                        "skipping %s: model name %r already used by %s",
                        folder,
                        manifest.name,
                        paths[manifest.name],
                    )
                    continue
                manifests[manifest.name] = manifest
                paths[manifest.name] = folder
        self._manifests, self._paths = manifests, paths

    def list_models(self) -> list[ModelManifest]:
        """Every valid installed model, sorted by name."""
        return [self._manifests[name] for name in sorted(self._manifests)]

    def names(self) -> list[str]:
        """The installed model names, sorted."""
        return sorted(self._manifests)

    def has_model(self, name: str) -> bool:
        return name in self._manifests

    def get_manifest(self, name: str) -> ModelManifest:
        """The manifest of ``name``; raises :class:`ModelNotFoundError` if not installed."""
        try:
            return self._manifests[name]
        except KeyError:
            raise ModelNotFoundError(name, self.names()) from None

    def get_model_path(self, name: str) -> Path:
        """The folder of ``name``; raises :class:`ModelNotFoundError` if not installed."""
        try:
            return self._paths[name]
        except KeyError:
            raise ModelNotFoundError(name, self.names()) from None
