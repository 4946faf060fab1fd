"""theo/engine/policy.py: what counts as silence or a failed decode, and which decode wins."""

from __future__ import annotations

import numpy as np
import pytest

from theo.engine.policy import (
    COMPRESSION_RATIO_THRESHOLD,
    DIGITAL_SILENCE_PEAK,
    LANGUAGE_SWITCH_PROBABILITY,
    LOG_PROB_THRESHOLD,
    NO_SPEECH_THRESHOLD,
    PROMPT_RESET_ON_TEMPERATURE,
    Attempt,
    best_attempt,
    choose_language,
    encoder_input_frames,
    is_digital_silence,
    temperature_schedule,
)

OK_LOGPROB = -0.3
BAD_LOGPROB = LOG_PROB_THRESHOLD - 0.5
OK_RATIO = 1.5
LOOP_RATIO = COMPRESSION_RATIO_THRESHOLD + 1.0
SPEECH = 0.1
NO_SPEECH = NO_SPEECH_THRESHOLD + 0.2


def attempt(
    avg_logprob: float = OK_LOGPROB,
    compression_ratio: float = OK_RATIO,
    no_speech_prob: float = SPEECH,
    temperature: float = 0.0,
) -> Attempt:
    return Attempt(
        tokens=[1, 2, 3],
        avg_logprob=avg_logprob,
        no_speech_prob=no_speech_prob,
        temperature=temperature,
        compression_ratio=compression_ratio,
    )


def test_the_thresholds_are_whispers() -> None:
    assert (COMPRESSION_RATIO_THRESHOLD, LOG_PROB_THRESHOLD, NO_SPEECH_THRESHOLD) == (
        2.4,
        -1.0,
        0.6,
    )


def test_a_probable_decode_of_speech_is_ok() -> None:
    ok = attempt()
    assert not ok.is_silence and not ok.failed


@pytest.mark.parametrize(
    ("avg_logprob", "compression_ratio"),
    [(BAD_LOGPROB, OK_RATIO), (OK_LOGPROB, LOOP_RATIO), (BAD_LOGPROB, LOOP_RATIO)],
)
def test_an_improbable_or_repetitive_decode_of_speech_failed(
    avg_logprob: float, compression_ratio: float
) -> None:
    bad = attempt(avg_logprob=avg_logprob, compression_ratio=compression_ratio)
    assert bad.failed and not bad.is_silence


@pytest.mark.parametrize(
    ("avg_logprob", "compression_ratio"),
    [(BAD_LOGPROB, OK_RATIO), (OK_LOGPROB, LOOP_RATIO)],
)
def test_an_improbable_or_repetitive_decode_of_no_speech_is_silence_not_a_failure(
    avg_logprob: float, compression_ratio: float
) -> None:
    silent = attempt(
        avg_logprob=avg_logprob, compression_ratio=compression_ratio, no_speech_prob=NO_SPEECH
    )
    assert silent.is_silence and not silent.failed


def test_a_probable_decode_is_kept_even_when_no_speech_is_likely() -> None:
    kept = attempt(no_speech_prob=NO_SPEECH)
    assert not kept.is_silence and not kept.failed


def test_the_thresholds_themselves_pass() -> None:
    at_limits = attempt(
        avg_logprob=LOG_PROB_THRESHOLD,
        compression_ratio=COMPRESSION_RATIO_THRESHOLD,
        no_speech_prob=NO_SPEECH_THRESHOLD,
    )
    assert not at_limits.failed and not at_limits.is_silence


def test_only_a_hot_decode_resets_the_prompt() -> None:
    assert not attempt(temperature=PROMPT_RESET_ON_TEMPERATURE).resets_prompt
    assert attempt(temperature=PROMPT_RESET_ON_TEMPERATURE + 0.1).resets_prompt
    assert not attempt(temperature=0.0).resets_prompt


def test_the_last_attempt_wins_when_it_succeeded() -> None:
    first = attempt(avg_logprob=BAD_LOGPROB, temperature=0.0)
    last = attempt(avg_logprob=-0.5, temperature=0.4)
    assert best_attempt([first, last]) is last
    assert best_attempt([last]) is last


def test_silence_ends_the_retries_and_wins() -> None:
    silent = attempt(avg_logprob=BAD_LOGPROB - 1, no_speech_prob=NO_SPEECH, temperature=0.4)
    assert best_attempt([attempt(avg_logprob=BAD_LOGPROB), silent]) is silent


def test_when_all_failed_the_most_probable_non_repetitive_one_wins() -> None:
    loop = attempt(avg_logprob=-1.1, compression_ratio=LOOP_RATIO, temperature=0.0)
    improbable = attempt(avg_logprob=-1.8, temperature=0.4)
    more_probable = attempt(avg_logprob=-1.5, temperature=0.8)
    assert best_attempt([loop, improbable, more_probable]) is more_probable


def test_when_all_are_repetitive_the_most_probable_wins() -> None:
    worse = attempt(avg_logprob=-0.9, compression_ratio=LOOP_RATIO)
    better = attempt(avg_logprob=-0.2, compression_ratio=LOOP_RATIO + 1, temperature=0.4)
    assert best_attempt([worse, better, worse]) is better


def test_the_schedule_starts_at_the_requested_temperature_and_only_gets_hotter() -> None:
    assert temperature_schedule(0.0, [0.4, 0.8]) == (0.0, 0.4, 0.8)
    assert temperature_schedule(0.5, [0.4, 0.8]) == (0.5, 0.8)
    assert temperature_schedule(0.8, [0.4, 0.8]) == (0.8,)
    assert temperature_schedule(0.2, []) == (0.2,)


def test_digital_silence_is_no_samples_or_none_above_the_peak() -> None:
    assert is_digital_silence(np.zeros(0, dtype=np.float32))
    assert is_digital_silence(np.zeros(16_000, dtype=np.float32))
    quiet = np.full(16_000, DIGITAL_SILENCE_PEAK / 2, dtype=np.float32)
    quiet[100] = -DIGITAL_SILENCE_PEAK / 2
    assert is_digital_silence(quiet)


def test_one_audible_sample_is_not_digital_silence() -> None:
    audio = np.zeros(16_000, dtype=np.float32)
    audio[8_000] = -2 * DIGITAL_SILENCE_PEAK  # negative peaks count too
    assert not is_digital_silence(audio)


# --- long-form windows: the language -------------------------------------------------------


def test_a_long_form_window_keeps_its_recordings_language_unless_sure_of_another() -> None:
    sure, unsure = LANGUAGE_SWITCH_PROBABILITY, LANGUAGE_SWITCH_PROBABILITY - 0.01
    assert choose_language("de", sure, hint="fr") == "de"
    assert choose_language("de", unsure, hint="fr") == "fr"
    assert choose_language("fr", unsure, hint="fr") == "fr"


def test_without_a_hint_the_detection_decides() -> None:
    assert choose_language("pt", 0.3, hint=None) == "pt"


@pytest.mark.parametrize(
    ("content", "least", "expected"),
    [
        (1100, 1500, 1500),  # 11 s of audio (JFK) in 15 s
        (1300, 1500, 1500),  # exactly 2 s of padding
        (1301, 1500, 2000),  # then the next 5 s step
        (70, 100, 500),  # a word: one step at least
        (2900, 1500, 3000),  # never more than Whisper's 30 s
        (3000, 1500, 3000),
        (100, 3000, 3000),  # asked for 30 s
    ],
)
def test_the_encoder_input_holds_the_audio_and_2_s_of_padding_in_5_s_steps(
    content: int, least: int, expected: int
) -> None:
    assert encoder_input_frames(content, least, 3000) == expected
