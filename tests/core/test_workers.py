"""WorkerPool: the executor a batch runs items and DSPy's to_thread calls on."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dspy_turbo.workers import WorkerPool


def test_results_and_exceptions_come_back_through_futures():
    pool = WorkerPool(4)
    try:
        futures = [pool.submit(lambda i=i: i * 2) for i in range(50)]
        assert [f.result(timeout=5) for f in futures] == [i * 2 for i in range(50)]
        failing = pool.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failing.result(timeout=5)
    finally:
        pool.shutdown()


def test_never_more_threads_than_max_workers():
    pool = WorkerPool(3)
    release = threading.Event()
    try:
        running = [pool.submit(release.wait, 5) for _ in range(10)]
        assert len(pool._workers) == 3
        release.set()
        assert all(f.result(timeout=5) for f in running)
    finally:
        pool.shutdown()


def test_shutdown_cancels_queued_work_lets_running_work_finish_and_refuses_more():
    pool = WorkerPool(2)
    release = threading.Event()
    running = [pool.submit(release.wait, 5) for _ in range(2)]
    queued = [pool.submit(lambda: "ran") for _ in range(5)]
    pool.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: None)
    release.set()
    assert all(f.result(timeout=5) for f in running)
    pool.shutdown(wait=True)
    assert not any(t.is_alive() for t in pool._workers)


def test_queued_work_still_runs_on_a_plain_shutdown():
    pool = WorkerPool(1)
    release = threading.Event()
    first = pool.submit(release.wait, 5)
    later = pool.submit(lambda: "ran")
    release.set()
    pool.shutdown(wait=True)
    assert first.result() and later.result() == "ran"


def test_serves_as_an_event_loops_default_executor():
    async def main():
        asyncio.get_running_loop().set_default_executor(WorkerPool(8))
        return await asyncio.gather(*(asyncio.to_thread(pow, i, 2) for i in range(20)))

    assert asyncio.run(main()) == [i * i for i in range(20)]
