"""The threads a model load starts, and their CPU scheduling priority (Linux).

CTranslate2 decodes on threads of its own, started when a model is loaded; the threads
they start later (OpenMP's, for a model with more than one thread per call) inherit
their priority. Lowering the priority of one model instance's threads lets another
instance's decodes take the cores first when both run: the live instance's utterances
beside a long file's windows (docs/performance.md). A lower priority costs nothing while
nothing else wants the cores.

Linux keeps a nice value per thread (setpriority(2), "BUGS": POSIX says per process);
``os.setpriority`` with a thread's id sets that thread's. Raising a nice value needs no
privilege. Elsewhere, or without ``/proc``, this does nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

TASKS = Path("/proc/self/task")


def thread_ids() -> set[int]:
    """The ids of this process's threads now (empty where /proc is not there)."""
    try:
        return {int(name) for name in os.listdir(TASKS)}
    except OSError:
        return set()


@contextlib.contextmanager
def started_threads() -> Iterator[set[int]]:
    """The ids of the threads started in the ``with`` block, filled in when it ends.

    Meant for a model load at start-up, when no other code of the process starts threads.
    """
    before = thread_ids()
    started: set[int] = set()
    yield started
    started |= thread_ids() - before


def lower_priority(threads: Iterable[int], niceness: int) -> set[int]:
    """Give ``threads`` the nice value ``niceness`` (0-19); the ids it was set for.

    A thread that has ended meanwhile, or a system that refuses, is skipped.
    """
    done = set()
    for thread in threads:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, thread, niceness)
            done.add(thread)
    return done
