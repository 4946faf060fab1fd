"""Which model instance decodes a group: the workers' instance, or the solo one at low load."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

# The solo instance decodes a group only this long after two groups last overlapped.
SOLO_AFTER_IDLE_SECONDS = 2.0
# A long-form group holds its next model call at most this long while other groups run.
MAX_YIELD_SECONDS = 5.0
# Another chooser's groups end without notifying this one's condition: how often a waiting
# long-form group looks at them again.
OTHERS_POLL_SECONDS = 0.01

Instance = TypeVar("Instance")


class InstanceChooser(Generic[Instance]):
    """Hands each group about to be decoded the instance it should run on.

    At low load a lone group would run on one worker's threads while the other cores
    idle, so a second instance with more threads (the *solo* instance) decodes it instead.
    Low load means no other group runs now nor ran beside another one in the last
    ``solo_after_idle`` seconds; under load the solo instance's threads would contend
    with the workers' for the cores. The instances are opaque here.

    Long-form groups (windows of long recordings, :meth:`claim_background`) make way for
    the others: before each model call they wait while any other group runs (at most
    ``max_yield`` seconds a call), so a short request arriving beside a long file waits
    for the call in progress, never for the file. They decode on the workers' instance,
    but a long-form group that is the only group being decoded (a recording's last
    windows, while the other worker idles) makes its next call on the solo instance.
    They do not count as load for the solo instance: the group that arrives beside them
    is the one that should get all the threads.
    """

    def __init__(
        self,
        workers: Instance,
        solo: Instance | None = None,
        *,
        solo_after_idle: float = SOLO_AFTER_IDLE_SECONDS,
        max_yield: float = MAX_YIELD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workers = workers
        self.solo = solo
        self._solo_after_idle = solo_after_idle
        self._clock = clock
        self._running = 0  # groups being decoded now
        self._last_overlap = float("-inf")  # when two groups last ran at once (clock time)
        self._max_yield = max_yield
        self._lock = threading.Lock()
        self._quiet = threading.Condition(self._lock)  # notified when a group ends
        self._background = 0  # long-form groups being decoded now
        self._solo_holder: int | None = None  # the long-form group's thread that has it
        # Choosers of other engines in this process whose groups long-form ones wait for.
        self._others: list[InstanceChooser[Any]] = []

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
                self._quiet.notify_all()

    @property
    def background(self) -> int:
        """How many long-form groups hold the workers' instance now."""
        with self._lock:
            return self._background

    @contextmanager
    def claim_background(self) -> Iterator[Instance]:
        """The workers' instance for a long-form group; call :meth:`make_way` before each
        of its model calls."""
        with self._lock:
            self._background += 1
        try:
            yield self.workers
        finally:
            with self._lock:
                self._background -= 1
                if self._solo_holder == threading.get_ident():
                    self._solo_holder = None

    def also_make_way_for(self, other: InstanceChooser[Any]) -> None:
        """Long-form groups also wait while ``other`` decodes a group: another engine of
        this process (the live instance) decodes on the same cores."""
        self._others.append(other)

    def make_way(self) -> Instance:
        """Wait (at most ``max_yield`` seconds) until no other group is being decoded, here
        or by the choosers of :meth:`also_make_way_for`; then the instance for a long-form
        group's next model call (from its own thread): the solo one if it is the only
        group being decoded, else the workers'."""
        me = threading.get_ident()
        deadline = time.monotonic() + self._max_yield
        with self._lock:
            if self._solo_holder == me:
                self._solo_holder = None
            while self._others_run():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._quiet.wait(timeout=min(left, OTHERS_POLL_SECONDS) if self._others else left)
            alone = self._background == 1 and not self._others_run()
            if alone and self.solo is not None and self._solo_holder is None:
                self._solo_holder = me
                return self.solo
            return self.workers

    def _others_run(self) -> bool:
        return self._running > 0 or any(other.running > 0 for other in self._others)

    def _acquire(self) -> Instance:
        with self._lock:
            self._running += 1
            now = self._clock()
            if self._running > 1:
                self._last_overlap = now
                return self.workers
            if (
                self.solo is not None
                and self._solo_holder is None  # else it would queue behind a long-form call
                and now - self._last_overlap > self._solo_after_idle
            ):
                return self.solo
            return self.workers
