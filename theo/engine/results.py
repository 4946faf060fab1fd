"""The engine's answer for one job, built from the segments its decode passes produced."""

from __future__ import annotations

import itertools
from typing import Any

from theo.engine import faster_whisper_internals as fw
from theo.transcription import Segment, TranscriptionJob, TranscriptionResult, Word


def transcription_result(
    job: TranscriptionJob, language: str, decoded: list[dict[str, Any]]
) -> TranscriptionResult:
    """A decoded job's segments (and their words, if the job asked for them) as its result.

    ``decoded`` holds the passes' dicts: faster-whisper's segment splitter's (``start``,
    ``end``, ``tokens``, ``words``) plus ``seek``, ``text``, ``temperature``,
    ``avg_logprob`` and ``no_speech_prob``.
    """
    segments = []
    for index, sub in enumerate(decoded):
        words = None
        if job.word_timestamps:
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
                compression_ratio=fw.compression_ratio(sub["text"]),
                no_speech_prob=sub["no_speech_prob"],
                words=words,
            )
        )
    words_all = (
        list(itertools.chain.from_iterable(s.words or [] for s in segments))
        if job.word_timestamps
        else None
    )
    return TranscriptionResult(
        text="".join(s.text for s in segments).strip(),
        language=language,
        duration=job.duration,
        segments=segments,
        words=words_all,
    )
