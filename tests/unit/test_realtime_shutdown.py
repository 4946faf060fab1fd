"""theo/realtime/shutdown.py: on SIGTERM, live sessions drain before the server's own handler."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from theo.realtime.shutdown import ShutdownHook


@pytest.fixture
def server_handler() -> Iterator[list[str]]:
    """Stands in for uvicorn's SIGTERM handler; puts the real one back afterwards."""
    calls: list[str] = []
    original = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: FrameType | None) -> None:
        calls.append("server stops")

    signal.signal(signal.SIGTERM, handler)
    yield calls
    signal.signal(signal.SIGTERM, original)


def test_the_sessions_drain_before_the_server_hears_of_the_signal(
    server_handler: list[str],
) -> None:
    async def main() -> None:
        async def drain() -> None:
            server_handler.append("draining")
            await asyncio.sleep(0.1)
            server_handler.append("drained")

        hook = ShutdownHook(drain)
        hook.install()
        hook.install()  # once is enough
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(50):
            await asyncio.sleep(0.01)
            if "server stops" in server_handler:
                break

    asyncio.run(main())
    assert server_handler == ["draining", "drained", "server stops"]


def test_a_second_signal_stops_at_once(server_handler: list[str]) -> None:
    async def main() -> None:
        async def drain() -> None:
            await asyncio.sleep(10)  # stuck

        hook = ShutdownHook(drain)
        hook.install()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)

    asyncio.run(main())
    assert server_handler == ["server stops"]
