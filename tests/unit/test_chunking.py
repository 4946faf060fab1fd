"""Windowing long audio and stitching the windows' results."""

from __future__ import annotations

import numpy as np

from theo.chunking import merge_window_results, split_into_windows
from theo.transcription import SAMPLE_RATE, Segment, TranscriptionResult, Word


def _segment(i: int, start: float, end: float, text: str) -> Segment:
    return Segment(
        id=i,
        seek=0,
        start=start,
        end=end,
        text=text,
        tokens=[1],
        temperature=0.0,
        avg_logprob=-0.2,
        compression_ratio=1.0,
        no_speech_prob=0.0,
    )


def test_short_audio_is_one_window_at_zero() -> None:
    audio = np.zeros(10 * SAMPLE_RATE, dtype=np.float32)
    windows = split_into_windows(audio)
    assert len(windows) == 1 and windows[0].offset == 0.0
    assert len(windows[0].samples) == len(audio)


def test_long_silence_has_no_windows() -> None:
    audio = np.zeros(95 * SAMPLE_RATE, dtype=np.float32)
    assert split_into_windows(audio) == []


def test_merge_renumbers_segments_and_keeps_order() -> None:
    first = TranscriptionResult(
        text="Hello there.",
        language="en",
        duration=30.0,
        segments=[_segment(0, 0.0, 2.0, " Hello"), _segment(1, 2.0, 4.0, " there.")],
        words=[Word(word=" Hello", start=0.0, end=1.0)],
        batch_size=3,
    )
    empty = TranscriptionResult(text="", language="fr", duration=5.0)
    second = TranscriptionResult(
        text="Bye.",
        language="en",
        duration=20.0,
        segments=[_segment(0, 41.0, 42.0, " Bye.")],
        words=[Word(word=" Bye.", start=41.0, end=42.0)],
        batch_size=5,
    )
    merged = merge_window_results([first, empty, second], duration=61.5)
    assert merged.text == "Hello there. Bye."
    assert [s.id for s in merged.segments] == [0, 1, 2]
    assert [s.start for s in merged.segments] == [0.0, 2.0, 41.0]
    assert merged.words is not None and [w.word for w in merged.words] == [" Hello", " Bye."]
    assert merged.duration == 61.5 and merged.language == "en" and merged.batch_size == 5


def test_merge_of_nothing_is_empty() -> None:
    merged = merge_window_results([], duration=90.0)
    assert merged.text == "" and merged.segments == [] and merged.duration == 90.0
