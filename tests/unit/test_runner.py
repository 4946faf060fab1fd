"""theo/serving/runner.py: one BentoML batching API per lane, on as many threads."""

from __future__ import annotations

import inspect
from pathlib import Path

from bentoml._internal.marshal.dispatcher import CorkDispatcher

from theo.manifest import EngineConfig, ModelManifest
from theo.serving.runner import BATCHER_TICK_SECONDS, lane_api_names, make_runner_service


def manifest(**engine: object) -> ModelManifest:
    return ModelManifest.model_validate(
        {"name": "tiny-test", "engine_config": EngineConfig.model_validate(engine)}
    )


def test_one_lane_is_the_plain_transcribe_api() -> None:
    assert lane_api_names(EngineConfig()) == ["transcribe"]


def test_each_lane_is_a_batching_api_and_gets_a_thread() -> None:
    service = make_runner_service(
        manifest(concurrent_batches=3, max_batch_size=4, max_latency_ms=5000), Path("/nowhere")
    )
    assert sorted(service.apis) == ["transcribe", "transcribe_1", "transcribe_2"]
    for name, api in service.apis.items():
        assert api.batchable and api.max_batch_size == 4 and api.max_latency_ms == 5000
        assert api.route == f"/{name}"
    assert service.config["threads"] == 3
    assert service.config["traffic"]["concurrency"] == 12


def test_batching_can_be_turned_off() -> None:
    service = make_runner_service(manifest(batching=False), Path("/nowhere"))
    assert not service.apis["transcribe"].batchable


def test_the_batcher_still_polls_at_the_tick_theo_sets() -> None:
    # Guards a BentoML upgrade: the attribute Theo slows down must still be the one read.
    assert CorkDispatcher.TICKET_INTERVAL == BATCHER_TICK_SECONDS
    assert "self.TICKET_INTERVAL" in inspect.getsource(CorkDispatcher.controller)
