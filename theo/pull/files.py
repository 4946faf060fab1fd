"""Writing model files durably: chunked copies that hash as they go, fsync'd before use."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import click

CHUNK = 1024 * 1024
_PROGRESS_MIN_BYTES = 16 * CHUNK  # no progress bar for small files


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def synced_file(path: Path) -> Iterator[BinaryIO]:
    """Open ``path`` for writing; on success, flush and fsync it before closing."""
    with path.open("wb") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class Copied:
    """What :func:`copy_file` wrote: its size and hashes."""

    size: int
    sha256: str
    git_sha1: str | None


def copy_file(source: Path, target: Path, *, git_sha1: bool = False) -> Copied:
    """Copy in chunks (with a progress bar for big files), hashing on the way."""
    length = source.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(f"blob {length}\0".encode()) if git_sha1 else None
    size = 0
    with source.open("rb") as src, _progress(source, length) as bar, synced_file(target) as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            sha256.update(chunk)
            if sha1 is not None:
                sha1.update(chunk)
            size += len(chunk)
            bar(len(chunk))
    return Copied(size, sha256.hexdigest(), sha1.hexdigest() if sha1 is not None else None)


@contextmanager
def _progress(source: Path, length: int) -> Iterator[Callable[[int], None]]:
    if length < _PROGRESS_MIN_BYTES:
        yield lambda _: None
        return
    with click.progressbar(
        length=length, label=f"copying {source.name}", file=sys.stderr, show_pos=False
    ) as bar:
        yield bar.update
