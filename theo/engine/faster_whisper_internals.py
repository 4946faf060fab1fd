"""The one seam for the faster-whisper internals the engine uses, each guarded by a unit test.

``WhisperModel.transcribe`` decodes one audio at a time. To stack the windows of many
requests into one CTranslate2 ``generate`` call, Theo runs Whisper's decoding loop itself
and borrows faster-whisper's pieces for everything else: the feature extractor, the
tokenizer, the prompt builder, the segment splitter and the word aligner. None of them is
documented API; each is wrapped below with why Theo uses it and what it assumes, so that a
faster-whisper upgrade that changes one fails tests/unit/test_faster_whisper_internals.py
instead of a deployment. No other engine module touches these names.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

__all__ = ["FASTER_WHISPER_VERSION", "N_FRAMES", "Tokenizer"]

# The faster-whisper release these assumptions were checked against (pyproject pins it).
FASTER_WHISPER_VERSION = "1.2.1"
N_FRAMES = 3000  # mel frames in one 30 s encoder input

# -- The model and its constants ------------------------------------------------------------


def ctranslate2_model(model: WhisperModel) -> Any:
    """The ``ctranslate2.models.Whisper`` a ``WhisperModel`` wraps.

    Its ``generate`` and ``detect_language`` take a batch of encoder outputs, which is what
    lets Theo decode many requests' windows in one call. Assumes ``WhisperModel.model``.
    """
    return model.model


def is_multilingual(model: WhisperModel) -> bool:
    """Whether the model has language and task tokens (``ctranslate2.models.Whisper``)."""
    return bool(ctranslate2_model(model).is_multilingual)


def device(model: WhisperModel) -> str:
    """The device the model runs on: "cpu" or "cuda" (``ctranslate2.models.Whisper``)."""
    return str(ctranslate2_model(model).device)


def max_length(model: WhisperModel) -> int:
    # The decoder's context (448 tokens), which faster-whisper sets in __init__ and passes
    # to generate; prompts keep at most half of it.
    return int(model.max_length)


def time_precision(model: WhisperModel) -> float:
    # Seconds per timestamp token (0.02), set in __init__; bounds the first timestamp.
    return float(model.time_precision)


def frames_per_second(model: WhisperModel) -> int:
    # Mel frames per second (100), set in __init__. A segment's "seek" must be in these
    # frames for add_word_timestamps, which divides it by this to get the window's offset.
    return int(model.frames_per_second)


def time_per_frame(model: WhisperModel) -> float:
    # Seconds per mel frame (0.01) of the model's FeatureExtractor.
    return float(model.feature_extractor.time_per_frame)


# -- Features and encoding --------------------------------------------------------------


def log_mel(model: WhisperModel, samples: np.ndarray) -> np.ndarray:
    """The log-mel frames of 16 kHz samples, unpadded, as ``WhisperModel.transcribe`` computes.

    Assumes the model's ``feature_extractor`` returns ``[n_mels, frames + 1]``: faster-whisper
    (and Theo) count ``shape[-1] - 1`` frames of content.
    """
    features: np.ndarray = model.feature_extractor(samples)
    return features


def pad_window(features: np.ndarray, frames: int = N_FRAMES) -> np.ndarray:
    """Mel frames padded with zeros (or cut) to one encoder input: 30 s (``N_FRAMES``)
    unless asked for less. CTranslate2's Whisper encoder takes any input up to 30 s."""
    # faster_whisper.audio.pad_or_trim: the padding the encoder was trained on.
    padded: np.ndarray = pad_or_trim(features, length=frames)
    return padded


def encode(model: WhisperModel, features: np.ndarray) -> Any:
    """The encoder output (a ``ctranslate2.StorageView``) of stacked 30 s inputs.

    ``WhisperModel.encode`` converts the array to a StorageView and moves the output to
    the CPU when the model spans several GPUs; Theo reuses that rather than copy it.
    """
    return model.encode(features)


# -- Tokens -----------------------------------------------------------------------------


def make_tokenizer(model: WhisperModel, multilingual: bool, task: str, language: str) -> Tokenizer:
    """faster-whisper's Whisper tokenizer for a task and language.

    Built on ``WhisperModel.hf_tokenizer`` (the model folder's tokenizer.json), as
    ``transcribe`` builds it: its special tokens are what the prompt builder, the segment
    splitter and the word aligner below expect.
    """
    return Tokenizer(model.hf_tokenizer, multilingual, task=task, language=language)


def prompt(
    model: WhisperModel,
    tokenizer: Tokenizer,
    previous_tokens: list[int],
    without_timestamps: bool = False,
) -> list[int]:
    """The decoder prompt: ``<|startofprev|>`` + previous text, then the start sequence
    (``<|startoftranscript|>``, language, task), then ``<|notimestamps|>`` if asked.

    Theo stacks the prompts of windows with as many previous tokens as each other, which
    assumes the prompt's length depends only on that count. ``WhisperModel.get_prompt``.
    """
    tokens: list[int] = model.get_prompt(
        tokenizer, previous_tokens, without_timestamps=without_timestamps
    )
    return tokens


def suppressed_tokens(tokenizer: Tokenizer) -> tuple[int, ...]:
    """The tokens ``transcribe`` suppresses by default (``suppress_tokens=[-1]``): symbols
    that are not speech and the special tokens. ``faster_whisper.transcribe.get_suppressed_tokens``.
    """
    suppressed: tuple[int, ...] = get_suppressed_tokens(tokenizer, (-1,))
    return suppressed


def compression_ratio(text: str) -> float:
    """How well the text zlib-compresses; above 2.4 Whisper calls it a repetition loop.

    ``faster_whisper.transcribe.get_compression_ratio``, so Theo's value is the one
    faster-whisper reports for the same text.
    """
    return float(get_compression_ratio(text))


# -- Segments and words -----------------------------------------------------------------


def split_segments(
    model: WhisperModel,
    tokenizer: Tokenizer,
    tokens: list[int],
    time_offset: float,
    segment_size: int,
) -> tuple[list[dict[str, Any]], int]:
    """Split one pass's tokens at their timestamp pairs into segments.

    Returns the segments (dicts with ``start``, ``end``, ``tokens``; times from
    ``time_offset``) and the mel frames they consumed: ``segment_size`` when the decode
    ended with a lone timestamp (nothing more to say), else up to its last timestamp
    (an unfinished segment is decoded again by the next pass). This is Whisper's rule,
    from ``WhisperModel._split_segments_by_timestamps``; with ``seek=0`` the seek it
    returns is the frames consumed.
    """
    segments, consumed, _ = model._split_segments_by_timestamps(
        tokenizer=tokenizer,
        tokens=tokens,
        time_offset=time_offset,
        segment_size=segment_size,
        segment_duration=segment_size * time_per_frame(model),
        seek=0,
    )
    return segments, int(consumed)


def add_word_timestamps(
    model: WhisperModel,
    segments: list[list[dict[str, Any]]],
    tokenizer: Tokenizer,
    encoder_output: Any,
    num_frames: list[int],
    prepend_punctuations: str,
    append_punctuations: str,
) -> None:
    """Add ``words`` (word, start, end, probability) to each segment dict, in place.

    One list of segments per row of ``encoder_output``, all with one tokenizer (the
    aligner takes one start sequence per call); ``num_frames`` is each row's content
    frames. Offsets come from each list's first segment's ``seek`` over
    ``frames_per_second``. ``WhisperModel.add_word_timestamps`` (cross-attention alignment
    through ``ctranslate2.models.Whisper.align``), with the last speech at 0.0 as
    ``transcribe`` starts: Theo does not carry it from one pass to the next.
    """
    model.add_word_timestamps(
        segments,
        tokenizer,
        encoder_output,
        num_frames,
        prepend_punctuations,
        append_punctuations,
        0.0,
    )


# -- Silero VAD (used by the API service to cut long audio) ------------------------------


@functools.cache
def silero_vad_session() -> Any:
    """The ONNX Runtime session of the Silero VAD model faster-whisper ships, loaded once.

    ``get_speech_timestamps`` takes a whole recording as one array; theo/streaming_vad.py
    runs this session itself on the same 10,000-frame batches to cut audio as it arrives.
    Assumes ``get_vad_model()`` returns a ``SileroVADModel`` whose ``session`` takes
    ``input`` (frames with a 64-sample context), ``h`` and ``c`` and returns (probabilities,
    h, c); the unit tests compare the result with ``get_speech_timestamps``.
    """
    return get_vad_model().session


def speech_spans(samples: np.ndarray, min_silence_ms: int) -> list[tuple[int, int]]:
    """Where 16 kHz ``samples`` hold speech, as (first, end) sample pairs, unpadded: the
    pauses between them last at least ``min_silence_ms``.

    ``faster_whisper.vad.get_speech_timestamps`` (Silero VAD, as ``BatchedInferencePipeline``
    finds its chunks), which returns dicts with ``start`` and ``end`` in samples.
    """
    options = VadOptions(min_silence_duration_ms=min_silence_ms, speech_pad_ms=0)
    return [(int(s["start"]), int(s["end"])) for s in get_speech_timestamps(samples, options)]
