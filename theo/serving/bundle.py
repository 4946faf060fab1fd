"""Which models a Theo bundle serves, and where each one's folder is.

``bentoml build`` freezes the service graph (the API service and one runner per model) into
``bento.yaml``, and BentoML refuses to load a bento whose graph has grown since. So a built
bento names its models, through its bento arguments (``args:`` in ``bentofile.yaml``,
``--arg KEY=VALUE`` at build time), and serves exactly those:

- ``model_source=dir`` (the default): the folders ``$THEO_MODELS_DIR/<name>``, read when the
  server starts — a slim bento whose weights live on a mounted volume;
- ``model_source=store``: models in the BentoML model store, which ``bentoml build``
  packages into the bento (and ``bentoml containerize`` into the image).

Serving from source without arguments (``bentoml serve service:Theo``) serves every model
found in ``$THEO_MODELS_DIR``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from theo.catalog import load_catalog
from theo.manifest import ModelManifest
from theo.registry import ModelRegistry
from theo.serving.store import find_model

logger = logging.getLogger(__name__)


class BundleError(Exception):
    """The bento arguments name models that cannot be served; the message says why."""


class BundleArguments(BaseModel):
    """The bento arguments Theo reads (``bentoml build --arg KEY=VALUE``)."""

    model_config = ConfigDict(extra="forbid")

    model_source: Literal["dir", "store"] = "dir"
    models: list[str] = []

    @field_validator("models", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # `--arg models=a,b` arrives as one string.
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


class FolderRegistry(ModelRegistry):
    """A registry over given model folders instead of a scanned models folder."""

    def __init__(self, models: Mapping[str, tuple[ModelManifest, Path]]):
        self._given = dict(models)
        super().__init__(Path())

    def refresh(self) -> None:
        self._manifests = {name: manifest for name, (manifest, _) in self._given.items()}
        self._paths = {name: path for name, (_, path) in self._given.items()}


@dataclass(frozen=True)
class Bundle:
    """The models to serve, and the store tags of those to package into the bento."""

    registry: ModelRegistry
    # model name -> its BentoML model-store tag; its runner service declares it.
    stored_tags: dict[str, str] = field(default_factory=dict)


def load_bundle(models_dir: Path, arguments: BundleArguments) -> Bundle:
    """Resolve the bento arguments into the models to serve."""
    if arguments.model_source == "store":
        return _from_store(arguments.models)
    if not arguments.models:
        return Bundle(ModelRegistry(models_dir))
    return Bundle(FolderRegistry(resolve_dir_models(models_dir, arguments.models)))


def _from_store(specs: list[str]) -> Bundle:
    if not specs:
        raise BundleError("model_source=store needs the models to package: --arg models=A,B")
    models: dict[str, tuple[ModelManifest, Path]] = {}
    tags: dict[str, str] = {}
    for spec in specs:
        stored = find_model(spec)
        models[stored.manifest.name] = (stored.manifest, stored.path)
        tags[stored.manifest.name] = stored.tag
    return Bundle(FolderRegistry(models), tags)


def resolve_dir_models(models_dir: Path, names: list[str]) -> dict[str, tuple[ModelManifest, Path]]:
    """The manifest and folder of each named model in ``models_dir`` (or the catalog's manifest)."""
    installed = ModelRegistry(models_dir)
    ignored = sorted(set(installed.names()) - set(names))
    if ignored:
        logger.warning(
            "ignoring %s in %s: this bento serves only %s (rebuild it with --arg models=...)",
            ", ".join(ignored),
            models_dir,
            ", ".join(names),
        )
    models: dict[str, tuple[ModelManifest, Path]] = {}
    for name in names:
        if installed.has_model(name):
            models[name] = (installed.get_manifest(name), installed.get_model_path(name))
            continue
        # Not installed (yet): a build from a fresh clone, or a volume not mounted. The
        # catalog's manifest configures the runner; its weights must be there at serve time.
        entry = load_catalog().get(name)
        if entry is None:
            raise BundleError(
                f"model {name!r} is not installed in {models_dir} and not in the catalog: "
                f"install it (or at least its theo.yaml) in {models_dir / name} before building"
            )
        logger.warning(
            "model %s is not installed in %s; its runner needs %s when the server starts",
            name,
            models_dir,
            models_dir / name,
        )
        models[name] = (entry.manifest, models_dir / name)
    return models
