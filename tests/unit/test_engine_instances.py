"""theo/engine/instances.py: the solo instance only at low load, with a fake clock."""

from __future__ import annotations

import threading

import pytest

from theo.engine.instances import SOLO_AFTER_IDLE_SECONDS, InstanceChooser


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


WORKERS, SOLO = "workers", "solo"


def chooser(clock: FakeClock, solo: str | None = SOLO) -> InstanceChooser[str]:
    return InstanceChooser(WORKERS, solo, clock=clock)


def test_a_group_alone_at_low_load_gets_the_solo_instance() -> None:
    choose = chooser(FakeClock())
    with choose.claim() as instance:
        assert instance == SOLO
        assert choose.running == 1
    assert choose.running == 0


def test_the_solo_instance_is_chosen_right_from_the_start() -> None:
    # no overlap has happened yet, even on a clock that starts at zero
    with chooser(FakeClock(now=0.0)).claim() as instance:
        assert instance == SOLO


def test_without_a_solo_instance_every_group_gets_the_workers() -> None:
    choose = chooser(FakeClock(), solo=None)
    with choose.claim() as first, choose.claim() as second:
        assert first == second == WORKERS


def test_a_group_beside_another_gets_the_workers_instance() -> None:
    choose = chooser(FakeClock())
    with choose.claim() as first, choose.claim() as second:
        assert (first, second) == (SOLO, WORKERS)
        assert choose.running == 2
    assert choose.running == 0


def test_the_solo_instance_waits_out_the_idle_window_after_an_overlap() -> None:
    clock = FakeClock()
    choose = chooser(clock)
    with choose.claim(), choose.claim():
        pass  # overlap at t=1000
    with choose.claim() as instance:
        assert instance == WORKERS  # right after the load
    clock.now += SOLO_AFTER_IDLE_SECONDS
    with choose.claim() as instance:
        assert instance == WORKERS  # not yet: strictly longer than the window
    clock.now += 0.01
    with choose.claim() as instance:
        assert instance == SOLO


def test_an_overlap_restarts_the_idle_window() -> None:
    clock = FakeClock()
    choose = chooser(clock)
    with choose.claim():
        clock.now += 10
        with choose.claim() as second:
            assert second == WORKERS  # overlap at t=1010
    clock.now += SOLO_AFTER_IDLE_SECONDS / 2
    with choose.claim() as instance:
        assert instance == WORKERS
    clock.now += SOLO_AFTER_IDLE_SECONDS
    with choose.claim() as instance:
        assert instance == SOLO


def test_the_idle_window_is_a_parameter() -> None:
    clock = FakeClock()
    choose = InstanceChooser(WORKERS, SOLO, solo_after_idle=30.0, clock=clock)
    with choose.claim(), choose.claim():
        pass
    clock.now += 20
    with choose.claim() as instance:
        assert instance == WORKERS


def test_a_failing_group_releases_its_claim() -> None:
    choose = chooser(FakeClock())
    with pytest.raises(RuntimeError), choose.claim():
        raise RuntimeError("decode failed")
    assert choose.running == 0
    with choose.claim() as instance:
        assert instance == SOLO


def test_concurrent_claims_count_exactly() -> None:
    choose = chooser(FakeClock())
    all_in = threading.Barrier(8, timeout=10)
    seen: list[str] = []

    def group() -> None:
        with choose.claim() as instance:
            seen.append(instance)
            all_in.wait()

    threads = [threading.Thread(target=group) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert choose.running == 0
    assert seen.count(SOLO) <= 1 and seen.count(WORKERS) >= 7


# --- long-form groups ----------------------------------------------------------------------


def test_a_long_form_group_gets_the_workers_and_is_no_load_for_the_solo_instance() -> None:
    choose = chooser(FakeClock())
    with choose.claim_background() as long_form:
        assert long_form == WORKERS and choose.background == 1
        with choose.claim() as short:
            assert short == SOLO  # the group beside a long recording gets all the threads
    assert choose.background == 0 and choose.running == 0


def test_a_long_form_group_alone_makes_its_calls_on_the_solo_instance() -> None:
    choose = chooser(FakeClock())
    with choose.claim_background():
        assert choose.make_way() == SOLO  # the only group: all the threads
        with choose.claim() as short:
            # A short group arriving meanwhile must not queue behind that call.
            assert short == WORKERS
        assert choose.make_way() == SOLO  # alone again
    with choose.claim() as short:
        assert short == SOLO  # let go when the long-form group ended


def test_two_long_form_groups_make_their_calls_on_the_workers() -> None:
    choose = chooser(FakeClock())
    other_in, other_out = threading.Event(), threading.Event()
    seen: list[str] = []

    def other_group() -> None:
        with choose.claim_background():
            other_in.set()
            assert other_out.wait(10)

    with choose.claim_background():
        thread = threading.Thread(target=other_group)
        thread.start()
        assert other_in.wait(10)
        seen.append(choose.make_way())  # beside another long-form group: one thread each
        other_out.set()
        thread.join()
        seen.append(choose.make_way())  # the other ended: alone
    assert seen == [WORKERS, SOLO]


def test_a_long_form_group_makes_way_while_another_group_runs() -> None:
    choose = InstanceChooser(WORKERS, SOLO, max_yield=30.0)
    started, waited = threading.Event(), threading.Event()

    def long_form() -> None:
        with choose.claim_background():
            started.set()
            choose.make_way()
            waited.set()

    with choose.claim():
        thread = threading.Thread(target=long_form)
        thread.start()
        assert started.wait(10)
        assert not waited.wait(0.2)  # held while the short group runs
    assert waited.wait(10)  # and let go as soon as it ends
    thread.join()


def test_a_long_form_group_makes_way_for_a_while_only() -> None:
    choose = InstanceChooser(WORKERS, SOLO, max_yield=0.05)
    with choose.claim(), choose.claim_background():
        choose.make_way()  # returns after max_yield though the other group still runs
    choose.make_way()  # nothing else runs: at once


def test_a_long_form_group_makes_way_for_another_engines_groups_too() -> None:
    # The live instance is another engine on the same cores: its utterances go first.
    choose = InstanceChooser(WORKERS, SOLO, max_yield=30.0)
    live = InstanceChooser(WORKERS)
    choose.also_make_way_for(live)
    waited = threading.Event()

    def long_form() -> None:
        with choose.claim_background():
            choose.make_way()
            waited.set()

    with live.claim():
        thread = threading.Thread(target=long_form)
        thread.start()
        assert not waited.wait(0.2)  # held while the live group runs
    assert waited.wait(10)  # and let go once it ends
    thread.join()
