"""Single-flight across processes (SharedFlight), on the in-process coordinator: the
Redis coordinator behind it is exercised by plugins/redis/tests with real processes."""

import asyncio
import threading
import time

import pytest

from dspy_turbo.coordination.coordinator import CoordinationUnavailable, Coordinator, LocalCoordinator
from dspy_turbo.coordination.singleflight import SharedFlight


class Store:
    """The shared tier: what one 'process' stores, the others can read."""

    def __init__(self):
        self.values = {}
        self.calls = 0

    def recheck(self, key):
        return lambda: self.values.get(key)

    def call(self, key, value, delay=0.2, fail=False):
        def run():
            self.calls += 1
            time.sleep(delay)
            if fail:
                raise RuntimeError("LM down")
            self.values[key] = value
            return value
        return run


def test_one_call_for_concurrent_callers_in_different_processes():
    coordinator, store = LocalCoordinator(), Store()
    results = []

    def process():
        flight = SharedFlight(coordinator, lease=5, wait=5, poll=0.01)  # each process has its own
        results.append(flight.do("k", store.recheck("k"), store.call("k", "answer")))

    threads = [threading.Thread(target=process) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.calls == 1
    assert sorted(results) == [("answer", False)] + [("answer", True)] * 3


def test_a_failed_leader_gives_the_lease_back_and_a_waiter_calls():
    coordinator, store = LocalCoordinator(), Store()
    flight = SharedFlight(coordinator, lease=5, wait=5, poll=0.01)
    outcome = {}

    def leader():
        try:
            flight.do("k", store.recheck("k"), store.call("k", "x", fail=True))
        except RuntimeError as exc:
            outcome["leader"] = str(exc)

    t = threading.Thread(target=leader)
    t.start()
    time.sleep(0.05)
    outcome["waiter"] = flight.do("k", store.recheck("k"), store.call("k", "second try", delay=0))
    t.join()
    assert outcome == {"leader": "LM down", "waiter": ("second try", False)}
    assert store.calls == 2


def test_a_crashed_leaders_lease_expires():
    coordinator, store = LocalCoordinator(), Store()
    assert coordinator.try_lease("k", ttl=0.3)  # a leader that died holding it
    flight = SharedFlight(coordinator, lease=5, wait=10, poll=0.01)
    started = time.monotonic()
    assert flight.do("k", store.recheck("k"), store.call("k", "mine", delay=0)) == ("mine", False)
    assert 0.25 < time.monotonic() - started < 2


def test_nobody_waits_longer_than_wait():
    coordinator, store = LocalCoordinator(), Store()
    assert coordinator.try_lease("k", ttl=60)  # a leader stuck for a minute
    flight = SharedFlight(coordinator, lease=5, wait=0.3, poll=0.01)
    started = time.monotonic()
    assert flight.do("k", store.recheck("k"), store.call("k", "mine", delay=0)) == ("mine", False)
    assert time.monotonic() - started < 2


class Down(Coordinator):
    shared = True

    def try_lease(self, name, ttl):
        raise CoordinationUnavailable("breaker open")


def test_an_unavailable_coordinator_means_call_yourself():
    store = Store()
    flight = SharedFlight(Down(), lease=5, wait=5)
    assert flight.do("k", store.recheck("k"), store.call("k", "v", delay=0)) == ("v", False)


async def test_async_callers_in_different_processes_make_one_call():
    coordinator, store = LocalCoordinator(), Store()

    async def process():
        flight = SharedFlight(coordinator, lease=5, wait=5, poll=0.01)

        async def recheck():
            return store.values.get("k")

        async def call():
            store.calls += 1
            await asyncio.sleep(0.2)
            store.values["k"] = "v"
            return "v"

        return await flight.ado("k", recheck, call)

    results = await asyncio.gather(*(process() for _ in range(4)))
    assert store.calls == 1 and sorted(results) == [("v", False)] + [("v", True)] * 3


@pytest.mark.parametrize("cancel_after", [0.05])
async def test_a_cancelled_async_leader_releases_its_lease(cancel_after):
    coordinator = LocalCoordinator()
    flight = SharedFlight(coordinator, lease=30, wait=5, poll=0.01)

    async def slow():
        await asyncio.sleep(10)

    async def nothing():
        return None

    task = asyncio.create_task(flight.ado("k", nothing, slow))
    await asyncio.sleep(cancel_after)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert coordinator.try_lease("k", ttl=1) is not None  # given back, not held for 30 s


def test_waiters_whose_deadline_comes_as_a_dead_leaders_lease_expires_make_one_call():
    """lease == wait, the defaults' ratio: the waiters' deadlines fall when the crashed leader's
    lease runs out. The first to ask takes the lease; the others wait for its value."""
    coordinator, store = LocalCoordinator(), Store()
    assert coordinator.try_lease("k", ttl=0.5)  # a leader that died holding it, never renewed
    results = []

    def process():
        flight = SharedFlight(coordinator, lease=0.5, wait=0.5, poll=0.01)
        results.append(flight.do("k", store.recheck("k"), store.call("k", "answer", delay=0.3)))

    threads = [threading.Thread(target=process) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.calls == 1
    assert sorted(results) == [("answer", False)] + [("answer", True)] * 5


def test_a_leader_renews_its_lease_while_its_call_runs():
    coordinator, store = LocalCoordinator(), Store()
    results = []

    def process(delay):
        time.sleep(delay)
        flight = SharedFlight(coordinator, lease=0.3, wait=5, poll=0.01)
        results.append(flight.do("k", store.recheck("k"), store.call("k", "answer", delay=1.0)))

    threads = [threading.Thread(target=process, args=(d,)) for d in (0, 0.1, 0.1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.calls == 1, "a call longer than the lease keeps it"
    assert coordinator.holder("k") is None  # given back at the end


def test_a_waiter_calls_at_its_deadline_when_the_same_leader_still_holds_the_lease():
    coordinator, store = LocalCoordinator(), Store()
    token = coordinator.try_lease("k", ttl=0.4)  # a live leader, renewing, slower than wait
    stop = threading.Event()

    def renew():
        while not stop.wait(0.1):
            coordinator.renew("k", token, 0.4)

    threading.Thread(target=renew, daemon=True).start()
    try:
        flight = SharedFlight(coordinator, lease=0.4, wait=0.5, poll=0.01)
        started = time.monotonic()
        assert flight.do("k", store.recheck("k"), store.call("k", "mine", delay=0)) == ("mine", False)
        assert 0.5 <= time.monotonic() - started < 1.5
    finally:
        stop.set()
