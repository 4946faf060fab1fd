"""One transcription session: client events in, server events out, utterances to the runner.

Audio appended by the client is decoded, scored by Silero and cut into utterances
(theo/realtime/turns.py). Each committed utterance becomes an item and one final decode;
while someone talks, the growing utterance is re-decoded for partial text
(theo/realtime/partials.py). Results go out in commit order: an utterance's deltas and
``completed`` never come before those of the utterance committed ahead of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from theo.errors import (
    InternalServerError,
    InvalidRequestError,
    ServiceUnavailableError,
    TheoError,
)
from theo.realtime.audio import InputAudio
from theo.realtime.config import (
    ConfigChange,
    Dialect,
    SessionConfig,
    apply_change,
    parse_beta_update,
    parse_ga_update,
)
from theo.realtime.decoder import LiveDecoder
from theo.realtime.events import (
    Cleared,
    ClientEvent,
    Committed,
    DurationUsage,
    ErrorDetail,
    ErrorEvent,
    Item,
    ItemContent,
    ItemEvent,
    ServerEvent,
    SessionEvent,
    SpeechStarted,
    SpeechStopped,
    TranscriptionCompleted,
    TranscriptionDelta,
    TranscriptionFailed,
    decode_base64_audio,
    new_id,
)
from theo.realtime.partials import PartialText
from theo.realtime.turns import SpeechInput, UtteranceEnded, UtteranceStarted
from theo.registry import ModelRegistry
from theo.settings import Settings
from theo.transcription import SAMPLE_RATE, TranscriptionJob, TranscriptionResult

logger = logging.getLogger(__name__)

MIN_COMMIT_SAMPLES = SAMPLE_RATE // 10  # OpenAI refuses to commit less than 100 ms
# Words of the session's last transcripts each decode is prompted with, as Whisper
# conditions a window on the text before it: an utterance cut at a pause ("ask not") is
# then decoded as the sentence it continues, not on its own ("Knock!").
CONTEXT_WORDS = 40
# Server VAD waits for silence_duration_ms of silence before it ends an utterance; the
# final decode starts SPECULATE_BEFORE_MS sooner, on the audio so far. If the silence
# lasts, the text is ready that much sooner; if speech resumes, the decode serves as a
# partial one. Only while the model's live lanes are idle, so it never delays another
# session's utterance. Not sooner: in the eval clips a pause inside an utterance lasts
# 350-500 ms 0.4 times an utterance, 200-500 ms 0.9 times, and each is a wasted decode.
SPECULATE_BEFORE_MS = 150
MIN_SPECULATION_SILENCE_MS = 150
# Client events of a conversation session, which a transcription session does not have.
CONVERSATION_EVENTS = frozenset(
    {
        "conversation.item.create",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "response.create",
        "response.cancel",
        "output_audio_buffer.clear",
    }
)


def milliseconds(sample: int) -> int:
    return sample * 1000 // SAMPLE_RATE


@dataclass
class Speculation:
    """A final decode started before the utterance ended, of its audio up to ``end``."""

    item_id: str
    end: int
    decode: asyncio.Task[TranscriptionResult]


@dataclass
class Utterance:
    """A committed utterance: its item, its audio, and its final decode."""

    item_id: str
    samples: np.ndarray
    speech: bool
    model: str
    partial: PartialText
    previous_item_id: str | None = None
    committed_at: float = field(default_factory=time.monotonic)
    decode: asyncio.Task[TranscriptionResult] | None = None

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


class ModelSlots:
    """Live sessions per model, at most ``limit`` each (counts per API worker process)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._count: dict[str, int] = {}

    def count(self, model: str) -> int:
        return self._count.get(model, 0)

    def take(self, model: str) -> None:
        """Count one more session on ``model``; raises ServiceUnavailableError when full."""
        if self.count(model) >= self.limit:
            raise ServiceUnavailableError(
                f"The model '{model}' serves its maximum of {self.limit} live sessions; "
                "retry shortly.",
                code="session_limit_reached",
            )
        self._count[model] = self.count(model) + 1

    def release(self, model: str) -> None:
        self._count[model] = max(self.count(model) - 1, 0)


class LiveSession:
    """The state of one transcription session; the endpoint feeds it the client's events."""

    def __init__(
        self,
        *,
        config: SessionConfig,
        dialect: Dialect,
        decoder: LiveDecoder,
        slots: ModelSlots,
        registry: ModelRegistry,
        settings: Settings,
        vad_model: Any,
        send: Callable[[dict[str, Any]], None],
    ):
        self.id = new_id("sess")
        self.config = config
        self.dialect = dialect
        self._decoder = decoder
        self._slots = slots
        self._registry = registry
        self._settings = settings
        self._send = send
        self._input_audio = InputAudio(config.format)
        self._speech = SpeechInput(vad_model, config.turn_detection)
        self._item_id: str | None = None  # the utterance in progress (server VAD)
        self._partial = PartialText()
        self._partial_task: asyncio.Task[None] | None = None
        self._partial_from = 0  # sample up to which the last partial re-decode went
        self._speculation: Speculation | None = None
        self._last_item_id: str | None = None
        self._context: list[str] = []  # the last words transcribed, for the next prompts
        self._results: asyncio.Queue[Utterance] = asyncio.Queue()
        self._decodes: set[asyncio.Task[TranscriptionResult]] = set()
        self._unanswered = 0  # committed utterances whose answer is not sent yet
        self._awaiting_samples = 0  # their audio
        self._writer: asyncio.Task[None] | None = None
        self.started = time.monotonic()
        self.utterances = 0
        self.failed = 0
        self.audio_seconds = 0.0

    # -- Lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Announce the session (``session.created``) and start answering utterances."""
        self._emit(SessionEvent(type=self._session_event("created"), session=self._rendered()))
        self._writer = asyncio.create_task(self._write_results())

    @property
    def busy(self) -> bool:
        """Whether an utterance is being decoded or awaits its answer."""
        return self._unanswered > 0

    async def finish(self) -> None:
        """Commit the utterance in progress, if any, and wait until every utterance is answered."""
        if self._speech.speaking and self._item_id is not None:
            start = self._speech.open_start or 0
            if self._speech.buffer.end - start >= MIN_COMMIT_SAMPLES:
                self._emit(
                    SpeechStopped(
                        audio_end_ms=milliseconds(self._speech.buffer.end), item_id=self._item_id
                    )
                )
                self._commit(start, self._speech.buffer.end, self._item_id)
                self._speech.end_utterance()
        await self._results.join()

    async def close(self) -> None:
        """Stop everything still running (the client is gone, or the server stops)."""
        tasks: list[asyncio.Task[Any]] = [*self._decodes]
        tasks += [t for t in (self._writer, self._partial_task) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- Client events ----------------------------------------------------------------------

    def handle(self, event: ClientEvent) -> None:
        """Act on one client event; a bad one gets an ``error`` event, nothing else changes."""
        try:
            self._handle(event)
        except TheoError as error:
            self.error(error, event.event_id)

    def error(self, error: TheoError, event_id: str | None = None) -> None:
        self._emit(ErrorEvent(error=ErrorDetail.of(error, event_id)))

    def _handle(self, event: ClientEvent) -> None:
        kind = event.type
        if kind == "input_audio_buffer.append":
            self.append(decode_base64_audio(event))
        elif kind == "input_audio_buffer.commit":
            self.commit()
        elif kind == "input_audio_buffer.clear":
            self.clear()
        elif kind == "session.update":
            self.update(parse_ga_update(event.fields.get("session")))
        elif kind == "transcription_session.update":
            self.update(parse_beta_update(event.fields.get("session")))
        elif kind in CONVERSATION_EVENTS:
            raise InvalidRequestError(
                f"'{kind}' is not supported: this is a transcription session (no responses).",
                param="type",
                code="unsupported_event",
            )
        else:
            raise InvalidRequestError(
                f"Invalid event type '{kind}'.", param="type", code="invalid_event_type"
            )

    def update(self, change: ConfigChange) -> None:
        """Apply a session update; all of it or, if any part is invalid, none of it."""
        settings = self._settings
        updated = apply_change(
            self.config,
            change,
            registry=self._registry,
            default_model=settings.default_model,
            aliases=settings.model_aliases,
        )
        old_model, new_model = self.config.transcription.model, updated.transcription.model
        if new_model != old_model:
            self._slots.take(new_model)
            self._slots.release(old_model)
        if updated.format != self.config.format:
            self._input_audio = InputAudio(updated.format)
        if updated.turn_detection != self.config.turn_detection:
            self._speech.configure(updated.turn_detection)
            self._item_id = None
            self._reset_partial()
        self.config = updated
        self._emit(SessionEvent(type=self._session_event("updated"), session=self._rendered()))

    def append(self, data: bytes) -> None:
        samples = self._input_audio.decode(data)
        held = self._speech.buffer.end - self._speech.buffer.start + self._awaiting_samples
        limit = int(self._settings.realtime_max_buffered_seconds * SAMPLE_RATE)
        if held + len(samples) > limit:
            raise InvalidRequestError(
                f"The session holds {limit // SAMPLE_RATE} s of audio, its maximum: commit "
                "or clear the input audio buffer, or wait for transcriptions to complete.",
                code="input_audio_buffer_full",
            )
        for turn in self._speech.feed(samples):
            if isinstance(turn, UtteranceStarted):
                self._item_id = new_id("item")
                self._reset_partial()
                self._partial_from = turn.start
                self._emit(
                    SpeechStarted(audio_start_ms=milliseconds(turn.start), item_id=self._item_id)
                )
            elif isinstance(turn, UtteranceEnded):
                item_id = self._item_id or new_id("item")
                if turn.speech_stopped:
                    self._emit(SpeechStopped(audio_end_ms=milliseconds(turn.end), item_id=item_id))
                self._commit(turn.start, turn.end, item_id, last_speech=turn.last_speech)
                self._item_id = None
        self._speech.trim_idle()
        self._maybe_speculate()
        self._maybe_partial()

    def commit(self) -> None:
        """The client commits the uncommitted audio (with server VAD: the utterance so far)."""
        start = self._speech.open_start
        if start is None:
            start = self._speech.buffer.start
        end = self._speech.buffer.end
        if end - start < MIN_COMMIT_SAMPLES:
            raise InvalidRequestError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {milliseconds(end - start)}ms of audio.",
                param=None,
                code="input_audio_buffer_commit_empty",
            )
        self._commit(start, end, self._item_id or new_id("item"))
        self._item_id = None
        self._speech.end_utterance()

    def clear(self) -> None:
        self._speech.clear()
        self._item_id = None
        self._reset_partial()
        self._emit(Cleared())

    # -- Utterances -------------------------------------------------------------------------

    def _commit(
        self, start: int, end: int, item_id: str, *, last_speech: int | None = None
    ) -> None:
        samples, speech = self._speech.take(start, end)
        partial = self._partial if item_id == self._item_id else PartialText()
        speculation = self._speculation
        self._speculation = None
        if speculation is not None and (
            speculation.item_id != item_id or last_speech is None or last_speech > speculation.end
        ):
            speculation = None  # speech went on after its audio: not this utterance's text
        self._reset_partial()
        previous, self._last_item_id = self._last_item_id, item_id
        utterance = Utterance(
            item_id=item_id,
            samples=samples,
            speech=speech,
            model=self.config.transcription.model,
            partial=partial,
            previous_item_id=previous,
        )
        self._emit(Committed(item_id=item_id, previous_item_id=previous))
        item = Item(id=item_id, content=[ItemContent()])
        kind = "conversation.item.created" if self.dialect == "beta" else "conversation.item.added"
        self._emit(ItemEvent(type=kind, previous_item_id=previous, item=item))
        utterance.decode = asyncio.create_task(self._decode(utterance, speculation))
        self._decodes.add(utterance.decode)
        utterance.decode.add_done_callback(self._decodes.discard)
        self._unanswered += 1
        self._awaiting_samples += len(samples)
        self.utterances += 1
        self.audio_seconds += utterance.seconds
        self._results.put_nowait(utterance)

    def _job(self, samples: np.ndarray, *, draft: bool = False) -> TranscriptionJob:
        """A decode of ``samples``; a ``draft`` (partial text) is greedy, at about half
        the cost: its text only has to agree with the next one's."""
        transcription = self.config.transcription
        prompt = " ".join([transcription.prompt or "", *self._context]).strip()
        return TranscriptionJob.from_samples(
            samples,
            language=transcription.language,
            prompt=prompt or None,
            beam_size=1 if draft else None,
            encoder_seconds=self._settings.realtime_encoder_seconds or None,
        )

    async def _decode(
        self, utterance: Utterance, speculation: Speculation | None = None
    ) -> TranscriptionResult:
        if not utterance.speech:
            if speculation is not None:
                speculation.decode.cancel()
            return TranscriptionResult()  # silence or noise: nothing to decode
        if speculation is not None:
            result = await speculation.decode  # all of its speech; only silence came after
        else:
            result = await self._decoder.final(utterance.model, self._job(utterance.samples))
        if result.error is not None:
            logger.error("live decode failed: %s", result.error, extra={"model": utterance.model})
            raise InternalServerError("The transcription of this audio failed.")
        return result

    async def _write_results(self) -> None:
        """Answer the utterances in commit order."""
        while True:
            utterance = await self._results.get()
            try:
                await self._answer(utterance)
            finally:
                self._unanswered -= 1
                self._awaiting_samples -= len(utterance.samples)
                self._results.task_done()

    async def _answer(self, utterance: Utterance) -> None:
        assert utterance.decode is not None
        item_id = utterance.item_id
        status = "completed"
        consistent = True
        transcript: str | None = None
        batch_size = 0  # jobs in the runner call that decoded it (0: not decoded)
        try:
            result = await utterance.decode
        except TheoError as error:
            status = "failed"
            self.failed += 1
            self._emit(TranscriptionFailed(item_id=item_id, error=ErrorDetail.of(error)))
        except Exception:
            logger.exception("live decode failed", extra={"model": utterance.model})
            status = "failed"
            self.failed += 1
            detail = ErrorDetail.of(InternalServerError())
            self._emit(TranscriptionFailed(item_id=item_id, error=detail))
        else:
            transcript = " ".join(result.text.split())
            batch_size = result.batch_size if utterance.speech else 0
            self._context = (self._context + transcript.split())[-CONTEXT_WORDS:]
            delta, consistent = utterance.partial.final(transcript)
            if delta or not utterance.partial.sent:
                self._emit(TranscriptionDelta(item_id=item_id, delta=delta))
            usage = DurationUsage(seconds=round(utterance.seconds, 3))
            self._emit(TranscriptionCompleted(item_id=item_id, transcript=transcript, usage=usage))
        if self.dialect == "ga":
            item = Item(id=item_id, content=[ItemContent(transcript=transcript)])
            done = ItemEvent(
                type="conversation.item.done",
                previous_item_id=utterance.previous_item_id,
                item=item,
            )
            self._emit(done)
        logger.info(
            "live utterance",
            extra={
                "session_id": self.id,
                "item_id": item_id,
                "model": utterance.model,
                "audio_seconds": round(utterance.seconds, 2),
                "speech": utterance.speech,
                "latency_ms": round((time.monotonic() - utterance.committed_at) * 1000, 1),
                "batch_size": batch_size,
                "partial_decodes": utterance.partial.decodes,
                "deltas_add_up": consistent,
                "status": status,
            },
        )

    def _maybe_speculate(self) -> None:
        """Start the final decode of the utterance in progress once its silence has lasted
        all but SPECULATE_BEFORE_MS of what ends it, if the model's live lane is idle."""
        detection = self.config.turn_detection
        if detection is None or self._item_id is None or not self._speech.speaking:
            return
        silence = self._speech.buffer.end - self._speech.last_speech
        wait_ms = max(
            detection.silence_duration_ms - SPECULATE_BEFORE_MS, MIN_SPECULATION_SILENCE_MS
        )
        if silence * 1000 < wait_ms * SAMPLE_RATE or self.busy:
            return
        current = self._speculation
        if (
            current is not None
            and current.item_id == self._item_id
            and current.end >= self._speech.last_speech
        ):
            return  # it has all the speech there is
        model = self.config.transcription.model
        if self._decoder.finals_running(model):
            return
        start = self._speech.open_start or 0
        end = self._speech.buffer.end
        job = self._job(self._speech.buffer.slice(start, end))
        task = asyncio.create_task(self._decoder.final(model, job))
        self._decodes.add(task)
        task.add_done_callback(self._decodes.discard)
        task.add_done_callback(functools.partial(self._speculated, self._item_id))
        self._speculation = Speculation(self._item_id, end, task)

    def _speculated(self, item_id: str, task: asyncio.Task[TranscriptionResult]) -> None:
        """A speculative decode the utterance did not end with is a partial re-decode."""
        speculation = self._speculation
        if (
            speculation is not None
            and speculation.decode is task
            and speculation.end >= self._speech.last_speech
        ):
            return  # still the utterance's candidate text
        if task.cancelled() or task.exception() is not None:
            return
        if item_id == self._item_id and not self.busy and self._settings.realtime_partials:
            delta = self._partial.update(task.result().text)
            if delta:
                self._emit(TranscriptionDelta(item_id=item_id, delta=delta))

    # -- Partial text -----------------------------------------------------------------------

    def _reset_partial(self) -> None:
        self._partial = PartialText()
        if self._partial_task is not None:
            self._partial_task.cancel()
            self._partial_task = None

    def _maybe_partial(self) -> None:
        """Re-decode the utterance in progress if it grew by an interval since the last one."""
        if not self._settings.realtime_partials or self._item_id is None:
            return
        if self._partial_task is not None and not self._partial_task.done():
            return
        if self.busy:
            return  # an earlier utterance's answer goes first
        start = self._speech.open_start
        end = self._speech.buffer.end
        interval = int(self._settings.realtime_partial_interval_seconds * SAMPLE_RATE)
        if start is None or end - self._partial_from < interval:
            return
        self._partial_from = end
        samples = self._speech.buffer.slice(start, end)
        self._partial_task = asyncio.create_task(
            self._decode_partial(self._item_id, self.config.transcription.model, samples)
        )

    async def _decode_partial(self, item_id: str, model: str, samples: np.ndarray) -> None:
        try:
            result = await self._decoder.partial(model, self._job(samples, draft=True))
        except TheoError:
            return  # partial text is best effort; the final decode reports failures
        if item_id != self._item_id or self.busy or result.error is not None:
            return  # committed meanwhile (the final decode answers), or superseded
        delta = self._partial.update(result.text)
        if delta:
            self._emit(TranscriptionDelta(item_id=item_id, delta=delta))

    # -- Output ------------------------------------------------------------------------------

    def _session_event(self, action: str) -> str:
        prefix = "transcription_session" if self.dialect == "beta" else "session"
        return f"{prefix}.{action}"

    def _rendered(self) -> dict[str, Any]:
        return self.config.render(self.dialect, self.id)

    def _emit(self, event: ServerEvent) -> None:
        event.event_id = new_id("event")
        self._send(event.model_dump(mode="json"))
