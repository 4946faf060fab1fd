"""theo/serving/runner.py: one BentoML batching API per lane, on as many threads."""

from __future__ import annotations

from pathlib import Path

from theo.manifest import EngineConfig, ModelManifest
from theo.serving.bentoml_internals import DEFAULT_BATCHER_TICK_SECONDS, batcher_tick_seconds
from theo.serving.runner import (
    DEDICATED_LANES,
    LIVE_GROUP_SIZE,
    lane_api_names,
    live_manifest,
    make_runner_service,
)


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
    files = ["transcribe", "transcribe_1", "transcribe_2"]
    assert sorted(service.apis) == sorted([*files, *DEDICATED_LANES])  # + long-form, live
    for name, api in service.apis.items():
        assert api.batchable and api.max_batch_size == 4 and api.max_latency_ms == 5000
        assert api.route == f"/{name}"
    assert service.config["threads"] == 3 + len(DEDICATED_LANES)
    assert service.config["traffic"]["concurrency"] == 12


def test_batching_can_be_turned_off() -> None:
    service = make_runner_service(manifest(batching=False), Path("/nowhere"))
    assert not service.apis["transcribe"].batchable


def test_a_max_batch_size_of_one_is_no_batching_not_a_runner_that_cannot_start() -> None:
    # BentoML refuses max_batch_size 1 on a batchable API (a ValueError at start-up).
    service = make_runner_service(manifest(max_batch_size=1), Path("/nowhere"))
    assert not any(api.batchable for api in service.apis.values())


def test_a_stored_model_is_declared_on_its_runner_service() -> None:
    # `bentoml build` packages the models a service declares; none when served from a folder.
    stored = make_runner_service(manifest(), Path("/nowhere"), stored_tag="alpha:v1")
    assert [str(model) for model in stored.models] == ["alpha:v1"]
    assert make_runner_service(manifest(), Path("/nowhere")).models == []


def test_defining_a_runner_does_not_tune_the_batcher() -> None:
    # Tuning is an explicit call when the runner starts, not a side effect of an import.
    make_runner_service(manifest(), Path("/nowhere"))
    assert batcher_tick_seconds() == DEFAULT_BATCHER_TICK_SECONDS


def test_the_live_instance_splits_a_batch_over_its_workers_and_has_no_solo_instance() -> None:
    live = live_manifest(manifest(num_workers=2, decode_batch_size=4, solo_cpu_threads=2))
    assert live.engine_config.decode_batch_size == LIVE_GROUP_SIZE < 4
    assert live.engine_config.solo_cpu_threads == 0
    # one worker: nothing to spread over
    alone = live_manifest(manifest(num_workers=1, decode_batch_size=4))
    assert alone.engine_config.decode_batch_size == 4
