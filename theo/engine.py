"""The faster-whisper engine: loads one model folder and decodes batches of audio windows.

A batch is really decoded together: the windows' features are stacked through one
CTranslate2 ``encode`` and one ``generate`` call (per group of windows whose prompts
line up), using faster-whisper's own feature extractor, prompt builder, segment
splitter and word aligner. Knows nothing about HTTP or BentoML.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

from theo.manifest import ModelManifest
from theo.transcription import Segment, TranscriptionJob, TranscriptionResult, Word

logger = logging.getLogger(__name__)

# faster-whisper's (and OpenAI's) thresholds for "this decode failed, try hotter".
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6
BEST_OF = 5
MAX_INITIAL_TIMESTAMP = 1.0
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"  # noqa: RUF001 - Whisper's own list


def temperature_schedule(temperature: float, fallback: Sequence[float]) -> tuple[float, ...]:
    """The temperatures to try for one window: the requested one, then hotter fallbacks."""
    return (temperature, *(t for t in fallback if t > temperature))


@dataclass
class _Window:
    """One job while it is being decoded."""

    index: int
    job: TranscriptionJob
    features: np.ndarray
    prompt_tokens: list[int]
    language: str = ""
    tokenizer: Tokenizer | None = None
    tokens: list[int] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    temperature: float = 0.0
    aligned: list[dict[str, Any]] | None = None  # segments with words, when asked for


class FasterWhisperEngine:
    """One loaded Whisper model and the decoding options its manifest gives it."""

    def __init__(self, model_path: Path, manifest: ModelManifest):
        config = manifest.engine_config
        self.manifest = manifest
        self.config = config
        self.model = WhisperModel(
            str(model_path),
            device=config.device,
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
            num_workers=config.num_workers,
            local_files_only=True,
        )
        self.multilingual: bool = self.model.model.is_multilingual
        self._pool = ThreadPoolExecutor(
            max_workers=config.num_workers, thread_name_prefix=f"engine-{manifest.name}"
        )
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}

    # -- public API -----------------------------------------------------------------

    def transcribe_batch(self, jobs: list[TranscriptionJob]) -> list[TranscriptionResult]:
        """Decode every job (each at most 30 s); a failed group reports ``error`` per job.

        Jobs are split into up to ``num_workers`` groups of at most ``decode_batch_size``
        windows; each group is one stacked encode + generate, and groups run in parallel.
        """
        if not jobs:
            return []
        size = max(
            1,
            min(self.config.decode_batch_size, math.ceil(len(jobs) / self.config.num_workers)),
        )
        groups = [list(range(i, min(i + size, len(jobs)))) for i in range(0, len(jobs), size)]
        results: list[TranscriptionResult | None] = [None] * len(jobs)
        for indices, group_results in zip(
            groups,
            self._pool.map(lambda idx: self._decode_group([jobs[i] for i in idx]), groups),
            strict=True,
        ):
            for i, result in zip(indices, group_results, strict=True):
                result.batch_size = len(jobs)
                results[i] = result
        return [r for r in results if r is not None]

    def transcribe(self, job: TranscriptionJob) -> TranscriptionResult:
        """Decode one job (the unbatched path; same result as inside any batch)."""
        return self.transcribe_batch([job])[0]

    # -- decoding -----------------------------------------------------------------------

    def _decode_group(self, jobs: list[TranscriptionJob]) -> list[TranscriptionResult]:
        try:
            return self._decode(jobs)
        except Exception as exc:  # report per job; the runner keeps serving
            logger.exception("engine failed on a batch of %d", len(jobs))
            return [TranscriptionResult(error=f"{type(exc).__name__}: {exc}") for _ in jobs]

    def _decode(self, jobs: list[TranscriptionJob]) -> list[TranscriptionResult]:
        windows = [self._prepare(i, job) for i, job in enumerate(jobs)]
        # CTranslate2 needs <|startoftranscript|> at the same position in every prompt,
        # and one sampling temperature per call: group on both.
        groups: dict[tuple[int, float], list[_Window]] = defaultdict(list)
        for window in windows:
            groups[(len(window.prompt_tokens), window.job.temperature)].append(window)
        for group in groups.values():
            self._decode_windows(group)
        return [self._result(window) for window in windows]

    def _prepare(self, index: int, job: TranscriptionJob) -> _Window:
        samples = job.samples()
        features = pad_or_trim(self.model.feature_extractor(samples))
        base_tokenizer = self._tokenizer(job.task, job.language or "en")
        prompt_tokens = (base_tokenizer.encode(" " + job.prompt.strip()) if job.prompt else [])[
            -(self.model.max_length // 2 - 1) :
        ]
        return _Window(index=index, job=job, features=features, prompt_tokens=prompt_tokens)

    def _tokenizer(self, task: str, language: str) -> Tokenizer:
        if not self.multilingual:
            task, language = "transcribe", "en"
        key = (task, language)
        if key not in self._tokenizers:
            self._tokenizers[key] = Tokenizer(
                self.model.hf_tokenizer, self.multilingual, task=task, language=language
            )
        return self._tokenizers[key]

    def _decode_windows(self, windows: list[_Window]) -> None:
        features = np.stack([w.features for w in windows])
        encoder_output = self.model.encode(features)
        self._assign_languages(windows, encoder_output)
        self._generate(windows, encoder_output, windows[0].job.temperature)
        schedule = temperature_schedule(
            windows[0].job.temperature, self.config.fallback_temperatures
        )
        for temperature in schedule[1:]:
            failed = [i for i, w in enumerate(windows) if self._needs_fallback(w)]
            if not failed:
                break
            subset = self._select(encoder_output, features, failed)
            self._generate([windows[i] for i in failed], subset, temperature)
        wanted = [i for i, w in enumerate(windows) if w.job.word_timestamps and w.tokens]
        if wanted:
            self._align_words(windows, encoder_output, features, wanted)

    def _assign_languages(self, windows: list[_Window], encoder_output: Any) -> None:
        needs_detection = self.multilingual and any(w.job.language is None for w in windows)
        detected = self.model.model.detect_language(encoder_output) if needs_detection else None
        for i, window in enumerate(windows):
            language = window.job.language
            if language is None:
                language = detected[i][0][0][2:-2] if detected is not None else "en"
            window.language = language
            window.tokenizer = self._tokenizer(window.job.task, language)

    def _generate(
        self,
        windows: list[_Window],
        encoder_output: Any,
        temperature: float,
    ) -> None:
        tokenizer = windows[0].tokenizer
        assert tokenizer is not None
        prompts = [
            self.model.get_prompt(w.tokenizer, w.prompt_tokens, without_timestamps=False)
            for w in windows
        ]
        sampling: dict[str, Any] = (
            {"beam_size": self.config.beam_size}
            if temperature == 0
            else {"beam_size": 1, "num_hypotheses": BEST_OF, "sampling_topk": 0}
        )
        results = self.model.model.generate(
            encoder_output,
            prompts,
            max_length=self.model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, (-1,)),
            max_initial_timestamp_index=round(MAX_INITIAL_TIMESTAMP / self.model.time_precision),
            sampling_temperature=temperature,
            **sampling,
        )
        for window, result in zip(windows, results, strict=True):
            tokens = result.sequences_ids[0]
            score = result.scores[0] * len(tokens)  # length_penalty 1
            window.tokens = tokens
            window.avg_logprob = score / (len(tokens) + 1)
            window.no_speech_prob = result.no_speech_prob
            window.temperature = temperature

    def _needs_fallback(self, window: _Window) -> bool:
        if self._is_silence(window):
            return False
        assert window.tokenizer is not None
        text = window.tokenizer.decode([t for t in window.tokens if t < window.tokenizer.eot])
        return (
            get_compression_ratio(text) > COMPRESSION_RATIO_THRESHOLD
            or window.avg_logprob < LOG_PROB_THRESHOLD
        )

    @staticmethod
    def _is_silence(window: _Window) -> bool:
        return (
            window.no_speech_prob > NO_SPEECH_THRESHOLD and window.avg_logprob < LOG_PROB_THRESHOLD
        )

    def _select(self, encoder_output: Any, features: np.ndarray, rows: list[int]) -> Any:
        """The encoder output of some rows: sliced on CPU, re-encoded elsewhere."""
        if self.model.model.device == "cpu":
            array = np.asarray(encoder_output)[rows]
            return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))
        return self.model.encode(features[rows])

    # -- results ----------------------------------------------------------------------

    def _segments(self, window: _Window) -> list[dict[str, Any]]:
        if self._is_silence(window):
            return []
        assert window.tokenizer is not None
        duration = window.job.duration
        segment_size = int(math.ceil(duration) * self.model.frames_per_second)
        subsegments, _, _ = self.model._split_segments_by_timestamps(
            tokenizer=window.tokenizer,
            tokens=window.tokens,
            time_offset=window.job.offset,
            segment_size=segment_size,
            segment_duration=duration,
            seek=0,
        )
        seek = int(window.job.offset * self.model.frames_per_second)
        return [
            {**sub, "seek": seek, "text": window.tokenizer.decode(sub["tokens"])}
            for sub in subsegments
            if window.tokenizer.decode(sub["tokens"]).strip()
        ]

    def _align_words(
        self,
        windows: list[_Window],
        encoder_output: Any,
        features: np.ndarray,
        rows: list[int],
    ) -> None:
        # The aligner takes one start sequence per call: align per (task, language).
        by_tokenizer: dict[int, list[int]] = defaultdict(list)
        for i in rows:
            by_tokenizer[id(windows[i].tokenizer)].append(i)
        for indices in by_tokenizer.values():
            segments = [self._segments(windows[i]) for i in indices]
            keep = [i for i, segs in zip(indices, segments, strict=True) if segs]
            if not keep:
                continue
            segments = [s for s in segments if s]
            output = (
                encoder_output if keep == list(range(len(windows)))
                else self._select(encoder_output, features, keep)
            )  # fmt: skip
            sizes = [
                int(math.ceil(windows[i].job.duration) * self.model.frames_per_second) for i in keep
            ]
            self.model.add_word_timestamps(
                segments,
                windows[keep[0]].tokenizer,
                output,
                sizes,
                PREPEND_PUNCTUATIONS,
                APPEND_PUNCTUATIONS,
                0.0,
            )
            for i, segs in zip(keep, segments, strict=True):
                windows[i].aligned = segs

    def _result(self, window: _Window) -> TranscriptionResult:
        raw = window.aligned if window.aligned is not None else self._segments(window)
        segments = []
        for index, sub in enumerate(raw):
            words = None
            if window.job.word_timestamps:
                words = [
                    Word(
                        word=w["word"],
                        start=round(w["start"], 3),
                        end=round(w["end"], 3),
                        probability=w["probability"],
                    )
                    for w in sub.get("words", [])
                ]
            segments.append(
                Segment(
                    id=index,
                    seek=sub["seek"],
                    start=round(sub["start"], 3),
                    end=round(sub["end"], 3),
                    text=sub["text"],
                    tokens=list(sub["tokens"]),
                    temperature=window.temperature,
                    avg_logprob=window.avg_logprob,
                    compression_ratio=get_compression_ratio(sub["text"]),
                    no_speech_prob=window.no_speech_prob,
                    words=words,
                )
            )
        words_all = (
            list(itertools.chain.from_iterable(s.words or [] for s in segments))
            if window.job.word_timestamps
            else None
        )
        return TranscriptionResult(
            text="".join(s.text for s in segments).strip(),
            language=window.language,
            duration=window.job.duration,
            segments=segments,
            words=words_all,
        )
