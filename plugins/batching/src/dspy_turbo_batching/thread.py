"""``thread``: each item runs ``program(...)`` on a pool of ``max_concurrency`` threads.

The pool belongs to the batch and is sized to it: the default executor of
``asyncio.to_thread`` has ``min(32, cpus + 4)`` threads, which caps a batch of 200 ms
calls far below the concurrency asked for. It is a :class:`dspy_turbo_batching.workers.WorkerPool`,
whose ``submit`` does not contend with the threads running DSPy. Works with any
callable program.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

from dspy_turbo.plugin.batch import BatchOptions, BatchStrategy, Item, Runner

from .workers import WorkerPool


class ThreadRunner(Runner):
    bounded = True  # the pool has max_concurrency threads: a free worker takes the next item at once

    def __init__(self, max_concurrency: int):
        self.pool = WorkerPool(max_workers=max_concurrency, thread_name_prefix="dspy-turbo-batch")
        self.stopping = False

    def _call(self, item: Item) -> Any:
        if self.stopping:  # the batch stopped (max_errors, cancelled): queued items do not start
            raise asyncio.CancelledError()
        return item.call()

    def submit(self, item: Item) -> Future:
        return self.pool.submit(self._call, item)

    async def run(self, item: Item) -> Any:
        # wrap_future: cancelling the await cancels an item not started yet; a started one finishes in its thread.
        return await asyncio.wrap_future(self.submit(item))

    async def aclose(self) -> None:
        self.stopping = True
        self.pool.shutdown(wait=False, cancel_futures=True)


class ThreadStrategy(BatchStrategy):
    name = "thread"
    Options = BatchOptions

    def runner(self, max_concurrency: int) -> Runner:
        return ThreadRunner(max_concurrency)
