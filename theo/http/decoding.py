"""An upload becomes windows in a worker thread, piece by piece, within memory and CPU bounds.

Each request holds at most a few minutes of int16 audio while it is cut (theo/chunking.py)
and a few windows ahead of the runner. Across requests, this process bounds the decoded
audio (requests reserve their share before decoding, and wait for it) and how many decode
at once (decoding and VAD are CPU work: no more at once than there are cores).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import BinaryIO

import anyio

from theo.audio import PIECE_SECONDS, iter_pcm16
from theo.chunking import (
    MAX_PAUSE_IN_WINDOW_SECONDS,
    WINDOW_SECONDS,
    AudioWindow,
    ChunkingStrategy,
    WindowCutter,
)
from theo.errors import ServiceUnavailableError
from theo.streaming_vad import EAGER_FRAMES, FRAME
from theo.transcription import SAMPLE_RATE

# The most one request's decoding holds. The cutter's int16 audio: what waits for the VAD
# (under 8 s, then a piece), the window being grown, the speech found after it and the speech
# being heard (each at most a window, with a pause between), padding. Then the windows cut
# ahead of the runner, and the float32 copy (with its 64-sample context per 512-sample
# frame) of what the VAD runs on at once: at most the first window's audio and a piece.
CUTTER_SECONDS = (
    EAGER_FRAMES * FRAME / SAMPLE_RATE
    + PIECE_SECONDS
    + 3 * WINDOW_SECONDS
    + MAX_PAUSE_IN_WINDOW_SECONDS
    + 2
)
WINDOWS_AHEAD = 2
_VAD_BATCH_FRAMES = (WINDOW_SECONDS + PIECE_SECONDS + 1) * SAMPLE_RATE / FRAME
PER_REQUEST_BYTES = int(
    CUTTER_SECONDS * SAMPLE_RATE * 2
    + WINDOWS_AHEAD * WINDOW_SECONDS * SAMPLE_RATE * 2
    + _VAD_BATCH_FRAMES * (FRAME + 64) * 4
)


def default_decoders() -> int:
    """Decodes at once: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class DecodeReport:
    """What decoding one upload took, filled in as it goes."""

    samples: int = 0  # decoded so far (16 kHz)
    seconds: float = 0.0  # spent decoding and cutting

    @property
    def audio_seconds(self) -> float:
        return self.samples / SAMPLE_RATE


class DecodedAudioBudget:
    """Bounds the decoded audio held by this process's requests, and decodes at once."""

    def __init__(
        self,
        max_bytes: int,
        *,
        max_decoders: int | None = None,
        max_wait_seconds: float = 60.0,
        on_change: Callable[[int], None] | None = None,
    ):
        self.slots = max(1, max_bytes // PER_REQUEST_BYTES)
        self._reservations = asyncio.Semaphore(self.slots)
        self._cpu = anyio.CapacityLimiter(max_decoders or default_decoders())
        self._max_wait = max_wait_seconds
        self._held: dict[int, int] = {}  # request key -> bytes of audio held now
        self._keys = itertools.count()
        self._on_change = on_change

    @property
    def held_bytes(self) -> int:
        """Bytes of decoded audio held by requests now."""
        return sum(self._held.values())

    @asynccontextmanager
    async def reserve(self) -> AsyncIterator[None]:
        """Hold one request's share of the budget; 503 if none frees up in time."""
        try:
            await asyncio.wait_for(self._reservations.acquire(), self._max_wait)
        except TimeoutError:
            raise ServiceUnavailableError(
                "The server holds as much decoded audio as it may; retry shortly.",
                code="decode_budget_exhausted",
            ) from None
        try:
            yield
        finally:
            self._reservations.release()

    async def windows(
        self,
        source: BinaryIO | bytes,
        *,
        max_seconds: float | None,
        vad: bool,
        chunking: ChunkingStrategy | None,
        report: DecodeReport,
        long_window_seconds: float = WINDOW_SECONDS,
    ) -> AsyncIterator[AudioWindow]:
        """The windows of ``source``, decoded and cut in a worker thread as they are asked for.

        Audio errors (undecodable, too long) are raised when they are met, maybe after some
        windows. ``report`` follows the audio decoded and the time it took.
        """
        key = next(self._keys)
        self._held[key] = 0

        def held(size: int) -> None:
            self._held[key] = size
            self._notify()

        pieces = iter_pcm16(source, max_seconds=max_seconds)
        cutter = WindowCutter(vad=vad, chunking=chunking, long_window_seconds=long_window_seconds)

        def step() -> list[AudioWindow] | None:
            """Decode and cut one piece (~20 ms of CPU): the windows it completes."""
            started = time.perf_counter()
            try:
                piece = next(pieces, None)
                if piece is None:
                    return None
                report.samples += len(piece)
                return cutter.feed(piece)
            finally:
                report.seconds += time.perf_counter() - started
                held(cutter.held_bytes)

        try:
            # One piece per thread call: many uploads take turns on the cores.
            while (windows := await anyio.to_thread.run_sync(step, limiter=self._cpu)) is not None:
                for window in windows:
                    yield window
            for window in await anyio.to_thread.run_sync(cutter.finish, limiter=self._cpu):
                yield window
        finally:
            self._held.pop(key, None)
            self._notify()

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change(self.held_bytes)
