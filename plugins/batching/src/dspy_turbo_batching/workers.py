"""A thread pool whose ``submit`` takes no lock its workers also take.

``ThreadPoolExecutor.submit`` takes two shutdown locks and an idle semaphore that its
workers take too. Under the GIL, a lock held by a worker that lost the GIL in between
costs the submitting thread (a batch's event loop) two thread switches, and a batch
submits thousands of items and, on DSPy's async path, several ``asyncio.to_thread`` calls
per LM call. :class:`WorkerPool` keeps the executor interface (it *is* a
``ThreadPoolExecutor``, so ``loop.set_default_executor`` accepts it) over a lock-free
``queue.SimpleQueue``.

The difference in behaviour: a new thread is started on each ``submit`` until the pool
has ``max_workers`` threads, without first looking for an idle one. A batch keeps every
thread busy anyway, and knowing which threads are idle is what needs the shared lock.

``inline(fn)``, when given, picks tasks that ``submit`` runs on the submitting thread
instead (returning a finished future): work that takes microseconds costs less there than
the hand-off to a thread and back, which under the GIL is two thread switches. Submitted
from an event loop's own thread (``loop.run_in_executor``, ``asyncio.to_thread``), that
future is an ``asyncio.Future`` of the loop, which ``run_in_executor`` returns as it is:
awaiting it costs no wake-up of the loop through its self-pipe.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_STOP = None  # what a worker takes from the queue to end


class WorkerPool(ThreadPoolExecutor):
    def __init__(self, max_workers: int, thread_name_prefix: str = "dspy-turbo-worker",
                 inline: Callable[[Callable[..., Any]], bool] | None = None):
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)  # starts no thread
        self._inline = inline
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._stopped = False
        self._stops_sent = False
        # Taken by submitters and shutdown only, never by a worker: a task is either queued
        # before the workers' stop marks or refused, never left behind them.
        self._submit_lock = threading.Lock()

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is _STOP:
                return
            future, fn, args, kwargs = task
            task = None
            if future.set_running_or_notify_cancel():  # False: cancelled while queued, never runs
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # as ThreadPoolExecutor: the future carries it to the caller
                    future.set_exception(exc)
                    exc = None  # no reference cycle through the traceback
                else:
                    future.set_result(result)
                result = None
            future = fn = args = kwargs = None

    def submit(self, fn, /, *args: Any, **kwargs: Any) -> Future:
        if self._inline is not None and not self._stopped and self._inline(fn):
            return _run_here(fn, args, kwargs)
        future: Future = Future()
        with self._submit_lock:
            if self._stopped:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._tasks.put((future, fn, args, kwargs))
            if len(self._workers) < self._max_workers:
                thread = threading.Thread(target=self._work, name=f"{self._thread_name_prefix}_{len(self._workers)}")
                thread.start()
                self._workers.append(thread)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._submit_lock:
            self._stopped = True
            stops = 0 if self._stops_sent else len(self._workers)
            self._stops_sent = True
            if cancel_futures:
                while True:
                    try:
                        task = self._tasks.get_nowait()
                    except queue.Empty:
                        break
                    if task is _STOP:
                        stops += 1  # from an earlier shutdown: put back
                    else:
                        task[0].cancel()
            workers = list(self._workers)
            for _ in range(stops):
                self._tasks.put(_STOP)  # behind what is queued: queued work still runs unless cancelled
        if wait:
            for thread in workers:
                if thread is not threading.current_thread():
                    thread.join()


def _run_here(fn, args: tuple, kwargs: dict) -> Any:
    """``fn(*args, **kwargs)`` on this thread, as a finished future (see the module docstring)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        future: Any = Future()
        future.set_running_or_notify_cancel()
    else:
        future = loop.create_future()
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # as a worker would: the future carries it to the caller
        future.set_exception(exc)
    else:
        future.set_result(result)
    return future
