"""Metric events and the bus that hands them to every sink.

Every hit, miss, store, eviction, error and LM call becomes one :class:`Event`. The bus
broadcasts it to the metric-sink components from the YAML, to the in-process stats
aggregator, and to every ``dspy_turbo_metric_event`` hook implementation. A sink that
raises is counted and logged once; it never silences the others and never reaches the
user's program. Events carry no request text and no secrets: keys are hashes.

Two kinds of handler: *synchronous* ones (the stats aggregator, so ``turbo.stats()`` is
exact right after a call) run on the caller's thread; *background* ones (metric sinks and
hooks) each get a bounded queue drained by their own thread (:mod:`dspy_turbo.events.sink_queue`),
so a sink that blocks or raises never slows the program: when its queue is full the
event is dropped and counted (``turbo.stats()["dropped_events"]``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("dspy_turbo.events")

# The event kinds the core emits; plugins may add their own (a sink ignores kinds it does not know).
HIT, MISS, STORE, SKIP_STORE, EVICT, ERROR, LM_CALL, COALESCED, BREAKER = (
    "hit", "miss", "store", "skip_store", "evict", "error", "lm_call", "coalesced", "breaker",
)
# Model routing (router.py): ``route`` is one decision (model, estimated cost; tier, score and
# source in ``extra``); ``route_saving`` is what a routed LM call saved (``cost``) against the top tier.
ROUTE, ROUTE_SAVING = "route", "route_saving"


@dataclass(slots=True)  # not frozen: a frozen dataclass costs 3x to build, on every hit
class Event:
    kind: str
    tier: str | None = None
    """Tier name for cache events; ``None`` for a miss in every tier."""
    latency: float | None = None
    """Seconds: the lookup for hits and misses, the LM round trip for ``lm_call``."""
    model: str | None = None
    tokens: int = 0
    """Tokens the LM call used (``lm_call``) or that a hit saved (``hit``)."""
    cost: float | None = None
    """Dollars the LM call cost (``lm_call``) or that a hit saved (``hit``)."""
    error: str | None = None
    """A short error description: type and message, never request text."""
    reason: str | None = None
    key: str | None = None
    namespace: str | None = None
    extra: dict[str, Any] | None = None
    time: float = field(default_factory=time.time)


Handler = Callable[[Event], Any]


class EventBus:
    """Fan-out with per-sink fault isolation; cheap when nobody listens."""

    def __init__(self, handlers: Iterable[tuple[str, Handler]] = ()):
        self._handlers: list[tuple[str, Handler]] = list(handlers)
        self._failed: set[str] = set()
        self._lock = threading.Lock()
        self.sink_errors: dict[str, int] = {}
        self._queues: tuple = ()  # background handlers, see add_background

    def add(self, name: str, handler: Handler) -> None:
        with self._lock:
            self._handlers = [*self._handlers, (name, handler)]

    def remove(self, name: str) -> None:
        with self._lock:
            self._handlers = [(n, h) for n, h in self._handlers if n != name]
            gone = [q for q in self._queues if q.name == name]
            self._queues = tuple(q for q in self._queues if q.name != name)
        for queue in gone:
            queue.stop()

    def emit(self, event: Event) -> None:
        if self._queues:
            for queue in self._queues:
                queue.put(event)
        for name, handler in self._handlers:
            try:
                handler(event)
            except Exception as exc:  # a broken sink must not break the program or the other sinks
                self.sink_errors[name] = self.sink_errors.get(name, 0) + 1
                if name not in self._failed:
                    self._failed.add(name)
                    logger.warning("metric sink %r raised %s: %s (further errors counted, not logged)",
                                   name, type(exc).__name__, exc)

    def __bool__(self) -> bool:
        return bool(self._handlers) or bool(self._queues)

    # -- background handlers (metric sinks, hooks) -------------------------------------------

    def add_background(self, name: str, handler: Handler, maxsize: int = 10_000) -> None:
        """Hand events to ``handler`` on its own thread through a queue of ``maxsize`` events.

        A handler with ``caller_context = True`` handles each event in a copy of the
        emitting thread's ``contextvars`` context (``handoff.ContextSinkQueue``)."""
        from .sink_queue import ContextSinkQueue, SinkQueue

        kind = ContextSinkQueue if getattr(handler, "caller_context", False) is True else SinkQueue
        queue = kind(name, handler, maxsize, self._sink_failed)
        with self._lock:
            self._queues = (*self._queues, queue)

    def _sink_failed(self, name: str, exc: BaseException) -> None:
        with self._lock:
            self.sink_errors[name] = self.sink_errors.get(name, 0) + 1
            first = name not in self._failed
            self._failed.add(name)
        if first:
            logger.warning("metric sink %r raised %s: %s (further errors counted, not logged)",
                           name, type(exc).__name__, exc)

    def dropped(self) -> dict[str, int]:
        """Events each background handler lost because its queue was full."""
        return {q.name: q.dropped for q in self._queues}

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every background handler has handled what was emitted so far.

        True when all caught up within ``timeout`` seconds (shared by all queues); False when
        one is still busy (a blocked sink), which never blocks longer than ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        # Later handlers (alerts) emit events for earlier ones (sinks): flush them first.
        for queue in reversed(self._queues):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = queue.flush(left) and ok
        return ok

    def close(self, timeout: float | None = 5.0) -> bool:
        """Flush, then stop the background threads (a blocked one is abandoned: daemon)."""
        ok = self.flush(timeout)
        for queue in self._queues:
            queue.stop()
        return ok


def describe_error(exc: BaseException) -> str:
    """``Type: message`` cut short; messages from tiers never contain request text."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
