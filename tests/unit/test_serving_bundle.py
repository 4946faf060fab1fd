"""theo/serving/bundle.py: which models a bento serves, from its arguments."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.unit.conftest import ENGLISH_MODEL, MULTILINGUAL_MODEL, manifest_data, write_manifest
from theo.serving.bundle import BundleArguments, BundleError, FolderRegistry, load_bundle


def test_arguments_accept_the_cli_comma_form_and_a_list() -> None:
    assert BundleArguments.model_validate({"models": "a, b,,c"}).models == ["a", "b", "c"]
    assert BundleArguments.model_validate({"models": ["a", "b"]}).models == ["a", "b"]
    assert BundleArguments().model_source == "dir"
    with pytest.raises(ValidationError):
        BundleArguments.model_validate({"model_source": "s3"})
    with pytest.raises(ValidationError):
        BundleArguments.model_validate({"modles": "a"})  # a typo is an error, not ignored


def test_without_models_every_installed_model_is_served(models_dir: Path) -> None:
    bundle = load_bundle(models_dir, BundleArguments())
    assert bundle.registry.names() == sorted([ENGLISH_MODEL, MULTILINGUAL_MODEL])
    assert bundle.stored_tags == {}


def test_declared_models_are_served_and_others_ignored(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_manifest(models_dir, "extra", manifest_data("extra"))
    with caplog.at_level(logging.WARNING):
        bundle = load_bundle(models_dir, BundleArguments(models=[ENGLISH_MODEL]))
    assert bundle.registry.names() == [ENGLISH_MODEL]
    assert bundle.registry.get_model_path(ENGLISH_MODEL) == models_dir / ENGLISH_MODEL
    assert "ignoring extra" in caplog.text and MULTILINGUAL_MODEL in caplog.text


def test_a_declared_catalog_model_not_installed_uses_the_catalog_manifest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A build from a fresh clone: nothing installed, the runners still exist.
    with caplog.at_level(logging.WARNING):
        bundle = load_bundle(tmp_path, BundleArguments(models=["faster-whisper-base"]))
    manifest = bundle.registry.get_manifest("faster-whisper-base")
    assert manifest.capabilities.translation is True
    assert bundle.registry.get_model_path("faster-whisper-base") == tmp_path / "faster-whisper-base"
    assert "not installed" in caplog.text


def test_a_declared_model_neither_installed_nor_in_the_catalog_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no-such-model"):
        load_bundle(tmp_path, BundleArguments(models=["no-such-model"]))


def test_store_source_needs_model_names(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="--arg models="):
        load_bundle(tmp_path, BundleArguments(model_source="store"))


def test_folder_registry_serves_the_given_folders(tmp_path: Path) -> None:
    folder = write_manifest(tmp_path, "anywhere", manifest_data("alpha"))
    manifest = load_bundle(tmp_path, BundleArguments()).registry.get_manifest("alpha")
    registry = FolderRegistry({"alpha": (manifest, folder)})
    registry.refresh()  # a refresh keeps the given folders, it does not scan
    assert registry.names() == ["alpha"]
    assert registry.get_model_path("alpha") == folder
