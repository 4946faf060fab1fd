"""The faster-whisper engine: loads one model folder and decodes batches of audio windows.

A batch is really decoded together: the encoder outputs of a group's windows are
stacked into one CTranslate2 ``generate`` call (per set of windows whose prompts line
up), using faster-whisper's own feature extractor, prompt builder, segment splitter
and word aligner. Knows nothing about HTTP or BentoML.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
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
from threadpoolctl import threadpool_limits

from theo.engine.instances import InstanceChooser
from theo.engine.policy import (
    BEST_OF,
    MAX_INITIAL_TIMESTAMP,
    PROMPT_TOKENS_MAX,
    Attempt,
    best_attempt,
    is_digital_silence,
    temperature_schedule,
)
from theo.manifest import ModelManifest
from theo.transcription import Segment, TranscriptionJob, TranscriptionResult, Word

logger = logging.getLogger(__name__)

N_FRAMES = 3000  # mel frames in one 30 s encoder input
MAX_PASSES = 16  # a pass always advances; this only bounds pathological outputs
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"  # noqa: RUF001 - Whisper's own list


@dataclass
class _Window:
    """One job while it is being decoded, possibly over several passes.

    A pass decodes up to 30 s from ``seek``. When Whisper closes its last segment before
    the end of the audio it saw, the next pass resumes at that segment's end, conditioned
    on the text so far (as ``WhisperModel.transcribe`` does within a window).
    """

    job: TranscriptionJob
    features: np.ndarray  # log-mel frames of the whole job, unpadded
    user_prompt: list[int]
    seek: int = 0  # mel frames already decoded
    language: str | None = None
    tokenizer: Tokenizer | None = None
    history: list[int] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    # the current pass
    segment_size: int = 0
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def content_frames(self) -> int:
        return int(self.features.shape[-1]) - 1

    @property
    def prompt_tokens(self) -> list[int]:
        return (self.user_prompt + self.history)[-PROMPT_TOKENS_MAX:]


class FasterWhisperEngine:
    """One loaded Whisper model and the decoding options its manifest gives it."""

    def __init__(self, model_path: Path, manifest: ModelManifest):
        config = manifest.engine_config
        # numpy's BLAS does the mel filter product only. Its extra threads busy-wait after
        # each one and took ~10% of the CPU from CTranslate2's workers (README "Performance").
        threadpool_limits(limits=1, user_api="blas")
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

        self.model = load(config.device, config.cpu_threads, config.num_workers)
        self.multilingual: bool = self.model.model.is_multilingual
        # At low load a lone request would run on one worker's threads while the other
        # cores idle: a second instance with more threads decodes it instead.
        solo = None
        if config.solo_cpu_threads and self.model.model.device == "cpu":
            solo = load("cpu", config.solo_cpu_threads, num_workers=1)
        self.instances = InstanceChooser(self.model, solo)
        self._pool = ThreadPoolExecutor(
            max_workers=config.num_workers, thread_name_prefix=f"engine-{manifest.name}"
        )
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}

    # -- public API -----------------------------------------------------------------

    def transcribe_batch(self, jobs: list[TranscriptionJob]) -> list[TranscriptionResult]:
        """Decode every job (each at most 30 s); a failed group reports ``error`` per job.

        Jobs are decoded in groups of at most ``decode_batch_size`` windows, each group
        one engine call; up to ``num_workers`` groups, of this batch or of another lane's,
        run at once. A batch is not split further to fill an idle worker: the runner's
        lanes do that, and a group of one window costs ~15% more per window than a group
        of two or more (README "Performance").
        """
        if not jobs:
            return []
        size = self.config.decode_batch_size
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
        with self.instances.claim() as model:
            try:
                return self._decode(jobs, model)
            except Exception as exc:  # report per job; the runner keeps serving
                logger.exception("engine failed on a batch of %d", len(jobs))
                return [TranscriptionResult(error=f"{type(exc).__name__}: {exc}") for _ in jobs]

    def _decode(
        self, jobs: list[TranscriptionJob], model: WhisperModel
    ) -> list[TranscriptionResult]:
        windows = [self._prepare(job) for job in jobs]
        for _ in range(MAX_PASSES):
            pending = [w for w in windows if w.seek < w.content_frames]
            if not pending:
                break
            # CTranslate2 needs <|startoftranscript|> at the same position in every
            # prompt, and one sampling temperature per call: group on both.
            groups: dict[tuple[int, float], list[_Window]] = defaultdict(list)
            for window in pending:
                window.segment_size = min(N_FRAMES, window.content_frames - window.seek)
                groups[(len(window.prompt_tokens), window.job.temperature)].append(window)
            for group in groups.values():
                self._decode_pass(group, model)
        return [self._result(window) for window in windows]

    def _prepare(self, job: TranscriptionJob) -> _Window:
        samples = job.samples()
        features = self.model.feature_extractor(samples)
        tokenizer = self._tokenizer(job.task, job.language or "en")
        prompt = tokenizer.encode(" " + job.prompt.strip()) if job.prompt else []
        window = _Window(job=job, features=features, user_prompt=prompt[-PROMPT_TOKENS_MAX:])
        if is_digital_silence(samples):
            window.seek = window.content_frames  # nothing to decode
        return window

    def _tokenizer(self, task: str, language: str) -> Tokenizer:
        if not self.multilingual:
            task, language = "transcribe", "en"
        key = (task, language)
        if key not in self._tokenizers:
            self._tokenizers[key] = Tokenizer(
                self.model.hf_tokenizer, self.multilingual, task=task, language=language
            )
        return self._tokenizers[key]

    def _decode_pass(self, windows: list[_Window], model: WhisperModel) -> None:
        features = np.stack(
            [pad_or_trim(w.features[:, w.seek : w.seek + w.segment_size]) for w in windows]
        )
        encoder_output = self._encode(features, model)
        self._assign_languages(windows, encoder_output, model)
        for window in windows:
            window.attempts.clear()
        self._generate(windows, encoder_output, windows[0].job.temperature, model)
        schedule = temperature_schedule(
            windows[0].job.temperature, self.config.fallback_temperatures
        )
        for temperature in schedule[1:]:
            failed = [i for i, w in enumerate(windows) if w.attempts[-1].failed]
            if not failed:
                break
            subset = self._select(encoder_output, features, failed, model)
            self._generate([windows[i] for i in failed], subset, temperature, model)
        new_segments = [self._advance(window, best_attempt(window.attempts)) for window in windows]
        wanted = [i for i, w in enumerate(windows) if w.job.word_timestamps and new_segments[i]]
        if wanted:
            self._align_words(windows, new_segments, encoder_output, features, wanted, model)
        for window, segments in zip(windows, new_segments, strict=True):
            window.segments.extend(segments)

    def _encode(self, features: np.ndarray, model: WhisperModel) -> Any:
        """The encoder output of stacked windows, in calls of ``encode_batch_size`` on CPU.

        On one CPU thread, encoding windows one by one and stacking their outputs for one
        ``generate`` call gave ~8% more throughput than a stacked encode (README "Performance").
        """
        step = self.config.encode_batch_size
        if not 0 < step < len(features) or model.model.device != "cpu":
            return model.encode(features)
        parts = [
            np.asarray(model.encode(features[i : i + step])) for i in range(0, len(features), step)
        ]
        return ctranslate2.StorageView.from_array(np.concatenate(parts))

    def _assign_languages(
        self, windows: list[_Window], encoder_output: Any, model: WhisperModel
    ) -> None:
        undetected = [i for i, w in enumerate(windows) if w.language is None]
        if not undetected:
            return
        needs_detection = self.multilingual and any(
            windows[i].job.language is None for i in undetected
        )
        detected = model.model.detect_language(encoder_output) if needs_detection else None
        for i in undetected:
            window = windows[i]
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
        model: WhisperModel,
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
        results = model.model.generate(
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
            assert window.tokenizer is not None
            tokens = result.sequences_ids[0]
            score = result.scores[0] * len(tokens)  # length_penalty 1
            text = window.tokenizer.decode([t for t in tokens if t < window.tokenizer.eot])
            window.attempts.append(
                Attempt(
                    tokens=tokens,
                    avg_logprob=score / (len(tokens) + 1),
                    no_speech_prob=result.no_speech_prob,
                    temperature=temperature,
                    compression_ratio=get_compression_ratio(text),
                )
            )

    def _select(
        self, encoder_output: Any, features: np.ndarray, rows: list[int], model: WhisperModel
    ) -> Any:
        """The encoder output of some rows: sliced on CPU, re-encoded elsewhere."""
        if model.model.device == "cpu":
            array = np.asarray(encoder_output)[rows]
            return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))
        return model.encode(features[rows])

    def _advance(self, window: _Window, attempt: Attempt) -> list[dict[str, Any]]:
        """Split a pass's chosen decode into segments; move ``seek`` past what they cover."""
        if attempt.is_silence:
            window.seek += window.segment_size
            return []
        tokenizer = window.tokenizer
        assert tokenizer is not None
        time_per_frame = self.model.feature_extractor.time_per_frame
        time_offset = window.job.offset + window.seek * time_per_frame
        subsegments, consumed, _ = self.model._split_segments_by_timestamps(
            tokenizer=tokenizer,
            tokens=attempt.tokens,
            time_offset=time_offset,
            segment_size=window.segment_size,
            segment_duration=window.segment_size * time_per_frame,
            seek=0,
        )
        window.seek += consumed if consumed > 0 else window.segment_size
        seek = round(time_offset * self.model.frames_per_second)
        segments = []
        for sub in subsegments:
            text = tokenizer.decode([t for t in sub["tokens"] if t < tokenizer.eot])
            if text.strip():
                segments.append(
                    {
                        **sub,
                        "seek": seek,
                        "text": text,
                        "temperature": attempt.temperature,
                        "avg_logprob": attempt.avg_logprob,
                        "no_speech_prob": attempt.no_speech_prob,
                    }
                )
        if attempt.resets_prompt:
            window.history.clear()
        else:
            window.history.extend(t for s in segments for t in s["tokens"])
        return segments

    def _align_words(
        self,
        windows: list[_Window],
        new_segments: list[list[dict[str, Any]]],
        encoder_output: Any,
        features: np.ndarray,
        rows: list[int],
        model: WhisperModel,
    ) -> None:
        # The aligner takes one start sequence per call: align per (task, language).
        by_tokenizer: dict[int, list[int]] = defaultdict(list)
        for i in rows:
            by_tokenizer[id(windows[i].tokenizer)].append(i)
        for indices in by_tokenizer.values():
            output = (
                encoder_output if indices == list(range(len(windows)))
                else self._select(encoder_output, features, indices, model)
            )  # fmt: skip
            model.add_word_timestamps(
                [new_segments[i] for i in indices],
                windows[indices[0]].tokenizer,
                output,
                [windows[i].segment_size for i in indices],
                PREPEND_PUNCTUATIONS,
                APPEND_PUNCTUATIONS,
                0.0,
            )

    # -- results ----------------------------------------------------------------------

    def _result(self, window: _Window) -> TranscriptionResult:
        segments = []
        for index, sub in enumerate(window.segments):
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
                    temperature=sub["temperature"],
                    avg_logprob=sub["avg_logprob"],
                    compression_ratio=get_compression_ratio(sub["text"]),
                    no_speech_prob=sub["no_speech_prob"],
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
            language=window.language or window.job.language or "en",
            duration=window.job.duration,
            segments=segments,
            words=words_all,
        )
