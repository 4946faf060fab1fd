"""The decode passes: a group's windows, stacked into CTranslate2 calls pass by pass, to results."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel

from theo.engine import faster_whisper_internals as fw
from theo.engine.faster_whisper_internals import N_FRAMES, Tokenizer
from theo.engine.policy import (
    BEST_OF,
    MAX_INITIAL_TIMESTAMP,
    PROMPT_TOKENS_MAX,
    Attempt,
    best_attempt,
    choose_language,
    encoder_input_frames,
    is_digital_silence,
    temperature_schedule,
)
from theo.engine.results import transcription_result
from theo.engine.segmenting import (
    MIN_PAUSE_MS,
    UNHEARD_SPEECH_SECONDS,
    longest_unheard_speech,
    pauses_between,
    segment_breaks,
    unspoken_repeats,
)
from theo.manifest import EngineConfig
from theo.transcription import TranscriptionJob, TranscriptionResult

MAX_PASSES = 16  # a pass always advances; this only bounds pathological outputs
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"  # noqa: RUF001 - Whisper's own list


@dataclass
class _Window:
    """One job while it is being decoded, possibly over several passes.

    A pass decodes up to 30 s from ``seek``. When Whisper closes its last segment before
    the end of the audio it saw, the next pass resumes at that segment's end, conditioned
    on the text so far (as ``WhisperModel.transcribe`` does within a window). A long-form
    window (``job.long_form``) is decoded as text in one pass instead (no timestamp
    tokens, so Whisper transcribes all of it); its words are then aligned to the audio
    and its segments cut at pauses and sentence ends (theo/engine/segmenting.py). Where
    that text left a stretch of speech out, the window is decoded again with timestamps.
    """

    job: TranscriptionJob
    features: np.ndarray  # log-mel frames of the whole job, unpadded
    user_prompt: list[int]
    samples: np.ndarray | None = None  # a long-form window's, to find its pauses
    as_text: bool = False  # decoded without timestamps (a long-form window, at first)
    speech: list[tuple[int, int]] | None = None  # a long-form window's, found once
    seek: int = 0  # mel frames already decoded
    language: str | None = None
    tokenizer: Tokenizer | None = None
    history: list[int] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    full_input: bool = False  # a shorter encoder input failed: 30 s from now on
    # the current pass
    segment_size: int = 0
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def long_form(self) -> bool:
        return self.job.long_form

    @property
    def offset(self) -> float:
        return self.job.offset

    @property
    def content_frames(self) -> int:
        return int(self.features.shape[-1]) - 1

    @property
    def input_frames(self) -> int:
        """The current pass's encoder input, in mel frames (``N_FRAMES``: 30 s)."""
        seconds = self.job.encoder_seconds
        if seconds is None or self.full_input:
            return N_FRAMES
        return encoder_input_frames(self.segment_size, round(seconds * N_FRAMES / 30), N_FRAMES)

    @property
    def prompt_tokens(self) -> list[int]:
        return (self.user_prompt + self.history)[-PROMPT_TOKENS_MAX:]


# Called by a group before each CTranslate2 call; may block, and names the instance the
# call runs on (theo/engine/instances.py).
MakeWay = Callable[[], WhisperModel]


class GroupDecoder:
    """Decodes a group of windows on the model instance it is given.

    Each pass splits the group's pending windows into *stacks*: the windows decoded
    together by one CTranslate2 ``generate`` call. ``model`` (the workers' instance) also
    extracts features, builds tokenizers and prompts and splits segments, none of which
    depends on the instance that decodes.
    """

    def __init__(self, model: WhisperModel, config: EngineConfig) -> None:
        self.model = model
        self.config = config
        self.multilingual = fw.is_multilingual(model)
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}

    def decode(
        self, jobs: list[TranscriptionJob], instance: WhisperModel, pause: MakeWay | None = None
    ) -> list[TranscriptionResult]:
        """Decode a group's jobs, each at most 30 s, on ``instance``, or on the instance
        ``pause`` names before each model call."""
        windows = [self._prepare(job) for job in jobs]
        for _ in range(MAX_PASSES):
            pending = [w for w in windows if w.seek < w.content_frames]
            if not pending:
                break
            # CTranslate2 needs <|startoftranscript|> at the same position in every
            # prompt, the same task tokens after it (<|notimestamps|> or not), and one
            # sampling temperature and beam per call: stack on all four. The encoder
            # takes one input length per call: a stack's is its longest window's
            # (``_decode_stack``), cheaper than decoding it as two stacks.
            stacks: dict[tuple[int, float, bool, int | None], list[_Window]]
            stacks = defaultdict(list)
            for window in pending:
                window.segment_size = min(N_FRAMES, window.content_frames - window.seek)
                job = window.job
                key = (len(window.prompt_tokens), job.temperature, window.as_text, job.beam_size)
                stacks[key].append(window)
            for stack in stacks.values():
                self._decode_stack(stack, pause or (lambda: instance))
        return [
            transcription_result(
                window.job,
                window.language or window.job.language or window.job.language_hint or "en",
                window.segments,
            )
            for window in windows
        ]

    def encode(self, features: np.ndarray, instance: WhisperModel) -> Any:
        """The encoder output of a stack's windows, ``encode_batch_size`` per call on CPU.

        On one CPU thread, encoding windows one by one and concatenating their outputs for
        one ``generate`` call gave ~8% more throughput than one encode of the whole stack
        (docs/performance.md).
        """
        step = self.config.encode_batch_size
        if not 0 < step < len(features) or fw.device(instance) != "cpu":
            return fw.encode(instance, features)
        parts = [
            np.asarray(fw.encode(instance, features[i : i + step]))
            for i in range(0, len(features), step)
        ]
        return ctranslate2.StorageView.from_array(np.concatenate(parts))

    def _prepare(self, job: TranscriptionJob) -> _Window:
        samples = job.samples()
        features = fw.log_mel(self.model, samples)
        tokenizer = self._tokenizer(job.task, job.language or "en")
        prompt = tokenizer.encode(" " + job.prompt.strip()) if job.prompt else []
        window = _Window(job=job, features=features, user_prompt=prompt[-PROMPT_TOKENS_MAX:])
        if job.long_form:
            window.samples = samples
            window.as_text = True
        if is_digital_silence(samples):
            window.seek = window.content_frames  # nothing to decode
        return window

    def _tokenizer(self, task: str, language: str) -> Tokenizer:
        if not self.multilingual:
            task, language = "transcribe", "en"
        key = (task, language)
        if key not in self._tokenizers:
            self._tokenizers[key] = fw.make_tokenizer(
                self.model, self.multilingual, task=task, language=language
            )
        return self._tokenizers[key]

    def _decode_stack(self, stack: list[_Window], pause: MakeWay) -> None:
        """One pass over a stack: encode, decode (hotter again where it failed), advance.

        A window whose shorter encoder input gave a failed (or silent) decode is not
        advanced: the next pass decodes it again on 30 s, before any hotter retry.
        """
        frames = max(w.input_frames for w in stack)
        features = np.stack(
            [fw.pad_window(w.features[:, w.seek : w.seek + w.segment_size], frames) for w in stack]
        )
        instance = pause()
        encoder_output = self.encode(features, instance)
        self._assign_languages(stack, encoder_output, instance)
        for window in stack:
            window.attempts.clear()
        instance = pause()
        self._generate(stack, encoder_output, stack[0].job.temperature, instance)
        again = set()
        if frames < N_FRAMES:
            for i, window in enumerate(stack):
                if window.attempts[-1].failed or window.attempts[-1].is_silence:
                    window.full_input = True
                    window.language = None  # detected again on the 30 s input
                    again.add(i)
        schedule = temperature_schedule(stack[0].job.temperature, self.config.fallback_temperatures)
        for temperature in schedule[1:]:
            failed = [i for i, w in enumerate(stack) if w.attempts[-1].failed and i not in again]
            if not failed:
                break
            instance = pause()
            subset = self._select(encoder_output, features, failed, instance)
            self._generate([stack[i] for i in failed], subset, temperature, instance)
        new_segments = [
            [] if i in again else self._advance(window, best_attempt(window.attempts))
            for i, window in enumerate(stack)
        ]
        wanted = [
            i
            for i, w in enumerate(stack)
            if (w.job.word_timestamps or w.long_form) and new_segments[i]
        ]
        if wanted:
            instance = pause()
            self._align_words(stack, new_segments, encoder_output, features, wanted, instance)
        for i, window in enumerate(stack):
            segments = new_segments[i]
            if window.long_form and segments:
                if window.as_text and _left_speech_out(segments[0], window):
                    _decode_again_with_timestamps(window)
                    continue
                # Whisper's own segments too (a window decoded again): a long-form
                # window's segments start where speech does.
                whole = _without_unspoken_repeats(_joined(segments))
                segments = _cut_at_pauses(whole, window, self._text_tokens) if whole else []
            window.segments.extend(segments)

    def _assign_languages(
        self, stack: list[_Window], encoder_output: Any, instance: WhisperModel
    ) -> None:
        """Each window's language (and tokenizer), on its first pass.

        The job's language when given; else the one detected on the encoder output at hand
        (one decoder step), which for a long-form window yields to the language its request
        was heard in so far (the job's hint) unless it is sure of another.
        """
        undecided = [i for i, w in enumerate(stack) if w.language is None]
        if not undecided:
            return
        needs_detection = self.multilingual and any(
            stack[i].job.language is None for i in undecided
        )
        detected = (
            fw.ctranslate2_model(instance).detect_language(encoder_output)
            if needs_detection
            else None
        )
        for i in undecided:
            window = stack[i]
            language = window.job.language
            if language is None and detected is not None:
                # CTranslate2 names a language by its token, "<|en|>"
                language, probability = detected[i][0][0][2:-2], detected[i][0][1]
                if window.long_form:
                    language = choose_language(language, probability, window.job.language_hint)
            window.language = language or "en"
            window.tokenizer = self._tokenizer(window.job.task, window.language)

    def _generate(
        self,
        windows: list[_Window],
        encoder_output: Any,
        temperature: float,
        instance: WhisperModel,
    ) -> None:
        """Decode windows of one stack (all of them, or those to retry) at one temperature."""
        tokenizer = windows[0].tokenizer
        assert tokenizer is not None
        prompts = [
            fw.prompt(self.model, w.tokenizer, w.prompt_tokens, without_timestamps=w.as_text)
            for w in windows
        ]
        sampling: dict[str, Any] = (
            {"beam_size": windows[0].job.beam_size or self.config.beam_size}
            if temperature == 0
            else {"beam_size": 1, "num_hypotheses": BEST_OF, "sampling_topk": 0}
        )
        results = fw.ctranslate2_model(instance).generate(
            encoder_output,
            prompts,
            max_length=fw.max_length(self.model),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=fw.suppressed_tokens(tokenizer),
            max_initial_timestamp_index=round(
                MAX_INITIAL_TIMESTAMP / fw.time_precision(self.model)
            ),
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
                    compression_ratio=fw.compression_ratio(text),
                )
            )

    def _select(
        self, encoder_output: Any, features: np.ndarray, rows: list[int], instance: WhisperModel
    ) -> Any:
        """The encoder output of some rows: sliced on CPU, re-encoded elsewhere."""
        if fw.device(instance) == "cpu":
            array = np.asarray(encoder_output)[rows]
            return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))
        return fw.encode(instance, features[rows])

    def _advance(self, window: _Window, attempt: Attempt) -> list[dict[str, Any]]:
        """Split a pass's chosen decode into segments; move ``seek`` past what they cover."""
        if attempt.is_silence:
            window.seek += window.segment_size
            return []
        tokenizer = window.tokenizer
        assert tokenizer is not None
        time_per_frame = fw.time_per_frame(self.model)
        time_offset = window.offset + window.seek * time_per_frame
        if window.as_text:
            return self._advance_text(window, attempt, time_offset)
        subsegments, consumed = fw.split_segments(
            self.model, tokenizer, attempt.tokens, time_offset, window.segment_size
        )
        # Whisper may put a segment's end past the audio it was given (into the zeros
        # that pad a short pass): keep segments within the pass's audio.
        pass_end = time_offset + window.segment_size * time_per_frame
        for sub in subsegments:
            sub["start"] = min(max(sub["start"], time_offset), pass_end)
            sub["end"] = min(max(sub["end"], sub["start"]), pass_end)
        window.seek += consumed if consumed > 0 else window.segment_size
        seek = round(time_offset * fw.frames_per_second(self.model))
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

    def _advance_text(
        self, window: _Window, attempt: Attempt, time_offset: float
    ) -> list[dict[str, Any]]:
        """A text-only pass covers its audio whole: one segment, cut once its words are
        aligned (``_cut_at_pauses``)."""
        tokenizer = window.tokenizer
        assert tokenizer is not None
        window.seek += window.segment_size
        tokens = [t for t in attempt.tokens if t < tokenizer.eot]
        text = tokenizer.decode(tokens)
        if attempt.resets_prompt:
            window.history.clear()
        else:
            window.history.extend(tokens)
        if not text.strip():
            return []
        return [
            {
                "start": time_offset,
                "end": time_offset + window.segment_size * fw.time_per_frame(self.model),
                "tokens": tokens,
                "seek": round(time_offset * fw.frames_per_second(self.model)),
                "text": text,
                "temperature": attempt.temperature,
                "avg_logprob": attempt.avg_logprob,
                "no_speech_prob": attempt.no_speech_prob,
            }
        ]

    def _text_tokens(self, window: _Window, text: str) -> list[int]:
        assert window.tokenizer is not None
        return list(window.tokenizer.encode(text))

    def _align_words(
        self,
        stack: list[_Window],
        new_segments: list[list[dict[str, Any]]],
        encoder_output: Any,
        features: np.ndarray,
        rows: list[int],
        instance: WhisperModel,
    ) -> None:
        # The aligner takes one start sequence per call: align per (task, language).
        by_tokenizer: dict[int, list[int]] = defaultdict(list)
        for i in rows:
            by_tokenizer[id(stack[i].tokenizer)].append(i)
        for indices in by_tokenizer.values():
            output = (
                encoder_output if indices == list(range(len(stack)))
                else self._select(encoder_output, features, indices, instance)
            )  # fmt: skip
            fw.add_word_timestamps(
                instance,
                [new_segments[i] for i in indices],
                stack[indices[0]].tokenizer,
                output,
                [stack[i].segment_size for i in indices],
                PREPEND_PUNCTUATIONS,
                APPEND_PUNCTUATIONS,
            )


def _speech(window: _Window) -> list[tuple[int, int]]:
    """Where a long-form window holds speech (Silero VAD), found once."""
    if window.speech is None:
        assert window.samples is not None
        window.speech = fw.speech_spans(window.samples, MIN_PAUSE_MS)
    return window.speech


def _left_speech_out(whole: dict[str, Any], window: _Window) -> bool:
    """Whether a text-only pass's words, aligned, leave a stretch of speech untranscribed."""
    words = [(w["start"], w["end"]) for w in whole.get("words") or []]
    unheard = longest_unheard_speech(words, _speech(window), window.offset)
    return unheard >= UNHEARD_SPEECH_SECONDS


def _decode_again_with_timestamps(window: _Window) -> None:
    """Start a window over as a timestamped decode, which resumes wherever Whisper stops
    (its words are still aligned: a long-form window's timestamps are its words')."""
    window.as_text = False
    window.seek = 0
    window.history.clear()  # not the text that left speech out as the prompt


def _joined(segments: list[dict[str, Any]]) -> dict[str, Any]:
    """A pass's segments as one, their words aligned."""
    if len(segments) == 1:
        return segments[0]
    return {
        **segments[0],
        "end": segments[-1]["end"],
        "text": "".join(s["text"] for s in segments),
        "tokens": [t for s in segments for t in s["tokens"]],
        "words": [w for s in segments for w in s.get("words") or []],
    }


def _without_unspoken_repeats(whole: dict[str, Any]) -> dict[str, Any] | None:
    """A pass's segment without a phrase Whisper said again that has no audio; None when
    no word is left."""
    words = whole.get("words") or []
    unspoken = unspoken_repeats([(w["word"], w["start"], w["end"]) for w in words])
    if not unspoken:
        return whole
    kept = [w for i, w in enumerate(words) if i not in unspoken]
    if not kept:
        return None
    return {**whole, "text": "".join(w["word"] for w in kept), "words": kept}


def _cut_at_pauses(
    whole: dict[str, Any], window: _Window, encode: Callable[[_Window, str], list[int]]
) -> list[dict[str, Any]]:
    """A text-only pass's segment, its words aligned, cut where segments start."""
    words = whole.get("words") or []
    if not words:
        return [whole]
    assert window.samples is not None
    pauses = pauses_between(_speech(window), len(window.samples), window.offset)
    breaks = segment_breaks([(w["word"], w["start"], w["end"]) for w in words], pauses)
    starts = sorted({0, *breaks})
    segments = []
    for first, last in zip(starts, [*starts[1:], len(words)], strict=True):
        part = words[first:last]
        start = breaks.get(first)
        if start is not None:
            part[0]["start"] = start
        text = "".join(w["word"] for w in part)
        segments.append(
            {
                **whole,
                "start": part[0]["start"],
                "end": max(part[-1]["end"], part[0]["start"]),
                "text": text,
                "tokens": encode(window, text),
                "words": part,
            }
        )
    return segments
