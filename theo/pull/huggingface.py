"""Models from a Hugging Face repository, copied out of the HF cache with every hash checked."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from theo.catalog import HF_REPO_PATTERN, HuggingFaceSource
from theo.manifest import ModelManifest
from theo.model_folder import ModelFolderError, check_model_folder
from theo.pull import hub_download
from theo.pull.files import copy_file
from theo.pull.install import PullError, check_files


def is_huggingface_repo(text: str) -> bool:
    """``Org/name`` (one slash, no path syntax) names a Hugging Face repository."""
    return re.fullmatch(HF_REPO_PATTERN, text) is not None


def hub_cache_complete(source: HuggingFaceSource) -> bool:
    """True when the HF cache already holds every file the model needs (no download)."""
    snapshot = hub_download.cached_snapshot(source.repo, source.revision)
    if snapshot is None:
        return False
    try:
        check_model_folder(snapshot)
    except ModelFolderError:
        return False
    return all((snapshot / filename).is_file() for filename in source.files)


def fill_from_hub(
    source: HuggingFaceSource, staging: Path, manifest_for: Callable[[Path], ModelManifest]
) -> ModelManifest:
    """Copy the repository's snapshot from the HF cache, checking every file's hash."""
    try:
        snapshot = hub_download.download_snapshot(source.repo, source.revision)
    except hub_download.HubError as exc:
        raise PullError(str(exc)) from None
    files = hub_download.snapshot_files(snapshot)
    if not files:
        raise PullError(f"the snapshot of {source.repo} at {snapshot} holds no model files")
    for item in files:
        target = staging / item.name
        target.parent.mkdir(parents=True, exist_ok=True)
        copied = copy_file(item.path, target, git_sha1=item.git_sha1 is not None)
        for kind, recorded, actual in (
            ("sha256", item.sha256, copied.sha256),
            ("git hash", item.git_sha1, copied.git_sha1),
        ):
            if recorded is not None and actual != recorded:
                raise PullError(
                    f"{item.name}: {kind} {actual}, but the Hub recorded {recorded} "
                    f"(corrupt cache blob {item.path.resolve()}: delete it and pull again)"
                )
    check_files(staging, source.files)
    return manifest_for(staging)
