"""theo/engine/segmenting.py: a long-form window's segments start where speech resumes."""

from __future__ import annotations

from theo.engine.segmenting import (
    MIN_PAUSE_MS,
    PAUSE_TOLERANCE_SECONDS,
    UNSPOKEN_RUN_WORDS,
    WORD_REACH_SECONDS,
    Pause,
    longest_unheard_speech,
    pauses_between,
    segment_breaks,
    unspoken_repeats,
)
from theo.transcription import SAMPLE_RATE

S = SAMPLE_RATE


def test_pauses_are_the_silences_around_and_between_speech() -> None:
    spans = [(S // 2, 3 * S), (4 * S, 9 * S)]
    assert pauses_between(spans, 10 * S, offset=60.0) == [
        Pause(60.0, 60.5),
        Pause(63.0, 64.0),
        Pause(69.0, 70.0),
    ]


def test_a_silence_shorter_than_a_pause_is_none() -> None:
    short = int(MIN_PAUSE_MS / 1000 * S) - 160
    spans = [(0, 2 * S), (2 * S + short, 5 * S)]
    assert pauses_between(spans, 5 * S, offset=0.0) == []
    assert pauses_between([], 2 * S, offset=1.0) == [Pause(1.0, 3.0)]


def words(*timed: tuple[str, float, float]) -> list[tuple[str, float, float]]:
    return list(timed)


def test_a_sentence_end_starts_a_segment() -> None:
    text = words((" It", 0.0, 0.2), (" ends.", 0.2, 0.6), (" Then", 0.6, 0.9), (" more", 0.9, 1.2))
    assert segment_breaks(text, []) == {2: None}


def test_the_first_word_after_a_pause_starts_a_segment_when_the_pause_ends() -> None:
    # Alignment stretched "To" back over the pause: it starts when the pause ends.
    text = words(
        (" a", 18.4, 18.5), (" sentence", 18.5, 19.1), (" To", 19.1, 21.6), (" the", 21.6, 21.8)
    )
    assert segment_breaks(text, [Pause(19.3, 21.45)]) == {2: 21.45}


def test_a_word_aligned_inside_a_pause_starts_at_its_own_end_at_the_latest() -> None:
    text = words((" one", 0.0, 0.5), (" two", 0.6, 0.8), (" three", 2.0, 2.5))
    assert segment_breaks(text, [Pause(0.55, 1.9)]) == {1: 0.8}


def test_a_pause_before_the_first_word_moves_its_start() -> None:
    text = words((" Hello", 0.0, 1.2), (" there", 1.2, 1.5))
    assert segment_breaks(text, [Pause(0.0, 0.9)]) == {0: 0.9}


def test_a_pause_with_no_word_near_its_end_breaks_nothing() -> None:
    late = 10.0 + PAUSE_TOLERANCE_SECONDS + 1.0
    text = words((" one", 0.0, 0.5), (" two", late, late + 0.5))
    assert segment_breaks(text, [Pause(2.0, 10.0)]) == {}
    assert segment_breaks([], [Pause(0.0, 1.0)]) == {}


def test_speech_every_word_comes_near_is_all_heard() -> None:
    spans = [(0, 3 * S), (4 * S, 6 * S)]
    heard = [(10.2, 10.9), (11.2, 12.6), (14.1, 15.8)]
    assert longest_unheard_speech(heard, spans, offset=10.0) == 0.0


def test_speech_before_the_first_word_after_the_last_or_between_is_unheard() -> None:
    spans = [(0, 12 * S), (13 * S, 20 * S)]
    reach = WORD_REACH_SECONDS
    # the window's first 9 s were skipped (as Whisper does, decoding a window as text)
    assert longest_unheard_speech([(9.0, 12.0)], spans, 0.0) == 9.0 - reach
    # it stopped early: the second stretch of speech has no words at all
    assert longest_unheard_speech([(0.0, 11.9)], spans, 0.0) == 7.0
    # a sentence in the middle was left out
    gap = longest_unheard_speech([(0.0, 4.0), (8.0, 12.0), (13.0, 20.0)], spans, 0.0)
    assert gap == 4.0 - 2 * reach
    # nothing is unheard where nobody speaks
    assert longest_unheard_speech([], [], 0.0) == 0.0


def test_a_phrase_said_again_in_the_last_frame_was_not_spoken() -> None:
    # tiny.en, a window of a chain shifted by 7 ms: "... young man," then the phrase
    # again, every word of the repeat aligned to 78.84 s
    spoken = [
        (" He", 76.26, 76.40),
        (" was", 76.40, 76.64),
        (" not,", 76.64, 77.14),
        (" an", 77.26, 77.36),
        (" old", 77.36, 77.70),
        ("-sposed", 77.70, 78.10),
        (" young", 78.10, 78.40),
        (" man,", 78.40, 78.84),
    ]
    repeat = [(w, 78.84, 78.84) for w in (" and", " he", " was", " not,", " an", " old")]
    repeat += [("-sposed", 78.84, 78.84), (" young", 78.84, 78.84), (" man.", 78.84, 78.86)]
    assert unspoken_repeats([*spoken, *repeat]) == set(range(8, 17))


def test_real_words_the_aligner_squeezed_are_kept() -> None:
    # base, a French talk: "Il n'y a pas d'équivalent", "n'y a" misplaced into 20 ms
    words = [
        (" Il", 63.96, 65.48),
        (" n", 65.48, 65.48),
        ("'y", 65.48, 65.50),
        (" a", 65.50, 65.50),
        (" pas", 65.50, 65.60),
    ]
    assert unspoken_repeats(words) == set()


def test_a_repeat_with_its_audio_was_spoken() -> None:
    # a speaker who says it twice: each word has its time
    phrase = [" we", " must", " go"]
    words = [(w, 1.0 + i * 0.3, 1.25 + i * 0.3) for i, w in enumerate(phrase * 2)]
    assert unspoken_repeats(words) == set()


def test_fewer_repeated_words_without_audio_than_a_run_are_kept() -> None:
    short = UNSPOKEN_RUN_WORDS - 1
    words = [(" go", 0.0, 0.2), (" on", 0.2, 0.5)]
    assert unspoken_repeats([*words, *[(w, 0.5, 0.5) for w, _, _ in words[:short]]]) == set()
