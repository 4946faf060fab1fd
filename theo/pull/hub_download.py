"""Fetch a CTranslate2 Whisper repository from the Hugging Face Hub, or from its local cache.

Downloads go through ``huggingface_hub`` into the usual HF cache (``HF_HOME``), so
``HF_HUB_OFFLINE=1`` and a cache filled earlier (by faster-whisper, ``hf download``, or
another machine) work without any network. The cache names every blob after the hash the
Hub recorded for it (the sha256 of an LFS file, the git blob sha1 of any other file), so
each file can be checked without asking the Hub again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# The files faster-whisper itself downloads from these repositories.
ALLOW_PATTERNS = [
    "config.json",
    "preprocessor_config.json",
    "model.bin",
    "tokenizer.json",
    "vocabulary.*",
]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")


class HubError(RuntimeError):
    """The repository could not be fetched; the message says why and what to do."""


@dataclass(frozen=True)
class HubFile:
    """One file of a downloaded snapshot and the hash the Hub recorded for it."""

    name: str
    path: Path
    sha256: str | None = None
    git_sha1: str | None = None


def download_snapshot(repo: str, revision: str | None, *, local_only: bool = False) -> Path:
    """The snapshot folder of ``repo`` in the HF cache, downloading what is missing.

    Shows huggingface_hub's progress bar while downloading. With ``local_only`` (or
    ``HF_HUB_OFFLINE=1``) nothing is downloaded and only the cache is used.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo}@{revision}" if revision else repo
    try:
        folder = snapshot_download(
            repo, revision=revision, allow_patterns=ALLOW_PATTERNS, local_files_only=local_only
        )
    except RevisionNotFoundError:
        raise HubError(f"Hugging Face repository {repo} has no revision '{revision}'.") from None
    except RepositoryNotFoundError:
        raise HubError(
            f"Hugging Face repository {repo} was not found (or it is private or gated: "
            "log in with `hf auth login`)."
        ) from None
    except LocalEntryNotFoundError as exc:
        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
        # A subclass (e.g. an incomplete cached snapshot) has a more precise message.
        detail = "" if type(exc) is LocalEntryNotFoundError else f" {exc}"
        if exc.__cause__ is not None and not constants.HF_HUB_OFFLINE:
            detail += f" ({type(exc.__cause__).__name__}: {exc.__cause__})"
        raise HubError(
            f"{where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the Hub "
            f"cannot be reached{offline}.{detail}"
        ) from None
    except (OSError, ValueError) as exc:
        raise HubError(f"cannot download {where} from the Hugging Face Hub: {exc}") from None
    return Path(folder)


def cached_snapshot(repo: str, revision: str | None) -> Path | None:
    """The snapshot folder of ``repo`` if the HF cache already holds one, else ``None``."""
    try:
        return download_snapshot(repo, revision, local_only=True)
    except HubError:
        return None


def snapshot_files(snapshot: Path) -> list[HubFile]:
    """Every file of a snapshot, with the Hub's hash when the cache layout records it."""
    files = []
    for path in sorted(snapshot.rglob("*")):
        relative = path.relative_to(snapshot)
        if path.is_dir() or any(part.startswith(".") for part in relative.parts):
            continue
        # Snapshot entries are symlinks to blobs/<etag>; a copied cache (no symlinks) has no hash.
        etag = path.resolve().name if path.is_symlink() else ""
        files.append(
            HubFile(
                name=relative.as_posix(),
                path=path,
                sha256=etag if _SHA256.fullmatch(etag) else None,
                git_sha1=etag if _GIT_SHA1.fullmatch(etag) else None,
            )
        )
    return files
