"""The atomic install: stage a model in a hidden folder, check it, rename it into place.

Hidden folders (``.pull-``, ``.old-``, ``.rm-`` + random + name) are invisible to the
registry, which ignores dot-folders; the next pull of the same name removes any that an
interrupted pull or ``rm`` left behind.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from theo.catalog import ModelFile
from theo.manifest import MANIFEST_FILENAME, ModelManifest, validate_model_name
from theo.model_folder import ModelFolderError, check_model_folder
from theo.pull.files import sha256_file, synced_file

logger = logging.getLogger(__name__)


class PullError(RuntimeError):
    """A model could not be installed; nothing was left in the models folder."""


@dataclass(frozen=True)
class PullResult:
    """What a pull did: ``installed`` is False when the model was already there."""

    name: str
    path: Path
    source: str
    installed: bool


def install(
    name: str,
    models_dir: Path,
    *,
    force: bool,
    source: str,
    fill: Callable[[Path], ModelManifest],
) -> PullResult:
    """Run ``fill`` in a hidden staging folder, check the result, rename it into place.

    ``fill`` writes the model's files into the folder it is given and returns the
    manifest; ``theo.yaml`` is written last, under ``name``.
    """
    try:
        validate_model_name(name)
    except ValueError as exc:
        raise PullError(f"{exc}; choose another name with --name") from None
    destination = models_dir / name
    if not force and is_installed(destination):
        return PullResult(name, destination, source, installed=False)
    models_dir.mkdir(parents=True, exist_ok=True)
    with _pull_lock(models_dir, name):
        if not force and is_installed(destination):  # another pull finished meanwhile
            return PullResult(name, destination, source, installed=False)
        if destination.exists() and not force:
            raise PullError(
                f"{destination} exists but is not an installed model (no {MANIFEST_FILENAME}); "
                "remove it or pass --force to replace it."
            )
        _remove_leftovers(models_dir, name)
        staging = _hidden(destination, "pull")
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
            with synced_file(staging / MANIFEST_FILENAME) as out:
                out.write(manifest.to_yaml().encode("utf-8"))
            _sync_folder(staging)
            _move_into_place(staging, destination)
            _sync_folder(models_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return PullResult(name, destination, source, installed=True)


def is_installed(destination: Path) -> bool:
    return (destination / MANIFEST_FILENAME).is_file()


def check_files(folder: Path, expected: Mapping[str, ModelFile]) -> None:
    """Raise :class:`PullError` unless each file has the expected size and sha256."""
    for filename, spec in expected.items():
        path = folder / filename
        if not path.is_file():
            raise PullError(f"{path.name}: missing")
        size = path.stat().st_size
        if size == 0:
            raise PullError(f"{path.name}: empty")
        if spec.size is not None and size != spec.size:
            raise PullError(f"{path.name}: size {size} bytes, expected {spec.size}")
        if spec.sha256 is not None and (actual := sha256_file(path)) != spec.sha256:
            raise PullError(f"{path.name}: sha256 {actual}, expected {spec.sha256}")


def remove_model(path: Path) -> None:
    """Delete an installed model's folder."""
    # Hide it first: a half-deleted folder must never look like a model.
    hidden = _hidden(path, "rm")
    os.rename(path, hidden)
    shutil.rmtree(hidden)


def _hidden(destination: Path, purpose: Literal["pull", "old", "rm"]) -> Path:
    """A fresh hidden folder name next to ``destination``, as _remove_leftovers knows them."""
    return destination.with_name(f".{purpose}-{secrets.token_hex(4)}-{destination.name}")


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
        retired = _hidden(destination, "old")
        os.rename(destination, retired)
        os.rename(staging, destination)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, destination)


def _sync_folder(folder: Path) -> None:
    """fsync a folder so the files and renames in it survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
