"""Render a transcription result in each OpenAI ``response_format``."""

from __future__ import annotations

import math
from typing import Any, Literal

from theo.languages import language_name
from theo.transcription import Segment, Task, TranscriptionResult

ResponseFormat = Literal["json", "verbose_json", "text", "srt", "vtt"]
RESPONSE_FORMATS: tuple[ResponseFormat, ...] = ("json", "verbose_json", "text", "srt", "vtt")
# The formats a stream can carry: its events hold text only, no timestamps.
STREAMABLE_FORMATS: tuple[ResponseFormat, ...] = ("json", "text")


def duration_usage(seconds: float) -> dict[str, Any]:
    """OpenAI's ``usage`` for whisper-1: the audio's duration in whole seconds, rounded up."""
    return {"type": "duration", "seconds": math.ceil(seconds)}


def format_json(result: TranscriptionResult, *, usage: bool = False) -> dict[str, Any]:
    """``{"text"}``, and ``usage`` when asked for (OpenAI sends it on transcriptions)."""
    body: dict[str, Any] = {"text": result.text}
    if usage:
        body["usage"] = duration_usage(result.duration)
    return body


def format_verbose_json(
    result: TranscriptionResult,
    *,
    task: Task,
    include_segments: bool,
    include_words: bool,
    usage: bool = False,
) -> dict[str, Any]:
    """OpenAI's verbose_json; ``words`` is present only when word timestamps were asked for."""
    body: dict[str, Any] = {
        "task": task,
        "language": "english" if task == "translate" else language_name(result.language),
        "duration": round(result.duration, 3),
        "text": result.text,
    }
    if include_segments:
        body["segments"] = [segment.model_dump(exclude={"words"}) for segment in result.segments]
    if include_words:
        body["words"] = [
            {"word": w.word, "start": w.start, "end": w.end} for w in result.words or []
        ]
    if usage:
        body["usage"] = duration_usage(result.duration)
    return body


def format_text(result: TranscriptionResult) -> str:
    return result.text + "\n"


def _timestamp(seconds: float, decimal_marker: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _cues(segments: list[Segment], decimal_marker: str) -> list[str]:
    return [
        f"{_timestamp(s.start, decimal_marker)} --> {_timestamp(s.end, decimal_marker)}\n"
        f"{s.text.strip()}\n"
        for s in segments
    ]


def format_srt(result: TranscriptionResult) -> str:
    """SubRip: blocks numbered from 1, ``HH:MM:SS,mmm``, a blank line between blocks."""
    blocks = [f"{i}\n{cue}" for i, cue in enumerate(_cues(result.segments, ","), start=1)]
    return "\n".join(blocks)


def format_vtt(result: TranscriptionResult) -> str:
    """WebVTT: ``WEBVTT`` header, ``HH:MM:SS.mmm`` cues."""
    return "WEBVTT\n\n" + "\n".join(_cues(result.segments, "."))
