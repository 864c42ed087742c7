import asyncio
import time

import pytest

from dspy_turbo.coordination.singleflight import SingleFlight


def test_threads_share_one_call_and_key_is_forgotten(run_threads):
    sf, calls = SingleFlight(), []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return "v"

    results = []
    run_threads(lambda: results.append(sf.do("k", slow)), 8)
    assert len(calls) == 1
    assert sorted(shared for _, shared in results) == [False] + [True] * 7
    assert sf.in_flight() == 0
    sf.do("k", slow)
    assert len(calls) == 2


def test_leader_exception_reaches_waiters(run_threads):
    sf = SingleFlight()

    def boom():
        time.sleep(0.1)
        raise ValueError("nope")

    errors = []

    def call():
        try:
            sf.do("k", boom)
        except ValueError as exc:
            errors.append(exc)

    run_threads(call, 5)
    assert len(errors) == 5


async def test_asyncio_tasks_share_and_cancelled_leader_does_not_fail_waiters():
    sf, calls = SingleFlight(), []

    async def slow():
        calls.append(1)
        await asyncio.sleep(0.2)
        return "v"

    leader = asyncio.create_task(sf.ado("k", slow))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(sf.ado("k", slow))
    await asyncio.sleep(0.01)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await waiter == ("v", False), "the waiter takes over as the next leader"
    assert len(calls) == 2
