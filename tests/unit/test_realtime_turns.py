"""theo/realtime/vad.py and turns.py: utterances found in real speech, however it was cut."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FIXTURES
from theo.audio import decode_audio
from theo.realtime.config import ServerVad
from theo.realtime.turns import (
    MAX_UTTERANCE_SAMPLES,
    SpeechInput,
    Turn,
    UtteranceEnded,
    UtteranceStarted,
)
from theo.realtime.vad import SpeechEnd, SpeechStart, TurnDetector, has_speech
from theo.streaming_vad import FRAME, silero_model

RATE = 16_000
DEFAULT_VAD = ServerVad()
SHORT = decode_audio((FIXTURES / "1089-134691-0000.flac").read_bytes())  # 2 s
LOUD = decode_audio((FIXTURES / "LJ001-0002.wav").read_bytes())
QUIET = decode_audio((FIXTURES / "fleurs-fr-000.ogg").read_bytes())  # quieter, French


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def turns_of(
    audio: np.ndarray, config: ServerVad | None = DEFAULT_VAD, chunk: int = 1600
) -> list[Turn]:
    speech = SpeechInput(silero_model(), config)
    found: list[Turn] = []
    for i in range(0, len(audio), chunk):
        found += speech.feed(audio[i : i + chunk])
        for turn in found:
            if isinstance(turn, UtteranceEnded):
                speech.take(turn.start, turn.end)
        speech.trim_idle()
    return found


def test_detector_hysteresis_and_silence_duration() -> None:
    detector = TurnDetector(ServerVad(threshold=0.5, silence_duration_ms=96))  # 3 frames
    scores = [0.1, 0.6, 0.4, 0.2, 0.9, 0.3, 0.3, 0.3, 0.8]
    events = [detector.step(i, s) for i, s in enumerate(scores)]
    # 0.4 is between the thresholds: it neither ends speech nor starts a silence.
    assert events[1] == SpeechStart(FRAME)
    assert events[7] == SpeechEnd(8 * FRAME)
    assert events[8] == SpeechStart(8 * FRAME)
    assert [e for e in events if e is not None] == [events[1], events[7], events[8]]


def test_an_utterance_with_its_padding_and_its_silence() -> None:
    audio = np.concatenate([silence(1), SHORT, silence(1)])
    started, ended = turns_of(audio)
    assert isinstance(started, UtteranceStarted) and isinstance(ended, UtteranceEnded)
    assert ended.speech_stopped and ended.start == started.start
    assert 0.9 * RATE <= started.start <= 1.3 * RATE  # speech starts ~1.3 s in; 300 ms padding
    assert 3.0 * RATE <= ended.end <= 3.6 * RATE  # ends ~2.9 s in, plus 500 ms of silence


@pytest.mark.parametrize("chunk", [160, 512, 1000, 4800, 16000])
def test_the_turns_do_not_depend_on_how_the_audio_was_cut(chunk: int) -> None:
    audio = np.concatenate([silence(0.5), LOUD, silence(0.8), QUIET, silence(1)])
    assert turns_of(audio, chunk=chunk) == turns_of(audio, chunk=1600)


def test_quiet_speech_right_after_loud_speech_is_found() -> None:
    # QUIET peaks at -48 dBFS. Carried on from LOUD, Silero's state would score its speech
    # ~0.2 for seconds; reset after a second of silence, it finds it where it would alone.
    (alone, _) = turns_of(np.concatenate([QUIET, silence(1)]))
    quiet_starts = len(LOUD) + int(1.2 * RATE)
    audio = np.concatenate([LOUD, silence(1.2), QUIET, silence(1)])
    starts = [t.start for t in turns_of(audio) if isinstance(t, UtteranceStarted)]
    assert starts[1] <= quiet_starts + alone.start + 3 * FRAME  # within 0.1 s


def test_an_utterance_is_cut_at_30_seconds_in_a_pause() -> None:
    words = SHORT[int(0.55 * RATE) : int(1.75 * RATE)]  # the clip's speech, without its pauses
    period = len(words) + int(0.1 * RATE)
    audio = np.concatenate([words, silence(0.1)] * 30 + [silence(1)])  # 39 s, no 500 ms pause
    turns = turns_of(audio)
    cut = turns[1]
    assert isinstance(cut, UtteranceEnded) and not cut.speech_stopped
    assert 20 * RATE <= cut.end - cut.start <= MAX_UTTERANCE_SAMPLES
    assert (cut.end - cut.start) % period >= len(words) - 2 * FRAME  # in a pause, not a word
    assert turns[2] == UtteranceStarted(cut.end)  # the speech goes on in a new utterance


def test_without_turn_detection_audio_waits_for_commits_but_not_past_30_seconds() -> None:
    audio = np.concatenate([SHORT] * 17)  # 35 s
    turns = turns_of(audio, config=None)
    assert len(turns) == 1 and isinstance(turns[0], UtteranceEnded)
    assert turns[0].end - turns[0].start <= MAX_UTTERANCE_SAMPLES


def test_speech_presence() -> None:
    speech = SpeechInput(silero_model(), None)
    speech.feed(np.concatenate([silence(1), SHORT]))
    assert not speech.take(0, RATE)[1]  # the silence
    assert speech.take(RATE, RATE + len(SHORT))[1]
    assert not has_speech(np.array([0.9, 0.9, 0.1]), 0.5)  # 2 frames: a click, not speech
