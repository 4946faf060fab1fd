"""Kubernetes manifests for a Theo image: one Deployment per BentoML service.

The API service (``theo``) and each model's runner service (``runner_<model>``) run as
their own Deployment, Service and HorizontalPodAutoscaler from the same image, so each
model scales on its own. They start the way BentoML starts distributed services: the
image's entrypoint turns ``start-http-server --service-name NAME`` into a server for that
one service, and the API reaches its runners through ``--depends NAME=http://HOST:PORT``.
Each runner's requests and probes come from its model's ``theo.yaml``.

    python -m theo.deploy.kubernetes --image theo:latest > deploy/kubernetes/theo.yaml
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from theo.manifest import ModelManifest
from theo.serving.bentoml_internals import BENTO_SOURCE_DIR, BENTO_USER_ID, START_SERVICE_COMMAND
from theo.serving.bundle import BundleArguments, resolve_dir_models
from theo.serving.runner import runner_service_name

PORT = 3000
API_SERVICE = "theo"
MODELS_MOUNT = "/models"  # THEO_MODELS_DIR in the image

Object = dict[str, Any]


@dataclass(frozen=True)
class KubernetesOptions:
    """What the manifests are for."""

    image: str
    # The PersistentVolumeClaim with the model folders (slim image); None for a bundled image.
    models_claim: str | None = "theo-models"
    models_storage: str = "2Gi"
    max_replicas: int = 4
    cpu_target_percent: int = 70


def object_name(service: str) -> str:
    """A Kubernetes name (DNS-1123 label) for a BentoML service name."""
    name = (
        service.replace("_", "-") if service == API_SERVICE else "theo-" + service.replace("_", "-")
    )
    if len(name) > 63:
        raise ValueError(f"{service!r} makes a Kubernetes name longer than 63 characters")
    return name


def _labels(service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "theo", "app.kubernetes.io/component": object_name(service)}


def _probe(path: str, period: int, failures: int) -> Object:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _server_args(service: str, *extra: str) -> list[str]:
    return [
        START_SERVICE_COMMAND,
        "--service-name",
        service,
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
        *extra,
    ]


def _models_volume(
    options: KubernetesOptions, *, read_only: bool
) -> tuple[list[Object], list[Object]]:
    if options.models_claim is None:
        return [], []
    mount = {"name": "models", "mountPath": MODELS_MOUNT, "readOnly": read_only}
    claim = {"claimName": options.models_claim, "readOnly": read_only}
    return [mount], [{"name": "models", "persistentVolumeClaim": claim}]


def _pod_security() -> Object:
    return {
        "runAsNonRoot": True,
        "runAsUser": BENTO_USER_ID,
        "runAsGroup": BENTO_USER_ID,
        "fsGroup": BENTO_USER_ID,
    }


def _container_security() -> Object:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _service_objects(
    service: str,
    args: list[str],
    resources: Object,
    startup: Object,
    options: KubernetesOptions,
) -> list[Object]:
    name, labels = object_name(service), _labels(service)
    mounts, volumes = _models_volume(options, read_only=True)
    container: Object = {
        "name": "server",
        "image": options.image,
        "args": args,
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": resources,
        "startupProbe": startup,
        "readinessProbe": _probe("/readyz", 10, 3),
        "livenessProbe": _probe("/livez", 20, 3),
        "securityContext": _container_security(),
    }
    if mounts:
        container["volumeMounts"] = mounts
    pod: Object = {
        "securityContext": _pod_security(),
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
    }
    if volumes:
        pod["volumes"] = volumes
    deployment: Object = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    k8s_service: Object = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
        },
    }
    autoscaler: Object = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1,
            "maxReplicas": options.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": options.cpu_target_percent,
                        },
                    },
                }
            ],
        },
    }
    return [deployment, k8s_service, autoscaler]


def runner_resources(manifest: ModelManifest) -> Object:
    """Requests from the manifest: its memory, the CPU its engine uses, a GPU if it needs one."""
    config = manifest.engine_config
    cpus = max(1, config.cpu_threads) * config.num_workers
    memory = manifest.resources.memory_mb
    requests: Object = {"cpu": str(cpus), "memory": f"{memory}Mi"}
    # Decoding a batch needs room above the loaded weights.
    limits: Object = {"memory": f"{memory * 2}Mi"}
    if manifest.resources.gpu_required or config.device == "cuda":
        requests["nvidia.com/gpu"] = 1
        limits["nvidia.com/gpu"] = 1
    return {"requests": requests, "limits": limits}


def _pull_job(names: Sequence[str], options: KubernetesOptions) -> list[Object]:
    assert options.models_claim is not None
    mounts, volumes = _models_volume(options, read_only=False)
    claim: Object = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": options.models_claim, "labels": _labels(API_SERVICE)},
        "spec": {
            # Every pod mounts it, possibly on different nodes; one node: ReadWriteOnce works.
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": options.models_storage}},
        },
    }
    job: Object = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "theo-pull-models", "labels": _labels(API_SERVICE)},
        "spec": {
            "backoffLimit": 2,
            "template": {
                "spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": _pod_security(),
                    "containers": [
                        {
                            "name": "pull",
                            "image": options.image,
                            "workingDir": BENTO_SOURCE_DIR,
                            # `theo pull` from the image (no-op for installed models).
                            "args": [
                                "python",
                                "-c",
                                "from theo.cli import main; main()",
                                "pull",
                                "--models-dir",
                                MODELS_MOUNT,
                                *names,
                            ],
                            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                            "securityContext": _container_security(),
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                }
            },
        },
    }
    return [claim, job]


def build_manifests(manifests: Sequence[ModelManifest], options: KubernetesOptions) -> list[Object]:
    """Every object to apply, in apply order."""
    objects: list[Object] = []
    if options.models_claim is not None:
        objects += _pull_job([m.name for m in manifests], options)
    depends = [
        f"{runner_service_name(m.name)}=http://{object_name(runner_service_name(m.name))}:{PORT}"
        for m in manifests
    ]
    api_args = _server_args(API_SERVICE, *(arg for dep in depends for arg in ("--depends", dep)))
    # The API decodes uploads (up to THEO_MAX_AUDIO_SECONDS of float32 samples) but runs no model.
    api_resources = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    # Its /readyz also waits for the runners: start on /livez, so a slow runner cannot
    # get the API restarted.
    api_startup = _probe("/livez", 5, 24)
    objects += _service_objects(API_SERVICE, api_args, api_resources, api_startup, options)
    for manifest in manifests:
        service = runner_service_name(manifest.name)
        # Allow three times the manifest's load time, plus two minutes, before restarting.
        failures = math.ceil((3 * manifest.resources.load_time_seconds + 120) / 5)
        startup = _probe("/readyz", 5, failures)
        objects += _service_objects(
            service, _server_args(service), runner_resources(manifest), startup, options
        )
    return objects


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # repeat shared label dicts instead of writing YAML anchors


def render(objects: Sequence[Object]) -> str:
    """The objects as one multi-document YAML file."""
    header = "# Generated by `python -m theo.deploy.kubernetes` (make k8s); do not edit by hand.\n"
    documents = (yaml.dump(o, Dumper=_Dumper, sort_keys=False) for o in objects)
    return header + "---\n".join(documents)


def default_model_names(bentofile: Path = Path("bentofile.yaml")) -> list[str]:
    """The models ``bentofile.yaml`` declares (its ``args.models``)."""
    data = yaml.safe_load(bentofile.read_text(encoding="utf-8"))
    return BundleArguments.model_validate(data.get("args") or {}).models


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print Kubernetes manifests for Theo.")
    parser.add_argument("--image", required=True, help="the image (make image / image-bundled)")
    parser.add_argument("--models", help="comma-separated model names (default: bentofile.yaml)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"), help="their manifests")
    parser.add_argument(
        "--bundled", action="store_true", help="the image carries the weights: no models volume"
    )
    parser.add_argument("--max-replicas", type=int, default=4)
    args = parser.parse_args(argv)
    names = (
        BundleArguments.model_validate({"models": args.models}).models
        if args.models
        else default_model_names()
    )
    models = resolve_dir_models(args.models_dir, names)
    options = KubernetesOptions(
        image=args.image,
        models_claim=None if args.bundled else "theo-models",
        max_replicas=args.max_replicas,
    )
    sys.stdout.write(render(build_manifests([m for m, _ in models.values()], options)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
