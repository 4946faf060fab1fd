"""At startup the API service trains every runner lane's batcher with silent jobs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from tests.conftest import MODELS_DIR
from tests.integration.conftest import start_server, stop_server
from theo.manifest import load_manifest
from theo.serving.router import WARM_UP_ROUNDS
from theo.serving.runner import DEDICATED_LANES, lane_api_names, runner_service_name

MODEL = "faster-whisper-tiny.en"
_COUNT = re.compile(r"^bentoml_service_adaptive_batch_size_count\{(?P<labels>[^}]*)\} (?P<n>\S+)$")


def batches_per_lane(base_url: str, runner: str) -> dict[str, float]:
    """BentoML's count of batches run by each of ``runner``'s batching APIs."""
    counts: dict[str, float] = {}
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        match = _COUNT.match(line)
        if match and f'"{runner}"' in match["labels"]:
            method = re.search(r'method_name="([^"]+)"', match["labels"])
            assert method, line
            counts[method[1]] = counts.get(method[1], 0.0) + float(match["n"])
    return counts


def test_every_lane_is_warmed_up_before_any_request(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / MODEL).symlink_to(MODELS_DIR / MODEL)
    file_lanes = lane_api_names(load_manifest(MODELS_DIR / MODEL / "theo.yaml").engine_config)
    assert len(file_lanes) > 1  # the shipped CPU settings use lanes
    lanes = [*file_lanes, *DEDICATED_LANES]  # long-form and live lanes are warmed up too
    server = start_server(tmp_path, models_dir=models)
    try:
        # BentoML's batcher ends its training after len(WARM_UP_ROUNDS) batches; a round's
        # jobs may reach it apart and make two batches, so up to sum(WARM_UP_ROUNDS).
        deadline = time.monotonic() + 60
        counts: dict[str, float] = {}
        while time.monotonic() < deadline:
            counts = batches_per_lane(server.base_url, runner_service_name(MODEL))
            if sorted(counts) == sorted(lanes) and min(counts.values()) >= len(WARM_UP_ROUNDS):
                break
            time.sleep(0.5)
        assert sorted(counts) == sorted(lanes), counts
        assert all(len(WARM_UP_ROUNDS) <= n <= sum(WARM_UP_ROUNDS) for n in counts.values()), (
            counts,
            server.log()[-3000:],
        )
    finally:
        stop_server(server)
