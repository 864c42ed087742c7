"""Single-flight: concurrent identical misses make one call.

In one process (:class:`SingleFlight`): the first caller for a key (the leader) runs the
call; the others (threads or asyncio tasks) wait on the leader's future and get its
result, or its exception. The key is forgotten as soon as the leader finishes, so the
next call after a failure tries again.

Across processes (:class:`SharedFlight`, when a shared tier such as Redis coordinates):
each process's leader asks for a lease on the key. The one that gets it makes the call
(and stores the value before giving the lease back), renewing the lease while it runs;
the others poll the cache until the value is there. A leader that fails gives the lease
back, one that crashes loses it when it expires; either way one waiter takes over. A
waiter waits at most ``wait`` for each leader: then it makes the call itself. When the
coordinator is unavailable, everyone calls.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError as _FutureCancelled
from concurrent.futures import Future
from typing import Any, TypeVar

from .coordinator import CoordinationUnavailable, Coordinator

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

    A leader renews its lease every ``lease / 3`` seconds while its call runs (when the
    coordinator can renew): a slow call keeps it, a crashed leader loses it within ``lease``
    and the first waiter to ask takes over. At its deadline a waiter asks for the lease once
    more, and if a waiter took over from a crashed leader in the meantime, it waits for that
    one too (``wait`` again) rather than calling beside it: however ``lease`` and ``wait``
    compare, a crash costs one more call, never one per waiter.
    """

    def __init__(self, coordinator: Coordinator, lease: float = 30.0, wait: float = 30.0, poll: float = 0.02):
        self.coordinator = coordinator
        self.lease, self.wait, self.poll = lease, wait, poll
        self.max_poll = max(poll, 0.25)
        self._renewer = _Renewer(coordinator, lease)

    def _try_lease(self, name: str) -> str | None:
        return self.coordinator.try_lease(name, self.lease)

    def _holder(self, name: str) -> str | None:
        try:
            return self.coordinator.holder(name)
        except CoordinationUnavailable:
            return None

    def _give_up(self, name: str, seen: str | None) -> tuple[bool, str | None]:
        """At a waiter's deadline, after its last lease attempt failed: (call now?, holder).
        A holder other than the one it began waiting for took over from a leader that is
        gone: wait for it rather than call beside it."""
        holder = self._holder(name)
        return holder is None or holder == seen, holder

    def do(self, name: str, recheck: Callable[[], T | None], call: Callable[[], T]) -> tuple[T, bool]:
        deadline = time.monotonic() + self.wait
        delay, seen, last = self.poll, _UNSEEN, False
        while True:
            try:
                token = self._try_lease(name)
            except CoordinationUnavailable:
                return call(), False
            if token is not None:
                return self._lead(name, token, call), False
            if last:  # the attempt at the deadline failed too
                give_up, holder = self._give_up(name, seen)
                if give_up:
                    return call(), False  # waited long enough for a slow or stuck leader
                seen, deadline, last = holder, time.monotonic() + self.wait, False
            if seen is _UNSEEN:
                seen = self._holder(name)
            time.sleep(delay)
            value = recheck()
            if value is not None:
                return value, True
            last = time.monotonic() >= deadline
            delay = min(delay * 1.5, self.max_poll)

    async def ado(self, name: str, recheck: Callable[[], Awaitable[T | None]],
                  call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        deadline = time.monotonic() + self.wait
        delay, seen, last = self.poll, _UNSEEN, False
        while True:
            attempt = asyncio.ensure_future(asyncio.to_thread(self._try_lease, name))
            try:
                token = await asyncio.shield(attempt)
            except CoordinationUnavailable:
                return await call(), False
            except asyncio.CancelledError:
                # The thread may still take the lease: give it back then, or everybody waits it out.
                attempt.add_done_callback(lambda done: self._release_taken(name, done))
                raise
            if token is not None:
                self._renewer.add(name, token)
                try:
                    return await call(), False
                finally:
                    self._renewer.remove(name, token)
                    await asyncio.to_thread(self._release, name, token)
            if last:
                give_up, holder = await asyncio.to_thread(self._give_up, name, seen)
                if give_up:
                    return await call(), False
                seen, deadline, last = holder, time.monotonic() + self.wait, False
            if seen is _UNSEEN:
                seen = await asyncio.to_thread(self._holder, name)
            await asyncio.sleep(delay)
            value = await recheck()
            if value is not None:
                return value, True
            last = time.monotonic() >= deadline
            delay = min(delay * 1.5, self.max_poll)

    def _lead(self, name: str, token: str, call: Callable[[], T]) -> T:
        self._renewer.add(name, token)
        try:
            return call()
        finally:
            self._renewer.remove(name, token)
            self._release(name, token)

    def _release_taken(self, name: str, attempt: asyncio.Future) -> None:
        if attempt.cancelled() or attempt.exception() is not None or not attempt.result():
            return
        asyncio.get_running_loop().run_in_executor(None, self._release, name, attempt.result())

    def _release(self, name: str, token: str) -> None:
        try:
            self.coordinator.release(name, token)
        except CoordinationUnavailable:
            pass  # the lease expires by itself


_UNSEEN = object()  # a waiter has not looked at the lease's holder yet


class _Renewer:
    """Keeps the leases of this process's calls in progress alive: one daemon thread, running
    while any is held, renews each every ``lease / 3`` seconds. A lease it can no longer
    renew (expired, taken over, the coordinator down) is dropped from its list."""

    def __init__(self, coordinator: Coordinator, lease: float):
        self.coordinator, self.lease = coordinator, lease
        self._held: dict[tuple[str, str], None] = {}
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def add(self, name: str, token: str) -> None:
        with self._wake:
            self._held[(name, token)] = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dspy-turbo-lease-renewer", daemon=True)
                self._thread.start()

    def remove(self, name: str, token: str) -> None:
        with self._wake:
            self._held.pop((name, token), None)

    def _run(self) -> None:
        interval = self.lease / 3
        while True:
            with self._wake:
                self._wake.wait(interval)
                if not self._held:
                    self._thread = None  # under the lock: the next add() starts a new thread
                    return
                held = list(self._held)
            for name, token in held:
                try:
                    kept = self.coordinator.renew(name, token, self.lease)
                except Exception:  # CoordinationUnavailable or a coordinator's own failure
                    kept = False
                if not kept:
                    self.remove(name, token)


def _on_event_loop() -> bool:
    # asyncio's own test, without get_running_loop's exception on every call off a loop
    return asyncio._get_running_loop() is not None
