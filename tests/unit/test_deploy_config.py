"""deploy/: the Kubernetes manifests (generated, schema-checked) and the BentoCloud config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from bentoml._internal.cloud.schemas.schemasv2 import CreateDeploymentSchema
from bentoml._internal.utils.cattr import bentoml_cattr
from kubernetes_validate import ValidationError, validate

from tests.conftest import REPO_ROOT
from theo.deploy.kubernetes import KubernetesOptions, build_manifests, main, render
from theo.manifest import ModelManifest
from theo.serving.bundle import resolve_dir_models
from theo.serving.runner import runner_service_name

K8S_DIR = REPO_ROOT / "deploy" / "kubernetes"
BENTOCLOUD = REPO_ROOT / "deploy" / "bentocloud" / "deployment.yaml"
KUBERNETES_VERSION = "1.30.0"
DEFAULT_MODELS = ["faster-whisper-tiny.en", "faster-whisper-base"]


def k8s_validate(document: dict[str, Any]) -> None:
    validate(document, KUBERNETES_VERSION, strict=True)


def default_manifests(tmp_path: Path) -> list[ModelManifest]:
    return [m for m, _ in resolve_dir_models(tmp_path, DEFAULT_MODELS).values()]


@pytest.mark.parametrize(
    ("filename", "argv"),
    [
        ("theo.yaml", ["--image", "theo:latest"]),
        ("theo-bundled.yaml", ["--image", "theo-bundled:latest", "--bundled"]),
    ],
)
def test_shipped_manifests_are_generated_and_valid(
    filename: str, argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regenerated from the catalog's manifests (an empty models folder): `make k8s` output.
    assert main([*argv, "--models-dir", str(tmp_path)]) == 0
    shipped = (K8S_DIR / filename).read_text(encoding="utf-8")
    assert capsys.readouterr().out == shipped, f"run `make k8s` to regenerate {filename}"
    documents = [d for d in yaml.safe_load_all(shipped) if d]
    assert len(documents) >= 9
    for document in documents:
        k8s_validate(document)


def test_schema_check_rejects_a_broken_object() -> None:
    with pytest.raises(ValidationError):
        k8s_validate(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "x"},
                "spec": {"replicas": "one", "selector": {}, "template": {}},
            }
        )
    with pytest.raises(ValidationError):  # strict: unknown fields are errors
        k8s_validate(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "x"},
                "spec": {"ports": [{"port": 80}], "selctor": {}},
            }
        )


def test_each_model_gets_its_own_deployment_with_resources_from_its_manifest(
    tmp_path: Path,
) -> None:
    manifests = default_manifests(tmp_path)
    gpu = manifests[1].model_copy(
        update={"engine_config": manifests[1].engine_config.model_copy(update={"device": "cuda"})}
    )
    objects = build_manifests([manifests[0], gpu], KubernetesOptions(image="theo:1"))
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    autoscalers = {o["metadata"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    assert (
        set(deployments)
        == autoscalers
        == {"theo", "theo-runner-faster-whisper-tiny-en", "theo-runner-faster-whisper-base"}
    )

    tiny = deployments["theo-runner-faster-whisper-tiny-en"]["spec"]["template"]["spec"]
    container = tiny["containers"][0]
    assert container["args"][:3] == [
        "start-http-server",
        "--service-name",
        "runner_faster_whisper_tiny_en",
    ]
    assert container["resources"]["requests"]["memory"] == f"{manifests[0].resources.memory_mb}Mi"
    assert "nvidia.com/gpu" not in container["resources"]["requests"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert tiny["securityContext"]["runAsNonRoot"] is True
    assert tiny["volumes"][0]["persistentVolumeClaim"]["claimName"] == "theo-models"

    base = deployments["theo-runner-faster-whisper-base"]["spec"]["template"]["spec"]
    assert base["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1

    api_args = deployments["theo"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "runner_faster_whisper_base=http://theo-runner-faster-whisper-base:3000" in api_args
    for document in objects:
        k8s_validate(document)


def test_bundled_manifests_have_no_models_volume(tmp_path: Path) -> None:
    options = KubernetesOptions(image="theo-bundled:1", models_claim=None)
    text = render(build_manifests(default_manifests(tmp_path), options))
    assert "PersistentVolumeClaim" not in text and "volumeMounts" not in text


def test_bentocloud_config_scales_every_service_on_its_own(tmp_path: Path) -> None:
    config = yaml.safe_load(BENTOCLOUD.read_text(encoding="utf-8"))
    # BentoML's own schema of `bentoml deploy -f` (raises on wrong types).
    schema = bentoml_cattr.structure(config, CreateDeploymentSchema)
    services = {"theo"} | {runner_service_name(name) for name in DEFAULT_MODELS}
    assert set(schema.services) == services  # the service names in the bento's bento.yaml
    for name, service in schema.services.items():
        assert service.instance_type, name
        assert service.scaling is not None, name
        assert service.scaling.min_replicas is not None and service.scaling.max_replicas, name
        assert service.scaling.min_replicas <= service.scaling.max_replicas, name
    assert schema.bento == "theo-bundled:latest"  # the weights must travel with the bento
