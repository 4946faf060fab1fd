"""Which model instance decodes a group: the workers' instance, or the solo one at low load."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

# The solo instance decodes a group only this long after two groups last overlapped.
SOLO_AFTER_IDLE_SECONDS = 2.0

Instance = TypeVar("Instance")


class InstanceChooser(Generic[Instance]):
    """Hands each group about to be decoded the instance it should run on.

    At low load a lone group would run on one worker's threads while the other cores
    idle, so a second instance with more threads (the *solo* instance) decodes it instead.
    Low load means no other group runs now nor ran beside another one in the last
    ``solo_after_idle`` seconds; under load the solo instance's threads would contend
    with the workers' for the cores. The instances are opaque here.
    """

    def __init__(
        self,
        workers: Instance,
        solo: Instance | None = None,
        *,
        solo_after_idle: float = SOLO_AFTER_IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workers = workers
        self.solo = solo
        self._solo_after_idle = solo_after_idle
        self._clock = clock
        self._running = 0  # groups being decoded now
        self._last_overlap = float("-inf")  # when two groups last ran at once (clock time)
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        """How many groups hold an instance now."""
        with self._lock:
            return self._running

    @contextmanager
    def claim(self) -> Iterator[Instance]:
        """The instance for a group about to start, held until the ``with`` block ends."""
        instance = self._acquire()
        try:
            yield instance
        finally:
            with self._lock:
                self._running -= 1

    def _acquire(self) -> Instance:
        with self._lock:
            self._running += 1
            now = self._clock()
            if self._running > 1:
                self._last_overlap = now
                return self.workers
            if self.solo is not None and now - self._last_overlap > self._solo_after_idle:
                return self.solo
            return self.workers
