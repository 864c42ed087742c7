"""WorkerPool: the executor a batch runs items and DSPy's to_thread calls on."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading

import pytest

from dspy_turbo_batching.workers import WorkerPool


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


def test_inline_tasks_run_on_the_submitting_thread_and_others_on_a_worker():
    def where():
        return threading.current_thread()

    def fails():
        raise ValueError("from an inline task")

    pool = WorkerPool(2, inline=lambda fn: fn is where or fn is fails)
    try:
        assert pool.submit(where).result(timeout=5) is threading.current_thread()
        with pytest.raises(ValueError, match="inline task"):
            pool.submit(fails).result(timeout=5)
        assert pool.submit(lambda: threading.current_thread()).result(timeout=5) is not threading.current_thread()
    finally:
        pool.shutdown()


def test_inline_tasks_on_an_event_loop_are_done_at_once_and_others_go_to_a_thread():
    def where():
        return threading.current_thread()

    def chosen(task):  # asyncio.to_thread submits partial(context.run, fn, *args)
        return getattr(task, "args", (None,))[0] is where

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(WorkerPool(2, inline=chosen))
        inline = loop.run_in_executor(None, functools.partial(contextvars.copy_context().run, where))
        assert inline.done(), "an inline task is finished when run_in_executor returns: no loop wake-up to wait for"
        other = loop.run_in_executor(None, threading.current_thread)
        return await inline, await asyncio.to_thread(where), await other

    ran_on, via_to_thread, other = asyncio.run(main())
    assert ran_on is threading.current_thread() and via_to_thread is threading.current_thread()
    assert other is not threading.current_thread()
