"""In-process single-flight: concurrent identical misses make one call.

The first caller for a key (the leader) runs the call; the others (threads or asyncio
tasks) wait on the leader's future and get its result, or its exception. The key is
forgotten as soon as the leader finishes, so the next call after a failure tries again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError as _FutureCancelled
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, Future] = {}

    def _join(self, key: str) -> tuple[Future, bool]:
        with self._lock:
            fut = self._flights.get(key)
            if fut is not None:
                return fut, False
            fut = Future()
            self._flights[key] = fut
            return fut, True

    def _finish(self, key: str, fut: Future, result: Any = None, exc: BaseException | None = None) -> None:
        with self._lock:
            if self._flights.get(key) is fut:
                del self._flights[key]
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def do(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """Run ``fn`` once for all concurrent callers of ``key``; returns (result, shared)."""
        while True:
            fut, leader = self._join(key)
            if leader:
                break
            try:
                return fut.result(), True
            except (asyncio.CancelledError, _FutureCancelled):
                continue  # the leader was cancelled, not us: lead or join the next flight
        try:
            result = fn()
        except BaseException as exc:
            self._finish(key, fut, exc=exc)
            raise
        self._finish(key, fut, result)
        return result, False

    async def ado(self, key: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The asyncio door; shares flights with ``do`` (a thread and a task coalesce too)."""
        while True:
            fut, leader = self._join(key)
            if leader:
                break
            try:
                # shield: a cancelled waiter must not cancel the leader's shared future
                return await asyncio.shield(asyncio.wrap_future(fut)), True
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # we were cancelled ourselves
                # the leader was cancelled: lead or join the next flight
        try:
            result = await fn()
        except BaseException as exc:
            self._finish(key, fut, exc=exc)
            raise
        self._finish(key, fut, result)
        return result, False

    def in_flight(self) -> int:
        with self._lock:
            return len(self._flights)
