"""The metric sink contract: a component that receives every metric event (``metrics.sinks[]``).

Subclass :class:`MetricSink`, set ``name`` and ``Options``, implement ``__call__(event)``,
and register the class through ``dspy_turbo_metric_sinks``. Each sink runs on its own
background thread fed by a bounded queue (``metrics.queue_size``): the program's thread only
enqueues, so a sink that blocks or raises never slows or breaks the program; when its queue
is full, events are dropped and counted (``turbo.stats()["dropped_events"]``).

Optional methods, called when the sink has them (the base class defines none of them, so
that the host can tell):

- ``handle_batch(events)``: called instead of ``__call__`` with the events that piled up
  (at most 1024; the queue is drained every 50 ms);
- ``flush()``: when ``turbo.flush_events()`` reaches the sink;
- ``tick()``: about once a second, also without traffic (windows, gauges);
- ``close()``: from ``turbo.close()``, after its pending events were handled or the flush
  timed out;
- classmethod ``read_running(options, url=None)``: for ``dspy-turbo stats``, a sink that
  serves what a process counted reads it back: ``{"url", "lookups", "hit_rate",
  "hit_rate_by_tier"}`` from ``url``, else from where ``options`` serve it (``None`` when
  they serve nothing), or ``{"url", "error"}`` when it cannot.

A sink that needs the caller's context (a tracer, whose spans take the caller's current span
as their parent) sets the class attribute ``caller_context = True``: each event is then handled
inside a copy of the ``contextvars`` context the event was emitted in (still on the sink's own
thread; the caller pays one ``contextvars.copy_context()``), and ``handle_batch`` is not used.
Spans made there take their times from the event (``time``, ``latency``), not the clock.

The events and their fields are in :mod:`dspy_turbo.plugin.events`. A sink ignores kinds
it does not know, never adds request text or a secret to what it exports, and never labels
a metric by key or prompt (unbounded cardinality). ``dspy_turbo.testing.MetricSinkSuite``
checks every rule.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import ClassVar

from ..events.bus import Event
from ..host.components import Component

__all__ = ["Event", "MetricSink"]


class MetricSink(Component, metaclass=ABCMeta):
    """Base of metric sink components (``kind = "metric_sink"``)."""

    kind: ClassVar[str] = "metric_sink"
    caller_context: ClassVar[bool] = False
    """True: each event is handled in a copy of the emitting thread's ``contextvars`` context."""

    @abstractmethod
    def __call__(self, event: Event) -> None:
        """Handle one event, on the sink's own thread. An exception is counted and logged once."""
