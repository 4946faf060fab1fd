"""Silero VAD over audio that arrives piece by piece, with the result of one pass over the whole.

``faster_whisper.vad.get_speech_timestamps`` takes the whole recording as one float32 array:
three hours of audio are 700 MB before it starts, and it answers only at the end. Here the
same model runs with the same state carried from frame to frame, and the same decisions
are taken frame by frame, so the speech found is identical (a unit test compares the two
on real audio), but each speech span is known as soon as the audio after it is, and only
the audio not yet handed on is kept. Batches of pure digital silence are not run through
the model at all: they are silence by definition.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from faster_whisper.vad import VadOptions

from theo.engine.faster_whisper_internals import silero_vad_session
from theo.transcription import SAMPLE_RATE

FRAME = 512  # samples per Silero decision (32 ms)
CONTEXT = 64  # samples of the previous frame each frame sees
# faster-whisper's SileroVADModel runs its model on batches of this many frames. Its state
# carries from frame to frame within a batch as across batches, so batches of any size give
# the same probabilities: this is only the most one call takes (and holds as float32).
BATCH_FRAMES = 10_000
# Speech is looked for as soon as this many frames (8 s) wait: a long recording's first
# window goes to the model once its first 30 s or so are decoded, not after a whole batch
# of 320 s (on the 231 s LJ chapter, 0.6 s sooner); smaller batches cost no more.
EAGER_FRAMES = 250


@dataclass(frozen=True)
class Speech:
    """A stretch of speech, in samples from the start of the audio (end excluded)."""

    start: int
    end: int


def silero_model() -> Any:
    """faster-whisper's Silero VAD (its ONNX session), loaded once per process."""
    return silero_vad_session()


class SpeechProbabilities:
    """Silero speech probabilities per 512-sample frame, batch by batch as audio arrives."""

    def __init__(self, session: Any):
        self._session = session
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)  # the last frame's tail

    def batch(self, samples: np.ndarray) -> np.ndarray:
        """The probabilities of one batch of whole frames (at most BATCH_FRAMES of them)."""
        frames = samples.reshape(-1, FRAME)
        if not np.any(frames):
            # Digital silence (a whole batch of it): no speech, and nothing for the model to
            # see. (The one place this differs from faster-whisper: its state is not advanced.)
            self._context = frames[-1, -CONTEXT:].copy()
            return np.zeros(len(frames), dtype=np.float32)
        contexts = np.empty((len(frames), CONTEXT), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = frames[:-1, -CONTEXT:]
        batch = np.concatenate([contexts, frames], axis=1)
        output, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        self._context = frames[-1, -CONTEXT:].copy()
        return np.asarray(output, dtype=np.float32).reshape(-1)


class SpeechTracker:
    """faster-whisper's speech/silence state machine, fed one probability at a time.

    Mirrors the loop of ``faster_whisper.vad.get_speech_timestamps`` (1.2.1) and its
    padding pass; a speech span comes out once the next one has started (its padding
    depends on the gap to the next), or at :meth:`finish`.
    """

    def __init__(self, options: VadOptions):
        self.threshold = options.threshold
        self.neg_threshold = (
            options.neg_threshold
            if options.neg_threshold is not None
            else max(options.threshold - 0.15, 0.01)
        )
        self.min_speech = SAMPLE_RATE * options.min_speech_duration_ms / 1000
        self.pad = SAMPLE_RATE * options.speech_pad_ms / 1000
        self.max_speech = SAMPLE_RATE * options.max_speech_duration_s - FRAME - 2 * self.pad
        self.min_silence = SAMPLE_RATE * options.min_silence_duration_ms / 1000
        self.min_silence_at_max_speech = SAMPLE_RATE * 98 / 1000
        self.frame = 0  # index of the next probability
        self.triggered = False
        self.current_start: int | None = None
        self.temp_end = 0
        self.prev_end = 0
        self.next_start = 0
        self._found: list[list[int]] = []  # raw speeches not yet padded and handed out
        # Whether the next speech handed out pads its own start: the first one does, and so
        # does one after a speech that went out before it was found (the silence between was
        # already long enough to settle both pads).
        self._pad_next_start = True

    @property
    def earliest_open_sample(self) -> int:
        """No speech handed out later starts before this sample (audio before it can go)."""
        starts = [s for s, _ in self._found]
        if self.current_start is not None:
            starts.append(self.current_start)
        start = min(starts) if starts else self.frame * FRAME
        return max(0, int(start - self.pad))

    def feed(self, probabilities: np.ndarray) -> list[Speech]:
        for prob in probabilities.tolist():
            self._step(prob)
            self.frame += 1
        return self._ready(final=False, length=0)

    def finish(self, length: int) -> list[Speech]:
        """The remaining speech once the audio (``length`` samples) has ended."""
        if self.current_start is not None and length - self.current_start > self.min_speech:
            self._found.append([self.current_start, length])
        self.current_start = None
        return self._ready(final=True, length=length)

    def _step(self, prob: float) -> None:
        position = FRAME * self.frame
        if prob >= self.threshold and self.temp_end:
            self.temp_end = 0
            if self.next_start < self.prev_end:
                self.next_start = position
        if prob >= self.threshold and not self.triggered:
            self.triggered = True
            self.current_start = position
            return
        if (
            self.triggered
            and self.current_start is not None
            and position - self.current_start > self.max_speech
        ):
            if self.prev_end:
                self._found.append([self.current_start, self.prev_end])
                self.current_start = None
                if self.next_start < self.prev_end:
                    self.triggered = False
                else:
                    self.current_start = self.next_start
                self.prev_end = self.next_start = self.temp_end = 0
            else:
                self._found.append([self.current_start, position])
                self.current_start = None
                self.prev_end = self.next_start = self.temp_end = 0
                self.triggered = False
                return
        if prob < self.neg_threshold and self.triggered:
            if not self.temp_end:
                self.temp_end = position
            if position - self.temp_end > self.min_silence_at_max_speech:
                self.prev_end = self.temp_end
            if position - self.temp_end < self.min_silence:
                return
            assert self.current_start is not None
            if self.temp_end - self.current_start > self.min_speech:
                self._found.append([self.current_start, self.temp_end])
            self.current_start = None
            self.prev_end = self.next_start = self.temp_end = 0
            self.triggered = False

    def _last_is_settled(self) -> bool:
        """Whether no speech still to be found can start within two pads of the last found."""
        if not self._found:
            return False
        next_start = self.current_start if self.current_start is not None else self.frame * FRAME
        return bool(next_start - self._found[-1][1] >= 2 * self.pad)

    def _ready(self, *, final: bool, length: int) -> list[Speech]:
        """Pad the speeches whose neighbours are known, as faster-whisper's last pass does."""
        found = self._found
        # The last one waits for the next (or the end): its end pad depends on the gap, unless
        # the silence since it is already too long for the gap to change its pad. (Without
        # that, audio after speech would be held for as long as the silence lasts.)
        ready_until = len(found) if final or self._last_is_settled() else len(found) - 1
        out: list[Speech] = []
        for i in range(ready_until):
            speech = found[i]
            if self._pad_next_start:
                speech[0] = int(max(0, speech[0] - self.pad))
                self._pad_next_start = False
            if i != len(found) - 1:
                following = found[i + 1]
                silence = following[0] - speech[1]
                if silence < 2 * self.pad:
                    speech[1] += int(silence // 2)
                    following[0] = int(max(0, following[0] - silence // 2))
                else:
                    speech[1] = int(min(length or float("inf"), speech[1] + self.pad))
                    following[0] = int(max(0, following[0] - self.pad))
            elif final:
                speech[1] = int(min(length, speech[1] + self.pad))
            else:  # settled: the next speech will be at least two pads away
                speech[1] = int(speech[1] + self.pad)
                self._pad_next_start = True
            out.append(Speech(speech[0], speech[1]))
        del found[:ready_until]
        return out


class StreamingVad:
    """Feed audio (float32, 16 kHz) in any pieces; get speech spans as soon as they are known."""

    def __init__(self, options: VadOptions, session: Any):
        self._probabilities = SpeechProbabilities(session)
        self._tracker = SpeechTracker(options)
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self.length = 0  # samples fed so far

    @property
    def earliest_open_sample(self) -> int:
        """Audio before this sample belongs to no speech still to come."""
        return self._tracker.earliest_open_sample

    def feed(self, samples: np.ndarray) -> list[Speech]:
        self._pending.append(samples)
        self._pending_samples += len(samples)
        self.length += len(samples)
        found: list[Speech] = []
        if self._pending_samples >= EAGER_FRAMES * FRAME:
            pending = np.concatenate(self._pending)
            whole = len(pending) // FRAME * FRAME
            frames, rest = pending[:whole], pending[whole:].copy()  # not a view of all of it
            batch_samples = BATCH_FRAMES * FRAME
            for start in range(0, whole, batch_samples):
                probs = self._probabilities.batch(frames[start : start + batch_samples])
                found += self._tracker.feed(probs)
            self._pending, self._pending_samples = [rest], len(rest)
        return found

    def finish(self) -> list[Speech]:
        rest = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
        # As faster-whisper pads: up to the next whole frame, a whole frame if already whole.
        rest = np.pad(rest, (0, FRAME - len(rest) % FRAME))
        found = self._tracker.feed(self._probabilities.batch(rest)) if len(rest) else []
        return found + self._tracker.finish(self.length)


def iter_speech(pieces: Iterator[np.ndarray], options: VadOptions) -> Iterator[Speech]:
    """Every speech span of the audio that ``pieces`` make up, in order."""
    vad = StreamingVad(options, silero_model())
    for piece in pieces:
        yield from vad.feed(piece)
    yield from vad.finish()
