"""Non-blocking event handoff: one bounded queue and one thread per background handler.

The caller's thread only appends to a ``deque`` (atomic in CPython: no lock, no wake-up
call), so emitting costs well under a microsecond even with several sinks. When a
handler's queue holds ``maxsize`` events, further events for it are dropped and counted:
a sink that cannot keep up (or blocks for ever) loses events, never the program's time.

The drain thread is not woken per event: waking a thread per event costs the caller a
lock and a thread switch (measured: a memory hit 2-3x slower). It drains what has piled
up every ``POLL_SECONDS`` (50 ms, backing off to 1 s while no events come), and the
caller wakes it only when a queue reaches half its size, so a burst after a quiet spell
is not dropped. ``flush`` wakes it at once. A handler with ``handle_batch(events)`` gets
what piled up in one call (the Prometheus sink sums its counters over it). It also calls
the handler's optional ``tick()`` about once a second, so time-based work (alert
windows, gauges) goes on when traffic stops.

A handler whose class sets ``caller_context = True`` (a tracing sink, which needs the
caller's current span) gets each event inside a copy of the emitting thread's
``contextvars`` context (:class:`ContextSinkQueue`), as asyncio runs a callback in the
context it was scheduled from: the caller pays one ``copy_context()`` per event.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("dspy_turbo.events")

TICK_SECONDS = 1.0
POLL_SECONDS = 0.05
IDLE_POLL_SECONDS = 1.0
BATCH = 1024  # events per handle_batch call, for sinks that have one


class _Marker:
    """Put behind the events a ``flush`` waits for; set when the drain thread reaches it."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_LIVE: weakref.WeakSet = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Threads do not survive fork (gunicorn --preload, multiprocessing): without this a
    # child's queues would fill up and drop every event.
    for queue in list(_LIVE):
        queue._start(after_fork=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class SinkQueue:
    def __init__(self, name: str, handler: Callable[[Any], Any], maxsize: int,
                 on_error: Callable[[str, BaseException], None]):
        self.name = name
        self.handler = handler
        self.maxsize = maxsize
        self.dropped = 0
        self._half = maxsize // 2
        self._on_error = on_error
        self._items: deque = deque()
        self._drop_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._tick = getattr(handler, "tick", None)
        self._start()
        _LIVE.add(self)

    def _start(self, after_fork: bool = False) -> None:
        if after_fork:
            if self._stopped:
                return
            self._items.clear()  # the parent handles what it emitted
            self._wake = threading.Event()
            self._drop_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"dspy-turbo-sink:{self.name}", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: Any) -> None:
        # The hot path: a length check and an append. A full queue drops the event.
        n = len(self._items)
        if n >= self.maxsize:
            with self._drop_lock:
                self.dropped += 1
            return
        self._items.append(event)
        if n == self._half:
            self._wake.set()

    def flush(self, timeout: float | None) -> bool:
        if self._stopped or not self._thread.is_alive():
            return not self._items
        marker = _Marker()
        self._items.append(marker)  # past the bound on purpose: a flush is never dropped
        self._wake.set()
        return marker.done.wait(timeout)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _handle(self, item: Any) -> None:
        self.handler(item)

    def _run(self) -> None:
        items = self._items
        batch_fn = self._batch_fn()
        next_tick = time.monotonic() + TICK_SECONDS
        poll = POLL_SECONDS
        while not self._stopped:
            poll = POLL_SECONDS if items else min(IDLE_POLL_SECONDS, poll * 2)
            while items:
                if batch_fn is not None and not isinstance(items[0], _Marker):
                    batch = []
                    while items and len(batch) < BATCH and not isinstance(items[0], _Marker):
                        batch.append(items.popleft())
                    try:
                        batch_fn(batch)
                    except Exception as exc:
                        self._on_error(self.name, exc)
                    continue
                item = items.popleft()
                if isinstance(item, _Marker):
                    self._call("flush")
                    item.done.set()
                    continue
                try:
                    self._handle(item)
                except Exception as exc:  # counted and logged once by the bus; the sink keeps its thread
                    self._on_error(self.name, exc)
            now = time.monotonic()
            if now >= next_tick:
                self._call("tick")
                next_tick = now + TICK_SECONDS
            self._wake.wait(min(poll, max(0.0, next_tick - time.monotonic())))
            self._wake.clear()
        # stopped: release anyone waiting on a flush
        while items:
            item = items.popleft()
            if isinstance(item, _Marker):
                item.done.set()

    def _batch_fn(self) -> Callable[[list], Any] | None:
        return getattr(self.handler, "handle_batch", None)

    def _call(self, method: str) -> None:
        fn = self._tick if method == "tick" else getattr(self.handler, method, None)
        if fn is None:
            return
        try:
            fn()
        except Exception as exc:
            self._on_error(self.name, exc)


class ContextSinkQueue(SinkQueue):
    """A :class:`SinkQueue` whose handler sees each event in the emitting thread's context.

    ``put`` stores ``(event, contextvars.copy_context())`` (a copy is cheap: the context is
    an immutable mapping); the drain thread calls the handler through ``context.run``, so
    what the handler reads from a context variable (OpenTelemetry's current span, a
    ``dspy.context`` setting) is what the caller had when it emitted. Each event is handled
    on its own (``handle_batch`` is not used: the events of one batch have different contexts).
    """

    def put(self, event: Any) -> None:
        n = len(self._items)
        if n >= self.maxsize:
            with self._drop_lock:
                self.dropped += 1
            return
        self._items.append((event, contextvars.copy_context()))
        if n == self._half:
            self._wake.set()

    def _handle(self, item: Any) -> None:
        event, context = item
        context.run(self.handler, event)

    def _batch_fn(self) -> None:
        return None
