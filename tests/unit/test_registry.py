"""theo/registry.py: discovering installed models in a models folder."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.unit.conftest import (
    ENGLISH_MODEL,
    MULTILINGUAL_MODEL,
    manifest_data,
    write_manifest,
)
from theo.errors import ModelNotFoundError
from theo.registry import ModelRegistry


def test_indexes_models_by_manifest_name(tmp_path: Path) -> None:
    # The folder name is not the model name: the manifest decides.
    folder = write_manifest(tmp_path, "some-folder", manifest_data("alpha"))
    write_manifest(tmp_path, "beta", manifest_data("beta"))

    registry = ModelRegistry(tmp_path)

    assert registry.names() == ["alpha", "beta"]
    assert registry.has_model("alpha")
    assert not registry.has_model("some-folder")
    assert registry.get_model_path("alpha") == folder
    assert registry.get_manifest("alpha").name == "alpha"


def test_list_models_sorted_by_name(registry: ModelRegistry) -> None:
    names = [manifest.name for manifest in registry.list_models()]
    assert names == sorted([ENGLISH_MODEL, MULTILINGUAL_MODEL])
    assert registry.get_manifest(MULTILINGUAL_MODEL).capabilities.translation is True
    assert registry.get_manifest(ENGLISH_MODEL).capabilities.translation is False


def test_folder_without_manifest_is_skipped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_manifest(tmp_path, "good", manifest_data("good"))
    (tmp_path / "weights-only").mkdir()
    (tmp_path / "weights-only" / "model.bin").write_bytes(b"\0")

    with caplog.at_level(logging.WARNING, logger="theo.registry"):
        registry = ModelRegistry(tmp_path)

    assert registry.names() == ["good"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "weights-only" in warnings[0].getMessage()
    assert "theo.yaml" in warnings[0].getMessage()


def test_invalid_manifest_is_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_manifest(tmp_path, "good", manifest_data("good"))
    bad = manifest_data("bad")
    bad["engine_config"]["beam_size"] = 0
    bad_path = write_manifest(tmp_path, "bad", bad) / "theo.yaml"
    write_manifest(tmp_path, "broken-yaml", "name: [\n")

    with caplog.at_level(logging.ERROR, logger="theo.registry"):
        registry = ModelRegistry(tmp_path)

    assert registry.names() == ["good"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert any(str(bad_path) in m and "engine_config.beam_size" in m for m in errors)
    assert any("broken-yaml" in m and "invalid YAML" in m for m in errors)


def test_dot_folders_are_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # An unfinished `theo pull` leaves a hidden temporary folder, possibly with a manifest.
    write_manifest(tmp_path, ".pull-tmp-123", manifest_data("half-pulled"))
    (tmp_path / ".cache").mkdir()

    with caplog.at_level(logging.WARNING, logger="theo.registry"):
        registry = ModelRegistry(tmp_path)

    assert registry.names() == []
    assert caplog.records == []


def test_files_in_models_dir_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("models go here\n")
    write_manifest(tmp_path, "only", manifest_data("only"))
    assert ModelRegistry(tmp_path).names() == ["only"]


def test_duplicate_names_keep_the_first_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = write_manifest(tmp_path, "a-copy", manifest_data("same"))
    write_manifest(tmp_path, "b-copy", manifest_data("same"))

    with caplog.at_level(logging.ERROR, logger="theo.registry"):
        registry = ModelRegistry(tmp_path)

    assert registry.names() == ["same"]
    assert registry.get_model_path("same") == first
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "b-copy" in errors[0]
    assert "same" in errors[0]


def test_missing_models_dir_gives_empty_registry(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "does-not-exist")
    assert registry.names() == []
    assert registry.list_models() == []


def test_refresh_picks_up_new_and_removed_models(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    assert registry.names() == []
    write_manifest(tmp_path, "late", manifest_data("late"))
    registry.refresh()
    assert registry.names() == ["late"]
    (tmp_path / "late" / "theo.yaml").unlink()
    registry.refresh()
    assert not registry.has_model("late")


@pytest.mark.parametrize("lookup", ["get_manifest", "get_model_path"])
def test_unknown_model_lists_installed(registry: ModelRegistry, lookup: str) -> None:
    with pytest.raises(ModelNotFoundError) as excinfo:
        getattr(registry, lookup)("nope")

    error = excinfo.value
    assert error.status_code == 404
    assert error.param == "model"
    assert error.code == "model_not_found"
    assert "'nope'" in error.message
    assert ENGLISH_MODEL in error.message
    assert MULTILINGUAL_MODEL in error.message


def test_unknown_model_with_nothing_installed(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="Installed models: none"):
        ModelRegistry(tmp_path).get_manifest("anything")
