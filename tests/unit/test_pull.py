"""theo pull, for real: PyPI wheels, local folders, and the Hugging Face cache (offline).

The weights are the real ones from models/ (hard-linked into temporary folders). The
Hub path runs the `theo` executable in a subprocess with HF_HUB_OFFLINE=1 against an
HF cache laid out as huggingface_hub writes it (blobs named by their hash, snapshot
symlinks, refs/main), so huggingface_hub resolves it with no network.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from tests.conftest import MODELS_DIR, REPO_ROOT
from theo.catalog import load_catalog
from theo.cli import main
from theo.manifest import MANIFEST_FILENAME, load_manifest
from theo.model_folder import (
    REQUIRED_FILES,
    VOCABULARY_FILES,
    ModelFolderError,
    derive_manifest,
)
from theo.registry import ModelRegistry

TINY = "faster-whisper-tiny.en"
BASE = "faster-whisper-base"
TINY_REPO = "Systran/faster-whisper-tiny.en"
TINY_ENTRY = load_catalog().models[TINY]
assert TINY_ENTRY.source.huggingface is not None
TINY_COMMIT = TINY_ENTRY.source.huggingface.revision or "0" * 40
THEO = Path(sys.executable).parent / "theo"
WEIGHTS = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt", "vocabulary.json")


@pytest.fixture(scope="module", autouse=True)
def _real_models_installed() -> None:
    missing = [m for m in (TINY, BASE) if not (MODELS_DIR / m / "model.bin").is_file()]
    if missing:
        pytest.fail(f"models not installed: {missing}; run `make models` first")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def link(source: Path, target: Path) -> None:
    """Hard-link (no 75 MB copy) when the filesystem allows, else copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def weights_folder(folder: Path, model: str = TINY) -> Path:
    """A bare CTranslate2 folder (no theo.yaml) with the real weights of ``model``."""
    folder.mkdir(parents=True)
    for name in WEIGHTS:
        if (MODELS_DIR / model / name).is_file():
            link(MODELS_DIR / model / name, folder / name)
    return folder


def leftovers(models_dir: Path) -> list[str]:
    """Hidden folders a pull may leave (the `.locks` folder is expected)."""
    return sorted(p.name for p in models_dir.iterdir() if p.name.startswith(".") and p.is_dir())


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def fake_hf_cache(
    hf_home: Path,
    repo: str = TINY_REPO,
    model: str = TINY,
    commit: str = TINY_COMMIT,
    fifo_for: str | None = None,
) -> Path:
    """Lay ``model``'s files out as huggingface_hub caches ``repo`` at ``commit``.

    model.bin is an LFS file (blob named by its sha256), the rest are plain git files
    (blob named by the git blob sha1). ``fifo_for`` makes that file's blob a named
    pipe, so a test controls exactly how far a copy of it gets.
    """
    storage = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    for folder in (storage / "blobs", storage / "refs", snapshot):
        folder.mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(commit)
    for name in WEIGHTS:
        source = MODELS_DIR / model / name
        if not source.is_file():
            continue
        data = source.read_bytes()
        etag = hashlib.sha256(data).hexdigest() if name == "model.bin" else git_blob_sha1(data)
        blob = storage / "blobs" / etag
        if name == fifo_for:
            os.mkfifo(blob)
        elif not blob.exists():
            link(source, blob)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", etag))
    return snapshot


def theo_pull(
    *args: str, hf_home: Path, models_dir: Path, wait: bool = True
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    """Run the real `theo pull` offline against the HF cache in ``hf_home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THEO_", "HF_"))}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    command = [str(THEO), "pull", *args, "--models-dir", str(models_dir)]
    if not wait:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


# --- PyPI ----------------------------------------------------------------------------


def test_pull_from_pypi(tmp_path: Path) -> None:
    models = tmp_path / "models"

    result = run("pull", TINY, "--source", "pypi", "--models-dir", str(models))

    assert result.exit_code == 0, result.output
    assert f"{TINY} installed at {models / TINY} (from PyPI)" in result.output
    registry = ModelRegistry(models)
    assert registry.names() == [TINY]
    assert registry.get_manifest(TINY) == TINY_ENTRY.manifest
    pypi = TINY_ENTRY.source.pypi
    assert pypi is not None
    for name, spec in pypi.files.items():
        assert sha256(models / TINY / name) == spec.sha256
        assert sha256(models / TINY / name) == sha256(MODELS_DIR / TINY / name)
    assert leftovers(models) == [".locks"]

    again = run("pull", TINY, "--models-dir", str(models))
    assert again.exit_code == 0
    assert "is already installed" in again.output


# --- local folders -------------------------------------------------------------------


def test_install_english_only_folder(tmp_path: Path) -> None:
    folder = weights_folder(tmp_path / "ct2-tiny")
    models = tmp_path / "models"

    result = run("pull", str(folder), "--name", "my-tiny", "--models-dir", str(models))

    assert result.exit_code == 0, result.output
    assert f"my-tiny installed at {models / 'my-tiny'} (from folder {folder})" in result.output
    manifest = ModelRegistry(models).get_manifest("my-tiny")
    assert manifest.capabilities.languages == ["en"]
    assert manifest.capabilities.translation is False
    assert manifest.capabilities.language_detection is False
    assert manifest.engine_config.device == "cpu"
    for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"):
        assert sha256(models / "my-tiny" / name) == sha256(folder / name)
    assert not (models / "my-tiny" / "model.bin").samefile(folder / "model.bin")  # a copy
    assert leftovers(models) == [".locks"]


def test_install_multilingual_folder_named_after_it(tmp_path: Path) -> None:
    folder = weights_folder(tmp_path / "whisper-base-ct2", model=BASE)
    models = tmp_path / "models"

    result = run("pull", str(folder), "--models-dir", str(models))

    assert result.exit_code == 0, result.output
    manifest = load_manifest(models / "whisper-base-ct2" / MANIFEST_FILENAME)
    assert manifest.name == "whisper-base-ct2"
    caps = manifest.capabilities
    assert caps.translation is True and caps.language_detection is True
    assert len(caps.languages) == 99  # Whisper v1/v2: no Cantonese
    assert {"en", "fr", "de", "zh"} <= set(caps.languages) and "yue" not in caps.languages
    assert caps.languages == load_catalog().models[BASE].manifest.capabilities.languages


def test_install_folder_with_a_manifest_file(tmp_path: Path) -> None:
    folder = weights_folder(tmp_path / "weights")
    custom = TINY_ENTRY.manifest.model_dump(mode="json")
    custom["engine_config"]["beam_size"] = 1
    manifest_file = tmp_path / "custom.yaml"
    manifest_file.write_text(yaml.safe_dump(custom))
    models = tmp_path / "models"

    result = run(
        "pull", str(folder), "--name", "tiny-greedy", "--manifest", str(manifest_file),
        "--models-dir", str(models),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    manifest = ModelRegistry(models).get_manifest("tiny-greedy")  # --name wins over the file
    assert manifest.engine_config.beam_size == 1
    assert manifest.description == TINY_ENTRY.manifest.description


def test_install_folder_keeps_its_own_manifest_and_force_replaces(tmp_path: Path) -> None:
    folder = weights_folder(tmp_path / "weights")
    link(MODELS_DIR / TINY / MANIFEST_FILENAME, folder / MANIFEST_FILENAME)
    models = tmp_path / "models"

    assert run("pull", str(folder), "--models-dir", str(models)).exit_code == 0
    assert ModelRegistry(models).get_manifest(TINY) == load_manifest(folder / MANIFEST_FILENAME)

    (folder / MANIFEST_FILENAME).unlink()  # now derived: a different description
    again = run("pull", str(folder), "--name", TINY, "--models-dir", str(models))
    assert "already installed" in again.output
    result = run("pull", str(folder), "--name", TINY, "--force", "--models-dir", str(models))
    assert result.exit_code == 0, result.output
    assert "Whisper model (English only)" in ModelRegistry(models).get_manifest(TINY).description
    assert leftovers(models) == [".locks"]


def test_install_folder_refuses_to_replace_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    folder = weights_folder(tmp_path / "weights")
    models = tmp_path / "models"
    (models / "mine").mkdir(parents=True)
    (models / "mine" / "notes.txt").write_text("keep me")

    result = run("pull", str(folder), "--name", "mine", "--models-dir", str(models))

    assert result.exit_code == 1
    assert "exists but is not an installed model" in result.output
    assert (models / "mine" / "notes.txt").read_text() == "keep me"


def test_install_of_an_incomplete_folder_installs_nothing(tmp_path: Path) -> None:
    folder = weights_folder(tmp_path / "weights")
    (folder / "vocabulary.txt").unlink()
    models = tmp_path / "models"

    result = run("pull", str(folder), "--name", "broken", "--models-dir", str(models))

    assert result.exit_code == 1
    assert "missing vocabulary.txt or vocabulary.json" in result.output
    assert not (models / "broken").exists()


def test_leftovers_of_other_models_are_not_touched(tmp_path: Path) -> None:
    models = tmp_path / "models"
    # a pull of another model, still running in another process (its name extends ours)
    other = models / ".pull-0123abcd-my-tiny-v2"
    other.mkdir(parents=True)
    stale = models / ".pull-89abcdef-my-tiny"
    stale.mkdir()

    result = run("pull", str(weights_folder(tmp_path / "w")), "--name", "my-tiny",
                 "--models-dir", str(models))  # fmt: skip

    assert result.exit_code == 0, result.output
    assert other.is_dir()
    assert not stale.exists()


def test_derive_manifest_counts_distil_models_as_english_only(tmp_path: Path) -> None:
    folder = weights_folder(tmp_path / "distil", model=BASE)
    manifest = derive_manifest(folder, "my-distil-whisper", origin="somewhere")
    assert manifest.capabilities.languages == ["en"]
    assert manifest.capabilities.translation is False
    with pytest.raises(ModelFolderError, match=r"missing model\.bin"):
        derive_manifest(tmp_path, "x", origin="nowhere")


# --- the Hugging Face Hub, through an offline cache ----------------------------------


def test_hub_repo_from_the_offline_cache(tmp_path: Path) -> None:
    hf_home, models = tmp_path / "hf", tmp_path / "models"
    fake_hf_cache(hf_home)

    done = theo_pull(TINY_REPO, hf_home=hf_home, models_dir=models)

    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 0, done.stdout + done.stderr
    # a catalog repository gets the catalog's name and manifest
    assert f"{TINY} installed at {models / TINY} (from Hugging Face {TINY_REPO})" in done.stdout
    assert ModelRegistry(models).get_manifest(TINY) == TINY_ENTRY.manifest
    for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"):
        assert sha256(models / TINY / name) == sha256(MODELS_DIR / TINY / name)
        assert not (models / TINY / name).is_symlink()
    assert leftovers(models) == [".locks"]


def test_catalog_name_prefers_the_hf_cache(tmp_path: Path) -> None:
    hf_home, models = tmp_path / "hf", tmp_path / "models"
    fake_hf_cache(hf_home)

    done = theo_pull(TINY, hf_home=hf_home, models_dir=models)

    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"(from Hugging Face {TINY_REPO})" in done.stdout  # not a PyPI download
    assert ModelRegistry(models).names() == [TINY]


def test_hub_repo_outside_the_catalog_gets_a_derived_manifest(tmp_path: Path) -> None:
    hf_home, models = tmp_path / "hf", tmp_path / "models"
    fake_hf_cache(hf_home, repo="someorg/whisper-base-ct2", model=BASE, commit="a" * 40)

    done = theo_pull("someorg/whisper-base-ct2", hf_home=hf_home, models_dir=models)

    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = ModelRegistry(models).get_manifest("whisper-base-ct2")
    assert manifest.capabilities.translation is True
    assert "someorg/whisper-base-ct2" in manifest.description


def test_hub_repo_missing_from_the_offline_cache(tmp_path: Path) -> None:
    hf_home, models = tmp_path / "hf", tmp_path / "models"
    hf_home.mkdir()

    done = theo_pull("Systran/faster-whisper-small", hf_home=hf_home, models_dir=models)

    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 1
    assert "Error: Systran/faster-whisper-small is not in the Hugging Face cache" in done.stderr
    assert "HF_HUB_OFFLINE is set" in done.stderr
    assert "Traceback" not in done.stderr
    assert ModelRegistry(models).list_models() == []
    assert leftovers(models) == [".locks"]


def test_hub_blob_that_does_not_match_its_hash_is_refused(tmp_path: Path) -> None:
    hf_home, models = tmp_path / "hf", tmp_path / "models"
    snapshot = fake_hf_cache(hf_home)
    blob = (snapshot / "vocabulary.txt").resolve()
    data = blob.read_bytes()
    blob.unlink()  # a hard link: write a new file, do not change models/
    blob.write_bytes(data.replace(b"the", b"teh", 1))

    done = theo_pull(TINY_REPO, hf_home=hf_home, models_dir=models)

    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 1
    assert f"vocabulary.txt: git hash {git_blob_sha1(blob.read_bytes())}" in done.stderr
    assert f"but the Hub recorded {blob.name}" in done.stderr
    assert ModelRegistry(models).list_models() == []
    assert leftovers(models) == [".locks"]


def test_hub_repo_without_a_tokenizer_is_refused(tmp_path: Path) -> None:
    hf_home, models = tmp_path / "hf", tmp_path / "models"
    snapshot = fake_hf_cache(hf_home, repo="someorg/partial", commit="b" * 40)
    (snapshot / "tokenizer.json").unlink()

    done = theo_pull("someorg/partial", hf_home=hf_home, models_dir=models)

    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 1
    assert "someorg/partial is not a CTranslate2 Whisper model: missing tokenizer.json" in (
        done.stderr
    )
    assert ModelRegistry(models).list_models() == []
    assert leftovers(models) == [".locks"]


def _open_fifo_writer(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> int:
    """Open the FIFO for writing once the pull opens it for reading."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            if process.poll() is not None:
                pytest.fail(f"theo pull exited early: {process.communicate()[0]}")
            time.sleep(0.01)
            continue
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return fd
    pytest.fail("theo pull never started copying model.bin")


def test_interrupted_hub_pull_leaves_nothing_loadable_and_a_rerun_succeeds(
    tmp_path: Path,
) -> None:
    hf_home, models = tmp_path / "hf", tmp_path / "models"
    snapshot = fake_hf_cache(hf_home, fifo_for="model.bin")
    fifo = (snapshot / "model.bin").resolve()
    weights = (MODELS_DIR / TINY / "model.bin").read_bytes()

    process = theo_pull(TINY_REPO, hf_home=hf_home, models_dir=models, wait=False)
    assert isinstance(process, subprocess.Popen)
    try:
        fd = _open_fifo_writer(fifo, process)
        half = len(weights) // 2
        view = memoryview(weights)[:half]
        while view:  # blocks until the pull has read most of it
            view = view[os.write(fd, view) :]
        staged: list[Path] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            staged = list(models.glob(f".pull-*-{TINY}/model.bin"))
            if staged and staged[0].stat().st_size >= half - 1024 * 1024:
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # mid-copy of model.bin: no cleanup runs
        process.wait(timeout=30)
        os.close(fd)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == -signal.SIGKILL
    assert len(staged) == 1 and 0 < staged[0].stat().st_size < len(weights)
    assert not (staged[0].parent / MANIFEST_FILENAME).exists()
    assert ModelRegistry(models).list_models() == []
    assert not (models / TINY).exists()

    fifo.unlink()  # the download "resumes": the blob is complete now
    link(MODELS_DIR / TINY / "model.bin", fifo)
    done = theo_pull(TINY_REPO, hf_home=hf_home, models_dir=models)

    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ModelRegistry(models).names() == [TINY]
    assert sha256(models / TINY / "model.bin") == sha256(MODELS_DIR / TINY / "model.bin")
    assert leftovers(models) == [".locks"]  # the interrupted pull's folder is gone


# --- the catalog ---------------------------------------------------------------------


def test_catalog_entries_are_consistent() -> None:
    catalog = load_catalog()
    assert {
        "faster-whisper-large-v3",
        "faster-distil-whisper-large-v3",
        "faster-whisper-small.en",
    } <= set(catalog.models)
    for name, entry in catalog.models.items():
        caps = entry.manifest.capabilities
        hf = entry.source.huggingface
        english_only = name.endswith(".en") or "distil" in name
        if english_only:
            assert caps.languages == ["en"], name
        if english_only or name.endswith("turbo"):
            assert caps.translation is False, name
        else:
            assert caps.translation is True and len(caps.languages) >= 99, name
        if hf is not None:
            assert hf.repo.split("/")[1] == name, name
            if "large-v3" in name:  # 128 mel bins come from preprocessor_config.json
                assert "preprocessor_config.json" in hf.files, name
        if entry.source.pypi is not None:
            for file in entry.source.pypi.files.values():
                assert file.size is not None and file.sha256 is not None, name


def test_pypi_sources_provide_every_file_a_model_needs() -> None:
    for name, entry in load_catalog().models.items():
        if entry.source.pypi is None:
            continue
        files = set(entry.source.pypi.files)
        assert set(REQUIRED_FILES) <= files, name
        assert files & set(VOCABULARY_FILES), name
        wheel_packages = {w.package.replace("-", "_") for w in entry.source.pypi.wheels}
        for spec in entry.source.pypi.files.values():
            for member in spec.members:
                assert member.split("/", 1)[0] in wheel_packages, (name, member)


def test_small_is_a_multilingual_cpu_model_outside_the_defaults() -> None:
    catalog = load_catalog()
    small, base = catalog.models["faster-whisper-small"], catalog.models[BASE]
    assert small.source.huggingface is not None
    assert small.source.huggingface.repo == "Systran/faster-whisper-small"
    assert small.manifest.capabilities == base.manifest.capabilities
    assert small.manifest.engine_config.device == "cpu"
    assert small.manifest.engine_config.compute_type == "int8"
    assert small.manifest.resources.memory_mb > base.manifest.resources.memory_mb
    assert not small.manifest.resources.gpu_required
    defaults = re.search(r"^DEFAULT_MODELS\s*:=(.*)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    assert defaults is not None
    assert "faster-whisper-small" not in defaults.group(1).split()  # ~250 MB more for CI
