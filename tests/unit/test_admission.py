"""theo/http/admission.py: requests per model in progress, a FIFO queue, and refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from theo.errors import ClientDisconnectedError, ServiceUnavailableError
from theo.http.admission import ModelAdmission, QueueLimits


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(main())  # type: ignore[arg-type]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_past_the_limit_without_a_queue_get_503_naming_the_model() -> None:
    admission = ModelAdmission(QueueLimits(max_in_flight=2))

    async def main() -> None:
        async with admission.admit("tiny"), admission.admit("tiny"):
            assert admission.active("tiny") == 2
            with pytest.raises(ServiceUnavailableError) as raised:
                async with admission.admit("tiny"):
                    pass
            assert raised.value.status_code == 503
            assert raised.value.code == "model_overloaded"
            assert "tiny" in raised.value.message
            async with admission.admit("base"):  # other models have their own slots
                assert admission.active("base") == 1
        assert admission.active("tiny") == 0

    run(main)


def test_a_slot_is_freed_when_the_request_fails() -> None:
    admission = ModelAdmission(QueueLimits(max_in_flight=1))

    async def main() -> None:
        with pytest.raises(RuntimeError):
            async with admission.admit("tiny"):
                raise RuntimeError("engine blew up")
        assert admission.active("tiny") == 0
        async with admission.admit("tiny"):
            pass

    run(main)


def test_waiting_requests_are_admitted_in_arrival_order() -> None:
    admission = ModelAdmission(QueueLimits(max_in_flight=1, max_queued=10, max_queued_bytes=100))
    order: list[int] = []

    async def request(i: int, hold: asyncio.Event) -> None:
        async with admission.admit("tiny", size=10):
            order.append(i)
            await hold.wait()

    async def main() -> None:
        holds = [asyncio.Event() for _ in range(4)]
        tasks = []
        for i, hold in enumerate(holds):
            tasks.append(asyncio.create_task(request(i, hold)))
            await asyncio.sleep(0)  # arrive in order
        await asyncio.sleep(0.01)
        assert (admission.active("tiny"), admission.queued("tiny")) == (1, 3)
        assert admission.queued_bytes("tiny") == 30
        for hold in holds:
            hold.set()
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3]
        assert (admission.active("tiny"), admission.queued("tiny")) == (0, 0)
        assert admission.queued_bytes("tiny") == 0

    run(main)


@pytest.mark.parametrize(("max_queued", "max_bytes", "size"), [(1, 10**6, 1), (5, 100, 60)])
def test_a_full_queue_refuses_by_count_or_by_bytes(
    max_queued: int, max_bytes: int, size: int
) -> None:
    limits = QueueLimits(max_in_flight=1, max_queued=max_queued, max_queued_bytes=max_bytes)
    refused: list[tuple[str, str]] = []
    admission = ModelAdmission(limits, on_refused=lambda m, r: refused.append((m, r)))

    async def waiting(hold: asyncio.Event) -> None:
        async with admission.admit("tiny", size=size):
            await hold.wait()

    async def main() -> None:
        hold = asyncio.Event()
        first = asyncio.create_task(waiting(hold))
        second = asyncio.create_task(waiting(hold))
        await asyncio.sleep(0.01)
        assert admission.queued("tiny") == 1
        with pytest.raises(ServiceUnavailableError) as raised:
            async with admission.admit("tiny", size=size):
                pass
        assert raised.value.code == "model_overloaded"
        hold.set()
        await asyncio.gather(first, second)

    run(main)
    assert refused == [("tiny", "queue_full" if max_queued == 1 else "queue_bytes")]


def test_a_request_that_waits_too_long_is_refused_and_leaves_the_queue() -> None:
    limits = QueueLimits(max_in_flight=1, max_queued=4, max_queued_bytes=100, max_wait_seconds=0.1)
    admission = ModelAdmission(limits)

    async def main() -> None:
        async with admission.admit("tiny"):
            with pytest.raises(ServiceUnavailableError, match="waited"):
                async with admission.admit("tiny", size=5):
                    pass
            assert (admission.queued("tiny"), admission.queued_bytes("tiny")) == (0, 0)
        assert admission.active("tiny") == 0

    run(main)


def test_a_client_that_hangs_up_while_queued_leaves_the_queue_without_running() -> None:
    limits = QueueLimits(max_in_flight=1, max_queued=4, max_queued_bytes=100)
    admission = ModelAdmission(limits)
    hung_up = False
    ran = False

    async def disconnected() -> bool:
        return hung_up

    async def main() -> None:
        nonlocal hung_up, ran
        async with admission.admit("tiny"):

            async def queued() -> None:
                nonlocal ran
                async with admission.admit("tiny", size=5, disconnected=disconnected):
                    ran = True

            task = asyncio.create_task(queued())
            await asyncio.sleep(0.01)
            assert admission.queued("tiny") == 1
            hung_up = True
            with pytest.raises(ClientDisconnectedError):
                await task
            assert admission.queued("tiny") == 0
        assert admission.active("tiny") == 0

    run(main)
    assert not ran


def test_a_cancelled_waiter_does_not_take_a_slot() -> None:
    admission = ModelAdmission(QueueLimits(max_in_flight=1, max_queued=4, max_queued_bytes=100))

    async def main() -> None:
        async with admission.admit("tiny"):
            task = asyncio.create_task(admission.admit("tiny").__aenter__())
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert (admission.active("tiny"), admission.queued("tiny")) == (0, 0)
        async with admission.admit("tiny"):
            assert admission.active("tiny") == 1

    run(main)


def test_retry_after_follows_how_fast_the_queue_drains() -> None:
    clock = Clock()
    admission = ModelAdmission(QueueLimits(max_in_flight=1), clock=clock)

    async def main() -> None:
        assert admission.retry_after("tiny") is None  # nothing measured yet
        for _ in range(10):  # ten requests done in 5 s: 2 per second
            async with admission.admit("tiny"):
                clock.now += 0.5
        assert admission.retry_after("tiny") == 1
        clock.now += 120  # an old rate says nothing
        assert admission.retry_after("tiny") is None

    run(main)


def test_retry_after_counts_the_requests_waiting() -> None:
    clock = Clock()
    limits = QueueLimits(max_in_flight=1, max_queued=100, max_queued_bytes=100)
    admission = ModelAdmission(limits, clock=clock)

    async def main() -> None:
        for _ in range(4):  # one request per 2 s
            async with admission.admit("tiny"):
                clock.now += 2.0
        async with admission.admit("tiny"):
            waiters = [asyncio.create_task(admission.admit("tiny").__aenter__()) for _ in range(9)]
            await asyncio.sleep(0.01)
            assert admission.retry_after("tiny") == 20  # (9 waiting + 1) at 0.5/s
            for task in waiters:
                task.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    run(main)
