"""theo/formats.py: every OpenAI response_format, checked against exact expected output."""

from __future__ import annotations

import json

import pytest

from tests.unit.fakes import two_segment_result
from theo.formats import (
    format_json,
    format_srt,
    format_text,
    format_verbose_json,
    format_vtt,
)
from theo.languages import language_name
from theo.transcription import Segment, TranscriptionResult

EXPECTED_SRT = (
    "1\n"
    "00:00:00,000 --> 00:00:02,500\n"
    "Hello there.\n"
    "\n"
    "2\n"
    "00:00:02,500 --> 00:00:05,250\n"
    "General Kenobi.\n"
)

EXPECTED_VTT = (
    "WEBVTT\n"
    "\n"
    "00:00:00.000 --> 00:00:02.500\n"
    "Hello there.\n"
    "\n"
    "00:00:02.500 --> 00:00:05.250\n"
    "General Kenobi.\n"
)

SEGMENT_KEYS = {
    "id",
    "seek",
    "start",
    "end",
    "text",
    "tokens",
    "temperature",
    "avg_logprob",
    "compression_ratio",
    "no_speech_prob",
}


def _segment(start: float, end: float, text: str) -> Segment:
    return Segment(
        id=0,
        seek=0,
        start=start,
        end=end,
        text=text,
        tokens=[],
        temperature=0.0,
        avg_logprob=0.0,
        compression_ratio=1.0,
        no_speech_prob=0.0,
    )


def test_srt_exact() -> None:
    assert format_srt(two_segment_result()) == EXPECTED_SRT


def test_vtt_exact() -> None:
    assert format_vtt(two_segment_result()) == EXPECTED_VTT


@pytest.mark.parametrize(
    ("start", "end", "srt_line"),
    [
        (3725.5, 3727.0, "01:02:05,500 --> 01:02:07,000"),
        (59.9999, 61.0, "00:01:00,000 --> 00:01:01,000"),  # millisecond rounding carries over
        (3599.9996, 36000.001, "01:00:00,000 --> 10:00:00,001"),
        (-0.01, 0.0005, "00:00:00,000 --> 00:00:00,000"),  # never negative
    ],
)
def test_timestamps_roll_over(start: float, end: float, srt_line: str) -> None:
    result = TranscriptionResult(text="x", segments=[_segment(start, end, " x")])
    assert format_srt(result) == f"1\n{srt_line}\nx\n"
    assert format_vtt(result) == f"WEBVTT\n\n{srt_line.replace(',', '.')}\nx\n"


def test_srt_and_vtt_without_segments() -> None:
    empty = TranscriptionResult(text="")
    assert format_srt(empty) == ""
    assert format_vtt(empty) == "WEBVTT\n\n"


def test_json() -> None:
    assert format_json(two_segment_result()) == {"text": "Hello there. General Kenobi."}


@pytest.mark.parametrize(("duration", "seconds"), [(5.25, 6), (10.0, 10), (0.01, 1), (0.0, 0)])
def test_usage_is_whole_seconds_rounded_up(duration: float, seconds: int) -> None:
    result = two_segment_result(duration=duration)
    usage = {"type": "duration", "seconds": seconds}
    assert format_json(result, usage=True) == {"text": result.text, "usage": usage}
    verbose = format_verbose_json(
        result, task="transcribe", include_segments=False, include_words=False, usage=True
    )
    assert verbose["usage"] == usage


def test_text_ends_with_newline() -> None:
    assert format_text(two_segment_result()) == "Hello there. General Kenobi.\n"


def test_verbose_json_with_segments_without_words() -> None:
    result = two_segment_result(language="fr", duration=5.25049)
    body = format_verbose_json(
        result, task="transcribe", include_segments=True, include_words=False
    )

    assert body["task"] == "transcribe"
    assert body["language"] == "french"
    assert body["duration"] == 5.25
    assert body["text"] == "Hello there. General Kenobi."
    assert "words" not in body
    assert [s["text"] for s in body["segments"]] == [" Hello there.", " General Kenobi."]
    assert [(s["start"], s["end"]) for s in body["segments"]] == [(0.0, 2.5), (2.5, 5.25)]
    for segment in body["segments"]:
        assert set(segment) == SEGMENT_KEYS
    assert body["segments"][1]["tokens"] == [3611, 50076, 13]
    json.dumps(body)  # serialisable as is


def test_verbose_json_with_words_and_segments() -> None:
    result = two_segment_result(with_words=True)
    body = format_verbose_json(result, task="transcribe", include_segments=True, include_words=True)

    assert body["words"] == [
        {"word": " Hello", "start": 0.0, "end": 0.8},
        {"word": " there.", "start": 0.8, "end": 2.5},
        {"word": " General", "start": 2.5, "end": 3.5},
        {"word": " Kenobi.", "start": 3.5, "end": 5.25},
    ]
    # Words are top-level only, as OpenAI sends them.
    for segment in body["segments"]:
        assert "words" not in segment


def test_verbose_json_words_only() -> None:
    result = two_segment_result(with_words=True)
    body = format_verbose_json(
        result, task="transcribe", include_segments=False, include_words=True
    )
    assert "segments" not in body
    assert len(body["words"]) == 4


def test_verbose_json_words_asked_but_none_produced() -> None:
    body = format_verbose_json(
        two_segment_result(), task="transcribe", include_segments=False, include_words=True
    )
    assert body["words"] == []


def test_verbose_json_translation_is_english() -> None:
    result = two_segment_result(language="de")
    body = format_verbose_json(result, task="translate", include_segments=True, include_words=False)
    assert body["task"] == "translate"
    assert body["language"] == "english"


@pytest.mark.parametrize(
    ("code", "name"),
    [("en", "english"), ("fr", "french"), ("pt", "portuguese"), ("yue", "cantonese")],
)
def test_language_code_to_name(code: str, name: str) -> None:
    assert language_name(code) == name
    body = format_verbose_json(
        two_segment_result(language=code),
        task="transcribe",
        include_segments=False,
        include_words=False,
    )
    assert body["language"] == name


def test_unknown_language_code_is_passed_through() -> None:
    assert language_name("xx") == "xx"
