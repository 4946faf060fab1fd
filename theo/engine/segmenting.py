"""Segments of a long-form pass from its words: cut where speech pauses or a sentence ends.

A long-form pass is decoded as text alone (no timestamp tokens, so Whisper transcribes the
whole window in one pass, as the batched pipeline does) and its words are then aligned to
the audio. Its segments start where speech starts again after a pause, or after a
sentence's end: the places a listener hears a new line start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from theo.transcription import SAMPLE_RATE

# A silence at least this long is a pause (sentences in read speech are 0.3-0.6 s apart;
# a breath inside one is shorter).
MIN_PAUSE_MS = 250
# The first word after a pause has its middle past the pause's start (word alignment
# stretches it back into the pause) and at most this far past its end.
PAUSE_TOLERANCE_SECONDS = 0.5
SENTENCE_ENDS = (".", "?", "!", "\u3002", "\uff1f", "\uff01")  # and the fullwidth ones
# Decoding a window as text, Whisper sometimes skips a sentence or stops before the end
# of the audio. Speech this long that no aligned word comes near was not transcribed: the
# window is decoded again with timestamps. (On the memory benchmark's block, 5 of 22
# windows had such a stretch, of 3-10 s, and the other 17 none; docs/performance.md.)
UNHEARD_SPEECH_SECONDS = 1.0
# How far around an aligned word its audio reaches (alignment is ~0.1-0.3 s off at a word's edges).
WORD_REACH_SECONDS = 0.5
# Decoding a window as text, Whisper sometimes says its last phrase again ("... young man,
# and he was not an ill-disposed young man."), and the word alignment squeezes the repeat
# into the window's last 20 ms frame. A run of this many words or more in a row with no
# audio (one frame or none) that repeats the words before it was not spoken. (Words without
# audio alone are not enough: the aligner also squeezes real words it misplaces, e.g. the
# French "n'y a" of "Il n'y a pas", split into three words.)
UNSPOKEN_RUN_WORDS = 3
UNSPOKEN_WORD_SECONDS = 0.02


@dataclass(frozen=True)
class Pause:
    start: float
    end: float


def pauses_between(spans: Sequence[tuple[int, int]], samples: int, offset: float) -> list[Pause]:
    """The pauses around speech ``spans`` (sample pairs) of ``samples`` samples that start
    ``offset`` s into the request: before the first, between two, after the last."""
    edges = [0, *(x for span in spans for x in span), samples]
    pauses = []
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if (end - start) / SAMPLE_RATE * 1000 >= MIN_PAUSE_MS:
            pauses.append(Pause(offset + start / SAMPLE_RATE, offset + end / SAMPLE_RATE))
    return pauses


def segment_breaks(
    words: Sequence[tuple[str, float, float]], pauses: Sequence[Pause]
) -> dict[int, float | None]:
    """Where segments start: word index -> its start if a pause moved it, else None.

    ``words`` are (text, start, end). A segment starts after a word that ends a sentence,
    and at the first word spoken after a pause, which then starts when the pause ends.
    """
    breaks: dict[int, float | None] = {}
    for i in range(1, len(words)):
        if words[i - 1][0].strip().endswith(SENTENCE_ENDS):
            breaks[i] = None
    for pause in pauses:
        # The first word spoken after the pause: the first whose middle is past its start.
        for i, (_, start, end) in enumerate(words):
            middle = (start + end) / 2
            if middle < pause.start:
                continue
            if middle <= pause.end + PAUSE_TOLERANCE_SECONDS:
                breaks[i] = min(max(start, pause.end), end)
            break
    return breaks


def longest_unheard_speech(
    words: Sequence[tuple[float, float]], spans: Sequence[tuple[int, int]], offset: float
) -> float:
    """The longest stretch of speech, in seconds, that no word comes near.

    ``words`` are (start, end) in seconds into the request, ``spans`` speech as sample
    pairs of a window that starts ``offset`` s into it.
    """
    heard = sorted((start - WORD_REACH_SECONDS, end + WORD_REACH_SECONDS) for start, end in words)
    longest = 0.0
    for first, end in spans:
        cursor, stop = offset + first / SAMPLE_RATE, offset + end / SAMPLE_RATE
        for start, finish in heard:
            if finish <= cursor:
                continue
            if start >= stop:
                break
            longest = max(longest, start - cursor)
            cursor = max(cursor, finish)
        longest = max(longest, stop - cursor)
    return longest


def unspoken_repeats(words: Sequence[tuple[str, float, float]]) -> set[int]:
    """Indices of the ``words`` ((text, start, end), seconds) that repeat the words before
    them and were given no audio: a phrase Whisper said again (its first word may differ,
    "and he was ..." after "He was ...")."""
    unspoken: set[int] = set()
    run: list[int] = []
    for i, (_, start, end) in enumerate([*words, ("", 0.0, float("inf"))]):
        if end - start <= UNSPOKEN_WORD_SECONDS + 1e-6:
            run.append(i)
            continue
        if len(run) >= UNSPOKEN_RUN_WORDS and _repeats(words, run[0], run[-1] + 1):
            unspoken.update(run)
        run = []
    return unspoken


def _repeats(words: Sequence[tuple[str, float, float]], first: int, end: int) -> bool:
    """Whether ``words[first:end]`` (or all but its first) occur just before ``first``."""
    said = [_bare(text) for text, _, _ in words]
    run = [w for w in said[first:end] if w]
    before = [w for w in said[max(0, first - 2 * len(run)) : first] if w]
    for phrase in (run, run[1:]):
        n = len(phrase)
        if n >= UNSPOKEN_RUN_WORDS - 1 and any(
            before[i : i + n] == phrase for i in range(len(before) - n + 1)
        ):
            return True
    return False


def _bare(word: str) -> str:
    return "".join(c for c in word.lower() if c.isalnum())
