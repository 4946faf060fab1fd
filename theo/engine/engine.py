"""The faster-whisper engine: loads one model folder and decodes runner batches in groups.

A runner batch is split into groups of at most ``decode_batch_size`` windows, one engine
call each on a worker thread. Within a group, windows whose prompts line up and that share
a temperature form a *stack*: their encoder outputs go through one CTranslate2
``generate`` call (theo/engine/passes.py). The windows of long recordings (long-form
jobs, theo/long_form.py) are grouped apart, on threads of their own, and make way for
the other groups between model calls. Knows nothing about HTTP or BentoML.
"""

from __future__ import annotations

import itertools
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from faster_whisper import WhisperModel
from threadpoolctl import threadpool_limits

from theo.engine import faster_whisper_internals as fw
from theo.engine.instances import InstanceChooser
from theo.engine.passes import GroupDecoder
from theo.engine.threads import lower_priority, started_threads
from theo.manifest import ModelManifest
from theo.transcription import TranscriptionJob, TranscriptionResult

logger = logging.getLogger(__name__)


# numpy's BLAS does the mel filter product only. Its extra threads busy-wait after each one
# and took ~10% of the CPU from CTranslate2's workers (docs/performance.md).
BLAS_THREADS = 1


class FasterWhisperEngine:
    """One loaded Whisper model and the decoding options its manifest gives it."""

    def __init__(self, model_path: Path, manifest: ModelManifest, *, niceness: int = 0):
        """Load the model's instances; on CPU, their threads get the nice value
        ``niceness`` (a higher one yields the cores to other instances' threads)."""
        config = manifest.engine_config
        threadpool_limits(limits=BLAS_THREADS, user_api="blas")
        self.manifest = manifest
        self.config = config

        def load(device: str, cpu_threads: int, num_workers: int) -> WhisperModel:
            return WhisperModel(
                str(model_path),
                device=device,
                compute_type=config.compute_type,
                cpu_threads=cpu_threads,
                num_workers=num_workers,
                local_files_only=True,
            )

        with started_threads() as threads:
            self.model = load(config.device, config.cpu_threads, config.num_workers)
            # At low load a lone request would run on one worker's threads while the
            # other cores idle: a second instance with more threads decodes it instead.
            solo = None
            if config.solo_cpu_threads and fw.device(self.model) == "cpu":
                solo = load("cpu", config.solo_cpu_threads, num_workers=1)
        self.multilingual = fw.is_multilingual(self.model)
        self.threads = threads  # CTranslate2's, started by the loads
        if niceness and fw.device(self.model) == "cpu":
            lower_priority(threads, niceness)
        self.instances = InstanceChooser(self.model, solo)
        self.decoder = GroupDecoder(self.model, config)
        self._pool = ThreadPoolExecutor(
            max_workers=config.num_workers, thread_name_prefix=f"engine-{manifest.name}"
        )
        # Long-form groups wait on the others between model calls: threads of their own,
        # so a waiting one never holds a thread a short request's group needs.
        self._long_form_pool = ThreadPoolExecutor(
            max_workers=config.num_workers, thread_name_prefix=f"engine-long-{manifest.name}"
        )

    def transcribe_batch(self, jobs: list[TranscriptionJob]) -> list[TranscriptionResult]:
        """Decode every job (each at most 30 s); a failed group reports ``error`` per job.

        Jobs are decoded in groups of at most ``decode_batch_size`` windows, each group
        one engine call; up to ``num_workers`` groups, of this batch or of another lane's,
        run at once. A batch is not split further to fill an idle worker: the runner's
        lanes do that, and a group of one window costs ~15% more per window than a group
        of two or more (docs/performance.md).
        """
        if not jobs:
            return []
        size = self.config.decode_batch_size
        plain = [i for i, job in enumerate(jobs) if not job.long_form]
        long_form = [i for i, job in enumerate(jobs) if job.long_form]
        groups = [plain[i : i + size] for i in range(0, len(plain), size)]
        long_groups = [long_form[i : i + size] for i in range(0, len(long_form), size)]
        results: list[TranscriptionResult | None] = [None] * len(jobs)
        decoded = [
            self._pool.map(lambda idx: self._decode_group([jobs[i] for i in idx]), groups),
            self._long_form_pool.map(
                lambda idx: self._decode_long_form([jobs[i] for i in idx]), long_groups
            ),
        ]
        for indices, group_results in zip(
            [*groups, *long_groups], itertools.chain(*decoded), strict=True
        ):
            for i, result in zip(indices, group_results, strict=True):
                results[i] = result
        done = [r for r in results if r is not None]
        for result in done:
            result.batch_size = len(jobs)
        return done

    def make_way_for(self, other: FasterWhisperEngine) -> None:
        """This engine's long-form groups also make way for ``other``'s groups (another
        instance of the model in this process, on the same cores)."""
        self.instances.also_make_way_for(other.instances)

    def transcribe(self, job: TranscriptionJob) -> TranscriptionResult:
        """Decode one job (the unbatched path; same result as inside any batch)."""
        return self.transcribe_batch([job])[0]

    def _decode_long_form(self, jobs: list[TranscriptionJob]) -> list[TranscriptionResult]:
        """A group of long-form windows, on the workers' instance, making way for the
        other groups before each model call."""
        with self.instances.claim_background() as instance:
            try:
                return self.decoder.decode(jobs, instance, pause=self.instances.make_way)
            except Exception as exc:  # report per job; the runner keeps serving
                logger.exception("engine failed on a group of %d long-form windows", len(jobs))
                return [TranscriptionResult(error=f"{type(exc).__name__}: {exc}") for _ in jobs]

    def _decode_group(self, jobs: list[TranscriptionJob]) -> list[TranscriptionResult]:
        with self.instances.claim() as instance:
            try:
                return self.decoder.decode(jobs, instance)
            except Exception as exc:  # report per job; the runner keeps serving
                logger.exception("engine failed on a group of %d windows", len(jobs))
                return [TranscriptionResult(error=f"{type(exc).__name__}: {exc}") for _ in jobs]
