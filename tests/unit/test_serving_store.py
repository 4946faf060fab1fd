"""theo/serving/store.py: model folders in the BentoML model store.

Each test runs in a child process with its own BENTOML_HOME (BentoML reads it once).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.unit.conftest import manifest_data, write_manifest
from theo.serving.store import StoreError, store_name

CHILD = """
import json, sys
from pathlib import Path
from theo.serving.store import find_model, import_model
action, arg = sys.argv[1], sys.argv[2]
if action == "import":
    stored = import_model(Path(arg), json.loads(sys.argv[3]))
else:
    stored = find_model(arg)
print(json.dumps({"tag": stored.tag, "path": str(stored.path), "created": stored.created,
                  "device": stored.manifest.engine_config.device}))
"""


def run_store(home: Path, *args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        env={**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    folder = write_manifest(tmp_path / "models", "Tiny-Model", manifest_data("Tiny-Model"))
    (folder / "model.bin").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    (folder / ".partial").write_text("left over by an interrupted copy")
    return folder


def test_store_name_is_lower_case_and_valid() -> None:
    assert store_name("Faster-Whisper-Tiny.en") == "faster-whisper-tiny.en"
    with pytest.raises(StoreError):
        store_name("x" * 64)


def test_import_copies_the_folder_once_and_find_returns_it(
    tmp_path: Path, model_folder: Path
) -> None:
    home = tmp_path / "bentoml"
    first = run_store(home, "import", str(model_folder), "{}")
    assert first["created"] and first["tag"].startswith("tiny-model:")
    stored = Path(first["path"])
    assert (stored / "model.bin").read_bytes() == b"weights"
    assert (stored / "theo.yaml").is_file() and not (stored / ".partial").exists()

    again = run_store(home, "import", str(model_folder), "{}")
    assert again == {**first, "created": False}  # unchanged content: no new version

    found = run_store(home, "find", "tiny-model")
    assert found["tag"] == first["tag"] and found["path"] == first["path"]


def test_engine_overrides_make_a_new_version_with_the_new_manifest(
    tmp_path: Path, model_folder: Path
) -> None:
    home = tmp_path / "bentoml"
    cpu = run_store(home, "import", str(model_folder), "{}")
    cuda = run_store(home, "import", str(model_folder), '{"device": "cuda"}')
    assert cuda["created"] and cuda["tag"] != cpu["tag"] and cuda["device"] == "cuda"
    assert run_store(home, "find", "Tiny-Model")["tag"] == cuda["tag"]  # latest
    assert run_store(home, "find", cpu["tag"])["device"] == "cpu"  # pinned version


def test_find_names_the_fix_for_a_missing_model(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, "find", "absent"],
        env={**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml")},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode != 0
    assert "not in the BentoML model store" in completed.stderr
    assert "make bento-models" in completed.stderr
