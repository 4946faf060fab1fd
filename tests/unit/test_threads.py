"""Thread ids of a block and their nice values (Linux /proc and setpriority)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from theo.engine.threads import lower_priority, started_threads, thread_ids

pytestmark = pytest.mark.skipif(not thread_ids(), reason="needs Linux /proc/self/task")


def test_the_threads_started_in_a_block_are_found_and_only_they() -> None:
    release = threading.Event()
    before = threading.Thread(target=release.wait)
    before.start()
    inside = threading.Thread(target=release.wait)
    try:
        with started_threads() as started:
            inside.start()
        assert started == {inside.native_id}
    finally:
        release.set()
        before.join()
        inside.join()


def test_lower_priority_sets_one_threads_nice_value_not_the_processs() -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        assert worker.native_id is not None
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert lower_priority({worker.native_id}, mine + 3) == {worker.native_id}
        assert os.getpriority(os.PRIO_PROCESS, worker.native_id) == mine + 3
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    finally:
        release.set()
        worker.join()


def test_a_thread_that_is_not_there_is_skipped() -> None:
    # No thread id reaches the kernel's maximum process id.
    missing = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    assert lower_priority({missing}, 5) == set()
