"""Finish live sessions before the server stops: a SIGTERM/SIGINT handler ahead of uvicorn's.

On shutdown uvicorn closes every WebSocket at once (code 1012) before the app hears of it:
ASGI has no shutdown event that comes first. So the first live session installs a signal
handler that drains the sessions (their utterances answered, then a 1001 close) and only
then hands the signal to the handler it replaced, which shuts the server down as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownHook:
    """Runs ``drain`` when the process is asked to stop, then lets the stop proceed."""

    def __init__(self, drain: Callable[[], Awaitable[None]]):
        self._drain = drain
        self._installed = False
        self._draining = False
        self._passed_on = False
        self._previous: dict[int, Any] = {}
        self._task: asyncio.Task[None] | None = None

    def install(self) -> None:
        """Put the handler in place (once, from the event loop's thread, if that is the main
        thread: Python lets only the main thread set signal handlers)."""
        if self._installed or threading.current_thread() is not threading.main_thread():
            return
        self._installed = True
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            self._previous[sig] = signal.getsignal(sig)

            def handler(signum: int, frame: FrameType | None) -> None:
                if self._draining:  # a second signal: stop now, as before
                    self._pass_on(signum, frame)
                    return
                self._draining = True
                loop.call_soon_threadsafe(self._start, signum)

            signal.signal(sig, handler)

    def _start(self, signum: int) -> None:
        self._task = asyncio.ensure_future(self._drain_then_pass_on(signum))

    async def _drain_then_pass_on(self, signum: int) -> None:
        try:
            await self._drain()
        except Exception:
            logger.exception("closing the live sessions failed")
        finally:
            self._pass_on(signum, None)

    def _pass_on(self, signum: int, frame: FrameType | None) -> None:
        if self._passed_on:
            return
        self._passed_on = True
        previous = self._previous.get(signum)
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            os.kill(os.getpid(), signum)  # the default action: end the process
