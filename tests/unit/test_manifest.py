"""theo/manifest.py: parsing, validation and the error messages users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.conftest import manifest_data, write_manifest
from theo.manifest import (
    ManifestError,
    ModelManifest,
    load_manifest,
    parse_manifest,
    validate_model_name,
)


def test_valid_manifest_round_trips(tmp_path: Path) -> None:
    data = manifest_data("round-trip", languages=["en", "fr"], translation=True)
    data["resources"] = {"memory_mb": 900, "load_time_seconds": 3.5}
    data["engine_config"].update({"num_workers": 3, "max_batch_size": 4, "batching": False})
    folder = write_manifest(tmp_path, "round-trip", data)

    manifest = load_manifest(folder / "theo.yaml")

    assert manifest.name == "round-trip"
    assert manifest.capabilities.languages == ["en", "fr"]
    assert manifest.capabilities.translation is True
    assert manifest.resources.memory_mb == 900
    assert manifest.engine_config.beam_size == 2
    assert manifest.engine_config.num_workers == 3
    assert manifest.engine_config.batching is False
    again = tmp_path / "again.yaml"
    again.write_text(manifest.to_yaml(), encoding="utf-8")
    assert load_manifest(again) == manifest


def test_defaults_fill_omitted_sections(tmp_path: Path) -> None:
    folder = write_manifest(tmp_path, "minimal", "name: minimal\n")
    manifest = load_manifest(folder / "theo.yaml")
    assert manifest == ModelManifest(name="minimal")
    assert manifest.engine == "faster-whisper"
    assert manifest.capabilities.translation is False


def test_error_names_file_and_nested_field(tmp_path: Path) -> None:
    data = manifest_data("bad-beam")
    data["engine_config"]["beam_size"] = 0
    path = write_manifest(tmp_path, "bad-beam", data) / "theo.yaml"

    with pytest.raises(ManifestError) as excinfo:
        load_manifest(path)

    message = str(excinfo.value)
    assert str(path) in message
    assert "engine_config.beam_size" in message


def test_error_names_every_bad_field(tmp_path: Path) -> None:
    data = manifest_data("two-errors")
    data["engine_config"]["device"] = "tpu"
    data["resources"] = {"memory_mb": -1}
    path = write_manifest(tmp_path, "two-errors", data) / "theo.yaml"

    with pytest.raises(ManifestError) as excinfo:
        load_manifest(path)

    assert "engine_config.device" in str(excinfo.value)
    assert "resources.memory_mb" in str(excinfo.value)


def test_missing_name_is_reported(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, "nameless", "version: '1.0'\n") / "theo.yaml"
    with pytest.raises(ManifestError, match=r"name: Field required"):
        load_manifest(path)


@pytest.mark.parametrize(
    "name", ["faster-whisper-tiny.en", "a", "Model_1.2-x", "9b", "whisper.large-v3_int8"]
)
def test_model_name_accepted(name: str) -> None:
    assert validate_model_name(name) == name
    assert parse_manifest({"name": name}, Path("theo.yaml")).name == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a/b",
        "/abs",
        "..",
        "a..b",
        "../../etc/passwd",
        ".hidden",
        "-x",
        "a b",
        "a\\b",
        "x" * 129,
    ],
)
def test_model_name_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="invalid model name"):
        validate_model_name(name)
    with pytest.raises(ManifestError) as excinfo:
        parse_manifest({"name": name}, Path("models/x/theo.yaml"))
    assert "models/x/theo.yaml" in str(excinfo.value)
    assert "name:" in str(excinfo.value)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, "broken", "name: [unclosed\nversion: 1\n") / "theo.yaml"
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(path)
    assert str(path) in str(excinfo.value)
    assert "invalid YAML" in str(excinfo.value)


def test_yaml_object_tags_are_not_constructed(tmp_path: Path) -> None:
    text = "name: !!python/object/apply:os.system ['true']\n"
    path = write_manifest(tmp_path, "tagged", text) / "theo.yaml"
    with pytest.raises(ManifestError, match="invalid YAML"):
        load_manifest(path)


@pytest.mark.parametrize("text", ["- name\n- other\n", "just a string\n", "", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = write_manifest(tmp_path, "not-a-mapping", text) / "theo.yaml"
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(path)
    assert str(path) in str(excinfo.value)
    assert "mapping" in str(excinfo.value)


@pytest.mark.parametrize(
    ("section", "field"),
    [(None, "colour"), ("capabilities", "diarization"), ("engine_config", "beamsize")],
)
def test_unknown_keys_rejected(tmp_path: Path, section: str | None, field: str) -> None:
    data = manifest_data("typo")
    if section is None:
        data[field] = "x"
    else:
        data[section][field] = 1
    path = write_manifest(tmp_path, "typo", data) / "theo.yaml"

    with pytest.raises(ManifestError) as excinfo:
        load_manifest(path)

    expected = field if section is None else f"{section}.{field}"
    assert f"{expected}:" in str(excinfo.value)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "theo.yaml"
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(path)
    assert str(path) in str(excinfo.value)
    assert "cannot read" in str(excinfo.value)


def test_manifest_is_immutable() -> None:
    manifest = ModelManifest(name="frozen")
    with pytest.raises(ValueError):
        manifest.name = "other"
