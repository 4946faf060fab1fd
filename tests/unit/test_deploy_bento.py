"""bentofile.yaml, its CUDA variant and the image template: what `bentoml build` reads."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml
from bentoml._internal.bento.build_config import BentoBuildConfig

from tests.conftest import REPO_ROOT
from theo.serving.bundle import BundleArguments

BENTOFILE = REPO_ROOT / "bentofile.yaml"
GPU_BENTOFILE = REPO_ROOT / "deploy" / "bentofile.gpu.yaml"
TEMPLATE = REPO_ROOT / "deploy" / "docker" / "Dockerfile.template"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def test_bentofiles_are_valid_build_configs() -> None:
    for path in (BENTOFILE, GPU_BENTOFILE):
        config = BentoBuildConfig.from_file(str(path))  # BentoML's own schema (no unknown keys)
        assert config.service == "service:Theo"
        assert config.python.lock_packages is False  # `bentoml build` needs no network
        assert config.docker.python_version == "3.11"
        assert config.docker.dockerfile_template == "deploy/docker/Dockerfile.template"
        assert config.include is not None
        assert {"service.py", "theo/**/*.py", "theo/catalog.yaml"} <= set(config.include)
        assert not any(p.startswith(("tests", "models", ".venv")) for p in config.include)
        arguments = BundleArguments.model_validate(config.args)
        assert arguments.model_source == "dir"
        assert arguments.models == ["faster-whisper-tiny.en", "faster-whisper-base"]


def test_bento_packages_are_the_project_dependencies() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    expected = [d for d in project["project"]["dependencies"] if not d.startswith("bentoml")]
    # BentoML adds its own pinned version; pip lets `theo pull` run inside the image.
    assert sorted(load(BENTOFILE)["python"]["packages"]) == sorted([*expected, "pip"])


def test_gpu_bentofile_differs_only_in_name_and_cuda() -> None:
    cpu, gpu = load(BENTOFILE), load(GPU_BENTOFILE)
    assert gpu["name"] == "theo-gpu" and gpu["docker"].pop("cuda_version") == "12.6.3"
    for key in ("name", "description"):
        cpu.pop(key), gpu.pop(key)
    assert cpu == gpu


def test_image_template_adds_a_health_check_and_keeps_the_non_root_user() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert text.startswith("{% extends bento_base_template %}")
    assert "HEALTHCHECK" in text and "/health" in text
    # BentoML's block ends with `USER bentoml` and the entrypoint: it must stay last.
    assert text.rstrip().endswith("{{ super() }}\n{% endblock %}".rstrip())
