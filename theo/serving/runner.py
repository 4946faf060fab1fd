"""The per-model runner: a BentoML service around the engine, with adaptive batching."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import bentoml

from theo.manifest import ModelManifest
from theo.transcription import TranscriptionJob, TranscriptionResult

# Long audio on CPU can take minutes; BentoML's default of 60 s would cut it off.
RUNNER_TIMEOUT_SECONDS = 900


def runner_service_name(model_name: str) -> str:
    """A stable BentoML service name for a model (the same at build and serve time)."""
    return "runner_" + re.sub(r"[^a-z0-9]+", "_", model_name.lower()).strip("_")


def make_runner_service(manifest: ModelManifest, model_path: Path) -> bentoml.Service[Any]:
    """Create the runner service class for one installed model.

    Its ``transcribe`` API takes a list of jobs; with batching on, BentoML's adaptive
    batcher merges the lists of concurrent callers into one call.
    """
    config = manifest.engine_config

    class ModelRunner:
        def __init__(self) -> None:
            from theo.engine import FasterWhisperEngine  # heavy import: only in the runner

            self.engine = FasterWhisperEngine(model_path, manifest)

        @bentoml.api(  # type: ignore[untyped-decorator]
            batchable=config.batching,
            max_batch_size=config.max_batch_size,
            max_latency_ms=config.max_latency_ms,
        )
        def transcribe(self, jobs: list[TranscriptionJob]) -> list[TranscriptionResult]:
            return self.engine.transcribe_batch(jobs)

    name = runner_service_name(manifest.name)
    ModelRunner.__name__ = ModelRunner.__qualname__ = name
    resources: dict[str, Any] = {"memory": f"{manifest.resources.memory_mb}Mi"}
    if manifest.resources.gpu_required or config.device == "cuda":
        resources["gpu"] = 1
    return bentoml.service(
        name=name,
        workers=1,
        resources=resources,
        # concurrency: BentoCloud adds a replica above this many requests per replica.
        traffic={"timeout": RUNNER_TIMEOUT_SECONDS, "concurrency": config.max_batch_size},
        # The API service's client of this runner recycles its connection pool after
        # 100 calls or 300 s by default, failing the calls in flight; keep one pool.
        runner_connection={"max_requests": 2**31 - 1, "max_age": 365 * 86400.0},
    )(ModelRunner)
