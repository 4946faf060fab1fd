"""The per-model runner: a BentoML service around the engine, with adaptive batching."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import bentoml
from bentoml.models import BentoModel

from theo.manifest import EngineConfig, ModelManifest
from theo.serving.bentoml_internals import tune_batcher
from theo.transcription import TranscriptionJob, TranscriptionResult

# Long audio on CPU can take minutes; BentoML's default of 60 s would cut it off.
RUNNER_TIMEOUT_SECONDS = 900
# While a batch runs and requests wait, BentoML's batcher polls its queue every 1 ms by
# default, on the runner's event loop, taking CPU from the engine. A batch takes 0.1-10 s
# here, so 5 ms costs nothing in latency (docs/performance.md).
BATCHER_TICK_SECONDS = 0.005
# Live transcription's lanes (theo/realtime/): the final decodes of utterances on two, the
# re-decodes of growing utterances (partial text) on a third. They decode on a model
# instance of their own, so a live utterance never queues behind a long file's windows.
LIVE_LANES = ("transcribe_live", "transcribe_live_1")
PARTIAL_LANE = "transcribe_partial"
LIVE_API_NAMES = (*LIVE_LANES, PARTIAL_LANE)
# The windows of long recordings (long-form jobs, theo/long_form.py) on two lanes of their
# own: a lane runs one batch at a time, so a short request sent to a lane that held a
# long file's windows waited for all of them (base: short p95 5.5x idle beside 4 long
# files). Beside them, the engine makes long-form groups give way to short ones.
# Utterances per engine group on the live instance (see live_manifest).
LIVE_GROUP_SIZE = 2
LONG_FORM_LANES = ("transcribe_long", "transcribe_long_1")
# Every lane but the file lanes of lane_api_names().
DEDICATED_LANES = (*LONG_FORM_LANES, *LIVE_API_NAMES)


def runner_service_name(model_name: str) -> str:
    """A stable BentoML service name for a model (the same at build and serve time)."""
    return "runner_" + re.sub(r"[^a-z0-9]+", "_", model_name.lower()).strip("_")


def lane_api_names(config: EngineConfig) -> list[str]:
    """The runner's batching APIs: ``transcribe``, then one more per extra concurrent batch.

    BentoML's batcher keeps one batch of an API in flight at a time, so when a batch
    finishes the engine idles until its callers' next requests arrive. Each lane is a
    batcher of its own; the API service sends a request to the least busy lane.
    """
    return ["transcribe", *(f"transcribe_{i}" for i in range(1, config.concurrent_batches))]


def make_runner_service(
    manifest: ModelManifest, model_path: Path, stored_tag: str | None = None
) -> bentoml.Service[Any]:
    """Create the runner service class for one installed model.

    Its ``transcribe`` APIs take a list of jobs; with batching on, BentoML's adaptive
    batcher merges the lists of concurrent callers into one call. ``stored_tag`` names the
    model's copy in the BentoML model store, which ``bentoml build`` then packages.
    """
    config = manifest.engine_config

    class ModelRunner:
        def __init__(self) -> None:
            from theo.engine import FasterWhisperEngine  # heavy import: only in the runner
            from theo.settings import get_settings

            tune_batcher(BATCHER_TICK_SECONDS)  # before the first batch
            settings = get_settings()
            live_instance = settings.realtime_live_instance
            # With a live instance beside it, the file instance's threads run at a lower
            # priority: an utterance's decode then takes the cores from a file's decode in
            # progress, which long-form groups' making way between model calls cannot do
            # (beside 4 long files, 8 live sessions' p95 went 4.3 -> 2.5 s).
            niceness = settings.realtime_file_niceness if live_instance else 0
            self.engine = FasterWhisperEngine(model_path, manifest, niceness=niceness)
            self.live_engine = self.engine
            if live_instance:
                self.live_engine = FasterWhisperEngine(model_path, live_manifest(manifest))
                # A live utterance must not wait for a long file's windows: on the same
                # cores, long-form groups hold their next model call while it decodes
                # (beside 4 long files, 8 live sessions' p95 was 5.9-7.0 s).
                self.engine.make_way_for(self.live_engine)

    if stored_tag is not None:
        # BentoML's documented way to declare a service's model: a class attribute.
        ModelRunner.weights = BentoModel(stored_tag)  # type: ignore[attr-defined]

    for api_name in (*lane_api_names(config), *LONG_FORM_LANES):
        setattr(ModelRunner, api_name, _batching_api(api_name, config))
    for api_name in LIVE_API_NAMES:
        setattr(ModelRunner, api_name, _batching_api(api_name, config, engine="live_engine"))

    name = runner_service_name(manifest.name)
    ModelRunner.__name__ = ModelRunner.__qualname__ = name
    resources: dict[str, Any] = {"memory": f"{manifest.resources.memory_mb}Mi"}
    if manifest.resources.gpu_required or config.device == "cuda":
        resources["gpu"] = 1
    return bentoml.service(
        name=name,
        workers=1,
        # BentoML runs sync APIs on this many threads: one per lane.
        threads=config.concurrent_batches + len(DEDICATED_LANES),
        resources=resources,
        # concurrency: BentoCloud adds a replica above this many requests per replica.
        traffic={
            "timeout": RUNNER_TIMEOUT_SECONDS,
            "concurrency": config.max_batch_size * config.concurrent_batches,
        },
        # The API service's client of this runner recycles its connection pool after
        # 100 calls or 300 s by default, failing the calls in flight; keep one pool.
        runner_connection={"max_requests": 2**31 - 1, "max_age": 365 * 86400.0},
    )(ModelRunner)


def live_manifest(manifest: ModelManifest) -> ModelManifest:
    """The live instance's manifest: no solo instance (two threads hardly speed up one
    short utterance on CPU, and it would cost the model's memory once more), and a batch
    split over the workers: a live batch waits for its slowest group, and one group of
    four utterances on one worker made 8 sessions' p95 2.5 s against 1.7 s unbatched."""
    engine = manifest.engine_config
    group = engine.decode_batch_size
    if engine.num_workers > 1:
        group = min(group, LIVE_GROUP_SIZE)
    config = engine.model_copy(update={"solo_cpu_threads": 0, "decode_batch_size": group})
    return manifest.model_copy(update={"engine_config": config})


def _batching_api(api_name: str, config: EngineConfig, engine: str = "engine") -> Any:
    def transcribe(self: Any, jobs: list[TranscriptionJob]) -> list[TranscriptionResult]:
        return getattr(self, engine).transcribe_batch(jobs)  # type: ignore[no-any-return]

    transcribe.__name__ = transcribe.__qualname__ = api_name  # BentoML's API name and route
    # A batch of at most one job is no batching; BentoML refuses max_batch_size 1 on a
    # batchable API (the runner would not start).
    if not config.batching or config.max_batch_size < 2:
        return bentoml.api(batchable=False)(transcribe)
    return bentoml.api(
        batchable=True,
        max_batch_size=config.max_batch_size,
        max_latency_ms=config.max_latency_ms,
    )(transcribe)
