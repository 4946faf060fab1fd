"""The faster-whisper engine: loads one model folder and transcribes batches of jobs.

Knows nothing about HTTP or BentoML; the runner service wraps it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from faster_whisper import WhisperModel
from faster_whisper.transcribe import Segment as FWSegment

from theo.manifest import ModelManifest
from theo.transcription import Segment, TranscriptionJob, TranscriptionResult, Word

logger = logging.getLogger(__name__)

# What OpenAI does for temperature=0: start greedy, fall back to hotter sampling
# when the compression-ratio / log-probability thresholds are missed.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def temperature_schedule(temperature: float) -> tuple[float, ...]:
    """0 means faster-whisper's fallback schedule; anything else is used as given."""
    return FALLBACK_TEMPERATURES if temperature == 0 else (temperature,)


class FasterWhisperEngine:
    """One loaded Whisper model and the options its manifest gives it."""

    def __init__(self, model_path: Path, manifest: ModelManifest):
        config = manifest.engine_config
        self.manifest = manifest
        self.model = WhisperModel(
            str(model_path),
            device=config.device,
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
            num_workers=config.num_workers,
            local_files_only=True,
        )
        self._pool = ThreadPoolExecutor(
            max_workers=config.num_workers, thread_name_prefix=f"engine-{manifest.name}"
        )

    def transcribe_batch(self, jobs: list[TranscriptionJob]) -> list[TranscriptionResult]:
        """Transcribe every job; a job that fails gets a result with ``error`` set."""
        results = list(self._pool.map(self._transcribe_one, jobs))
        for result in results:
            result.batch_size = len(jobs)
        return results

    def _transcribe_one(self, job: TranscriptionJob) -> TranscriptionResult:
        try:
            return self.transcribe(job)
        except Exception as exc:  # one bad job must not fail its batch
            logger.exception("engine failed on a job")
            return TranscriptionResult(error=f"{type(exc).__name__}: {exc}")

    def transcribe(self, job: TranscriptionJob) -> TranscriptionResult:
        """Transcribe (or translate) one job."""
        config = self.manifest.engine_config
        segments, info = self.model.transcribe(
            job.samples(),
            language=job.language,
            task=job.task,
            beam_size=config.beam_size,
            initial_prompt=job.prompt or None,
            temperature=list(temperature_schedule(job.temperature)),
            word_timestamps=job.word_timestamps,
            vad_filter=config.vad_filter,
        )
        converted = _convert_segments(segments, job.word_timestamps)
        words = (
            [word for segment in converted for word in segment.words or []]
            if job.word_timestamps
            else None
        )
        return TranscriptionResult(
            text="".join(segment.text for segment in converted).strip(),
            language=info.language,
            duration=info.duration,
            segments=converted,
            words=words,
        )


def _convert_segments(segments: Iterable[FWSegment], with_words: bool) -> list[Segment]:
    converted = []
    for index, segment in enumerate(segments):
        words = None
        if with_words:
            words = [
                Word(word=w.word, start=w.start, end=w.end, probability=w.probability)
                for w in segment.words or []
            ]
        converted.append(
            Segment(
                id=index,
                seek=segment.seek,
                start=segment.start,
                end=segment.end,
                text=segment.text,
                tokens=list(segment.tokens),
                temperature=segment.temperature or 0.0,
                avg_logprob=segment.avg_logprob,
                compression_ratio=segment.compression_ratio,
                no_speech_prob=segment.no_speech_prob,
                words=words,
            )
        )
    return converted
