"""Single-flight: concurrent identical misses make one call.

In one process (:class:`SingleFlight`): the first caller for a key (the leader) runs the
call; the others (threads or asyncio tasks) wait on the leader's future and get its
result, or its exception. The key is forgotten as soon as the leader finishes, so the
next call after a failure tries again.

Across processes (:class:`SharedFlight`, when a shared tier such as Redis coordinates):
each process's leader asks for a lease on the key. The one that gets it makes the call
(and stores the value before giving the lease back); the others poll the cache until the
value is there. A leader that fails gives the lease back, one that crashes loses it when
it expires; either way a waiter takes over. Nobody waits longer than ``wait``: then it
makes the call itself. When the coordinator is unavailable, everyone calls.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError as _FutureCancelled
from concurrent.futures import Future
from typing import Any, TypeVar

from .coordination import CoordinationUnavailable, Coordinator

T = TypeVar("T")


class _Flight:
    """One leader's call. Its future is made by the first waiter: a call nobody joins (the
    common case) costs no future, and the shared lock is never held while one is built."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: Future | None = None


class SingleFlight:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    def _join(self, key: str) -> tuple[_Flight | Future, bool]:
        """(our new flight, True) as the leader; (the leader's future, False) as a waiter."""
        mine, built = _Flight(), None
        while True:
            with self._lock:
                flight = self._flights.setdefault(key, mine)
                if flight is mine:
                    return mine, True
                if flight.future is None and built is not None:
                    flight.future = built
                if flight.future is not None:
                    return flight.future, False
            built = Future()  # outside the lock; then join again (the leader may be done by now)

    def _finish(self, key: str, flight: _Flight, result: Any = None, exc: BaseException | None = None) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
            future = flight.future  # no waiter can join this flight from here on
        if future is None:
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def do(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """Run ``fn`` once for all concurrent callers of ``key``; returns (result, shared)."""
        if _on_event_loop():
            # A sync call made from async code, on the loop's own thread: waiting here could
            # block the very loop an async leader needs to finish. Call without coalescing.
            return fn(), False
        while True:
            joined, leader = self._join(key)
            if leader:
                break
            try:
                return joined.result(), True
            except (asyncio.CancelledError, _FutureCancelled):
                continue  # the leader was cancelled, not us: lead or join the next flight
        try:
            result = fn()
        except BaseException as exc:
            self._finish(key, joined, exc=exc)
            raise
        self._finish(key, joined, result)
        return result, False

    async def ado(self, key: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The asyncio door; shares flights with ``do`` (a thread and a task coalesce too)."""
        while True:
            joined, leader = self._join(key)
            if leader:
                break
            try:
                # shield: a cancelled waiter must not cancel the leader's shared future
                return await asyncio.shield(asyncio.wrap_future(joined)), True
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # we were cancelled ourselves
                # the leader was cancelled: lead or join the next flight
        try:
            result = await fn()
        except BaseException as exc:
            self._finish(key, joined, exc=exc)
            raise
        self._finish(key, joined, result)
        return result, False

    def in_flight(self) -> int:
        with self._lock:
            return len(self._flights)


class SharedFlight:
    """Single-flight across processes through a shared :class:`Coordinator` (see above).

    ``recheck()`` reads the cache without counting (the request was counted already);
    ``call()`` makes the call and stores its value. Both ``do`` and ``ado`` return
    ``(value, served_by_another_process)``.
    """

    def __init__(self, coordinator: Coordinator, lease: float = 30.0, wait: float = 30.0, poll: float = 0.02):
        self.coordinator = coordinator
        self.lease, self.wait, self.poll = lease, wait, poll
        self.max_poll = max(poll, 0.25)

    def do(self, name: str, recheck: Callable[[], T | None], call: Callable[[], T]) -> tuple[T, bool]:
        deadline = time.monotonic() + self.wait
        delay = self.poll
        while True:
            try:
                token = self.coordinator.try_lease(name, self.lease)
            except CoordinationUnavailable:
                return call(), False
            if token is not None:
                try:
                    return call(), False
                finally:
                    self._release(name, token)
            time.sleep(delay)
            value = recheck()
            if value is not None:
                return value, True
            if time.monotonic() >= deadline:
                return call(), False  # waited long enough for a slow or stuck leader
            delay = min(delay * 1.5, self.max_poll)

    async def ado(self, name: str, recheck: Callable[[], Awaitable[T | None]],
                  call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        deadline = time.monotonic() + self.wait
        delay = self.poll
        while True:
            attempt = asyncio.ensure_future(asyncio.to_thread(self.coordinator.try_lease, name, self.lease))
            try:
                token = await asyncio.shield(attempt)
            except CoordinationUnavailable:
                return await call(), False
            except asyncio.CancelledError:
                # The thread may still take the lease: give it back then, or everybody waits it out.
                attempt.add_done_callback(lambda done: self._release_taken(name, done))
                raise
            if token is not None:
                try:
                    return await call(), False
                finally:
                    await asyncio.to_thread(self._release, name, token)
            await asyncio.sleep(delay)
            value = await recheck()
            if value is not None:
                return value, True
            if time.monotonic() >= deadline:
                return await call(), False
            delay = min(delay * 1.5, self.max_poll)

    def _release_taken(self, name: str, attempt: asyncio.Future) -> None:
        if attempt.cancelled() or attempt.exception() is not None or not attempt.result():
            return
        asyncio.get_running_loop().run_in_executor(None, self._release, name, attempt.result())

    def _release(self, name: str, token: str) -> None:
        try:
            self.coordinator.release(name, token)
        except CoordinationUnavailable:
            pass  # the lease expires by itself


def _on_event_loop() -> bool:
    # asyncio's own test, without get_running_loop's exception on every call off a loop
    return asyncio._get_running_loop() is not None
