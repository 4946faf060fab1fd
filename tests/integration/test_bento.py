"""The bento users deploy, built and served the way docs/deploy.md says, in a temporary store.

- Both bentos are built offline (network calls go to a dead proxy) with no model installed
  at build time, as from a fresh clone: `theo` (slim, `make bento`) and `theo-bundled`
  (`scripts/import_models.py`, then `--arg model_source=store`, `make bento-bundled`).
- Each is served from the store (`bentoml serve <tag>`) and passes an OpenAI SDK smoke test.
- `scripts/containerize.sh` (`make image-bundled`) runs the real `bentoml containerize`
  with a stand-in `docker` that keeps the build context it is handed; that context is
  checked and served as the image's entrypoint serves it, and served again as
  deploy/kubernetes/theo-bundled.yaml runs it: one server per BentoML service.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from openai import OpenAI

from tests.conftest import FIXTURES, MODELS_DIR, REPO_ROOT, word_errors
from tests.integration.conftest import (
    REQUIRED_MODELS,
    TINY,
    RunningServer,
    free_port,
    stop_server,
    wait_healthy,
)

JFK = FIXTURES / "jfk.flac"
BIN = Path(sys.executable).parent
DEAD_PROXY = "http://127.0.0.1:9"  # nothing listens: any download fails at once
RUNNERS = ["runner_faster_whisper_tiny_en", "runner_faster_whisper_base"]

FAKE_DOCKER = """#!/usr/bin/env bash
# Stand-in for the docker CLI: a version for BentoML's check; `build` keeps its context.
set -euo pipefail
echo "$*" >> "$FAKE_DOCKER_OUT/calls"
if [ "$1" = version ]; then echo '"27.0.0"'; exit 0; fi
args=("$@")
cp -r "${args[-1]}" "$FAKE_DOCKER_OUT/context"
"""


@dataclass
class Deployment:
    """The temporary BentoML home with both bentos built, and the image build context."""

    env: dict[str, str]
    tmp: Path
    slim: str
    bundled: str
    image_context: Path
    docker_calls: str

    def run(self, *command: str, env: dict[str, str] | None = None) -> str:
        completed = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, (
            f"{shlex.join(command)} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
        )
        return completed.stdout

    def bento_dir(self, tag: str) -> Path:
        name, version = tag.split(":")
        return Path(self.env["BENTOML_HOME"]) / "bentos" / name / version

    def start(self, name: str, command: list[str], cwd: Path, **env: str) -> RunningServer:
        port = free_port()
        log_path = self.tmp / f"{name}-{port}.log"
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=cwd,
            env={**self.env, **env},
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return RunningServer(f"http://127.0.0.1:{port}", process, log_path)


def build_tag(output: str) -> str:
    match = re.search(r"__tag__:(\S+)", output)
    assert match, output
    return match.group(1)


def smoke_test(base_url: str, reference: str) -> None:
    """The OpenAI SDK against a deployed server: json, srt, and an unknown model's 404."""
    client = OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0, timeout=120)
    with JFK.open("rb") as audio:
        result = client.audio.transcriptions.create(model=TINY, file=audio)
    assert word_errors(reference, result.text) == 0
    with JFK.open("rb") as audio:
        srt: Any = client.audio.transcriptions.create(model=TINY, file=audio, response_format="srt")
    assert re.match(r"1\n00:00:00,000 --> \d\d:\d\d:\d\d,\d{3}\n\S", srt), srt
    with pytest.raises(openai.NotFoundError) as info, JFK.open("rb") as audio:
        client.audio.transcriptions.create(model="no-such-model", file=audio)
    assert info.value.status_code == 404


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    missing = [m for m in REQUIRED_MODELS if not (MODELS_DIR / m / "theo.yaml").is_file()]
    if missing:
        pytest.fail(f"models not installed: {missing}; run `make models` first")
    tmp = tmp_path_factory.mktemp("bento")
    no_models = tmp / "no-models"
    no_models.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THEO_", "BENTOML_"))}
    env |= {
        "BENTOML_HOME": str(tmp / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "THEO_MODELS_DIR": str(no_models),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    }
    offline = {"HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "ALL_PROXY": DEAD_PROXY}
    offline |= {key.lower(): value for key, value in offline.items()} | {"NO_PROXY": ""}
    deployment = Deployment(env, tmp, "", "", tmp / "docker" / "context", "")
    bentoml = str(BIN / "bentoml")

    # `make bento`, then `make bento-bundled`: the store import and the bundled build.
    deployment.slim = build_tag(deployment.run(bentoml, "build", "-o", "tag", env=offline))
    deployment.run(
        str(BIN / "python"),
        "scripts/import_models.py",
        *REQUIRED_MODELS,
        env={**offline, "THEO_MODELS_DIR": str(MODELS_DIR)},
    )
    deployment.bundled = build_tag(
        deployment.run(
            bentoml,
            "build",
            "--name",
            "theo-bundled",
            "--arg",
            "model_source=store",
            "-o",
            "tag",
            env=offline,
        )
    )

    # `make image-bundled`, with `docker` standing in.
    fake_bin = tmp / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "docker").write_text(FAKE_DOCKER)
    (fake_bin / "docker").chmod(0o755)
    (tmp / "docker").mkdir()
    deployment.run(
        str(REPO_ROOT / "scripts" / "containerize.sh"),
        deployment.bundled,
        "theo-bundled:test",
        env={
            "PATH": f"{fake_bin}{os.pathsep}{env['PATH']}",
            "FAKE_DOCKER_OUT": str(tmp / "docker"),
            "BENTOML": bentoml,
        },
    )
    deployment.docker_calls = (tmp / "docker" / "calls").read_text()
    return deployment


def test_slim_bento_has_the_code_its_runners_and_a_sensible_image(deployment: Deployment) -> None:
    bento = deployment.bento_dir(deployment.slim)
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["name"] == "theo" and info["bentoml_version"] == "1.4.40"
    # Runners exist although no model was installed at build time: the names are frozen.
    assert [s["name"] for s in info["services"]] == ["theo", *sorted(RUNNERS)]
    assert info["args"] == {
        "model_source": "dir",
        "models": "faster-whisper-tiny.en,faster-whisper-base",
    }
    assert info["docker"]["python_version"] == "3.11" and info["python"]["lock_packages"] is False
    assert info["models"] == [] and not (bento / "models").exists()

    files = {p.relative_to(bento).as_posix() for p in bento.rglob("*") if p.is_file()}
    assert {"src/service.py", "src/theo/serving/bundle.py", "src/theo/catalog.yaml"} <= files
    assert not [f for f in files if f.startswith(("src/tests", "src/models", "src/.venv"))]
    assert not [f for f in files if "__pycache__" in f or f.endswith((".bin", ".pyc"))]

    requirements = (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
    assert "faster-whisper==1.2.1" in requirements and "bentoml==1.4.40" in requirements

    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "ENV THEO_MODELS_DIR=$THEO_MODELS_DIR" in dockerfile
    assert re.search(r"HEALTHCHECK .*\n.*curl -fsS .*/health", dockerfile)
    assert "EXPOSE 3000" in dockerfile
    last_user = re.findall(r"^USER (\S+)", dockerfile, re.M)[-1]
    assert last_user == "bentoml"


def test_slim_bento_serves_the_models_of_a_volume(
    deployment: Deployment, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    server = deployment.start(
        "slim",
        [str(BIN / "bentoml"), "serve", deployment.slim, "--host", "127.0.0.1"],
        cwd=deployment.tmp,
        THEO_MODELS_DIR=str(MODELS_DIR),
    )
    try:
        wait_healthy(server)
        smoke_test(server.base_url, fixture_manifest["jfk.flac"]["text"])
    finally:
        stop_server(server)


def test_bundled_bento_serves_from_the_store_without_a_models_folder(
    deployment: Deployment, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    info = yaml.safe_load((deployment.bento_dir(deployment.bundled) / "bento.yaml").read_text())
    packaged = {s["name"]: [m["tag"] for m in s["models"]] for s in info["services"]}
    assert packaged["runner_faster_whisper_tiny_en"][0].startswith("faster-whisper-tiny.en:")
    assert packaged["runner_faster_whisper_base"][0].startswith("faster-whisper-base:")

    server = deployment.start(
        "bundled",
        [str(BIN / "bentoml"), "serve", deployment.bundled, "--host", "127.0.0.1"],
        cwd=deployment.tmp,
    )  # THEO_MODELS_DIR is the empty folder
    try:
        wait_healthy(server)
        smoke_test(server.base_url, fixture_manifest["jfk.flac"]["text"])
    finally:
        stop_server(server)


def test_containerize_hands_docker_the_bento_with_its_weights(deployment: Deployment) -> None:
    assert "build --tag theo-bundled:test --file" in deployment.docker_calls
    context = deployment.image_context
    for name in REQUIRED_MODELS:
        versions = [p for p in (context / "models" / name).iterdir() if p.is_dir()]
        assert len(versions) == 1
        assert (versions[0] / "model.bin").stat().st_size > 10_000_000
        assert (versions[0] / "theo.yaml").is_file()
    dockerfile = (context / "env" / "docker" / "Dockerfile").read_text()
    assert "HEALTHCHECK" in dockerfile and "COPY --chown=bentoml:bentoml . ./" in dockerfile


def test_image_context_serves_as_the_image_entrypoint_runs_it(
    deployment: Deployment, fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    # entrypoint.sh: `bentoml serve $BENTO_PATH` in $BENTO_PATH, BENTOML_HOME holding no models.
    empty_home = deployment.tmp / "image-home"
    empty_home.mkdir(exist_ok=True)
    context = deployment.image_context
    server = deployment.start(
        "image",
        [str(BIN / "bentoml"), "serve", str(context), "--host", "127.0.0.1"],
        cwd=context,
        BENTOML_HOME=str(empty_home),
        BENTOML_CONTAINERIZED="true",
    )
    try:
        wait_healthy(server)
        smoke_test(server.base_url, fixture_manifest["jfk.flac"]["text"])
    finally:
        stop_server(server)


def kubernetes_commands() -> dict[str, list[str]]:
    """Each Deployment's container args in deploy/kubernetes/theo-bundled.yaml."""
    text = (REPO_ROOT / "deploy" / "kubernetes" / "theo-bundled.yaml").read_text()
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["args"]
        for d in yaml.safe_load_all(text)
        if d and d["kind"] == "Deployment"
    }


@pytest.fixture
def kubernetes_servers(deployment: Deployment) -> Iterator[list[RunningServer]]:
    """One server per Deployment, started with its args as the image's entrypoint does."""
    commands = kubernetes_commands()
    ports = {name: free_port() for name in commands}
    empty_home = deployment.tmp / "k8s-home"
    empty_home.mkdir(exist_ok=True)
    servers: list[RunningServer] = []
    try:
        for name in ["theo", *(n for n in commands if n != "theo")]:
            args = [
                # Kubernetes Services become local ports.
                re.sub(r"http://([a-z0-9-]+):3000", lambda m: f"http://127.0.0.1:{ports[m[1]]}", a)
                for a in commands[name]
            ]
            assert args[0] == "start-http-server"
            port_index = args.index("--port") + 1
            assert args[port_index] == "3000"
            args[port_index] = str(ports[name])
            # entrypoint.sh: `python -m bentoml_cli._internal.start "$@" "$BENTO_PATH"`
            module = [str(BIN / "python"), "-m", "bentoml_cli._internal.start"]
            command = [*module, *args, str(deployment.image_context)]
            process = subprocess.Popen(
                command,
                cwd=deployment.image_context,
                env={**deployment.env, "BENTOML_HOME": str(empty_home)},
                stdout=(deployment.tmp / f"k8s-{name}.log").open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log = deployment.tmp / f"k8s-{name}.log"
            servers.append(RunningServer(f"http://127.0.0.1:{ports[name]}", process, log))
        yield servers
    finally:
        for server in servers:
            stop_server(server)


def test_kubernetes_topology_runs_one_server_per_service(
    kubernetes_servers: list[RunningServer], fixture_manifest: dict[str, dict[str, Any]]
) -> None:
    api, *runners = kubernetes_servers
    assert len(runners) == len(RUNNERS)
    wait_healthy(*kubernetes_servers)
    for runner in runners:  # the runners' probes
        assert httpx.get(f"{runner.base_url}/readyz", timeout=5).status_code == 200
        assert httpx.get(f"{runner.base_url}/livez", timeout=5).status_code == 200
    assert httpx.get(f"{api.base_url}/readyz", timeout=5).status_code == 200
    smoke_test(api.base_url, fixture_manifest["jfk.flac"]["text"])
    # The API ran no model itself: each runner server logged its own transcription.
    assert "service.name=runner_faster_whisper_tiny_en" in runners[0].log() + runners[1].log()
