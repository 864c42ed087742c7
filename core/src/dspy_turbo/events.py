"""Metric events and the bus that hands them to every sink.

Every hit, miss, store, eviction, error and LM call becomes one :class:`Event`. The bus
broadcasts it to the metric-sink components from the YAML, to the in-process stats
aggregator, and to every ``dspy_turbo_metric_event`` hook implementation. A sink that
raises is counted and logged once; it never silences the others and never reaches the
user's program. Events carry no request text and no secrets: keys are hashes.
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

    def add(self, name: str, handler: Handler) -> None:
        with self._lock:
            self._handlers = [*self._handlers, (name, handler)]

    def remove(self, name: str) -> None:
        with self._lock:
            self._handlers = [(n, h) for n, h in self._handlers if n != name]

    def emit(self, event: Event) -> None:
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
        return bool(self._handlers)


def describe_error(exc: BaseException) -> str:
    """``Type: message`` cut short; messages from tiers never contain request text."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
