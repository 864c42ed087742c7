"""Alert rules over the event stream: hit rate too low, latency too high, too many errors.

Rules come from ``metrics.alerts`` in the YAML (validated like everything else, so a bad
rule is a config error naming its path)::

    metrics:
      alerts:
        - {name: low-hit-rate, metric: hit_rate, below: 0.5, window: 5m}
        - {name: slow-lm, metric: lm_latency_p95, above: 2s, window: 1m}
        - {name: errors, metric: error_rate, above: 0.05, window: 1m, min_events: 50}

The monitor is a background handler on the event bus. About once a second (and when
events arrive) it evaluates each rule over its sliding window. When a rule's condition
starts to hold, an ``alert`` event with ``extra.state == "firing"`` goes to every sink
(the log sink writes it as a warning, the Prometheus sink sets a gauge to 1) and a
warning is logged; when it stops holding, or the window has too few events to judge, a
``resolved`` event follows, logged at WARNING too: an operator who filters at WARNING sees
each alert end as well as begin, as a pager shows an incident close (Alertmanager sends
resolutions to the same receiver as the firing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Literal

from pydantic import Field, model_validator

from ..host.components import Options
from ..host.units import Duration, parse_duration
from . import bus as ev
from .bus import Event, EventBus

logger = logging.getLogger("dspy_turbo.alerts")

ALERT = "alert"

METRICS = {
    "hit_rate": "cache hits / lookups",
    "error_rate": "errors (tier, hook and failed LM calls) / operations (lookups and LM calls)",
    "lm_latency_p95": "95th percentile of LM call latency, seconds",
    "lookup_latency_p95": "95th percentile of cache lookup latency, seconds",
}
_LATENCY_SAMPLES = 20_000


class AlertRule(Options):
    name: str = Field(pattern=r"^[A-Za-z0-9_.:\-]+$", max_length=64)
    """Shown in logs and as the ``alert`` label; a short identifier."""
    metric: Literal["hit_rate", "error_rate", "lm_latency_p95", "lookup_latency_p95"]
    below: float | str | None = None
    """Fire when the metric is below this (rates: 0..1; latencies: seconds or ``"250ms"``)."""
    above: float | str | None = None
    """Fire when the metric is above this."""
    window: Duration = 60.0
    """The sliding window the metric is computed over."""
    min_events: int = Field(default=10, ge=1)
    """Fewer events than this in the window: too little to judge; the alert does not fire (and clears)."""

    @model_validator(mode="after")
    def _one_threshold(self) -> AlertRule:
        if (self.below is None) == (self.above is None):
            raise ValueError("give exactly one of 'below' or 'above'")
        if self.window <= 0:
            raise ValueError("'window' must be longer than 0s")
        for side in ("below", "above"):
            value = getattr(self, side)
            if value is None:
                continue
            if self.metric.endswith("_p95"):
                object.__setattr__(self, side, parse_duration(value))
            elif isinstance(value, str) or not 0.0 <= value <= 1.0:
                raise ValueError(f"'{side}' for {self.metric} is a fraction between 0 and 1, got {value!r}")
        return self

    @property
    def threshold(self) -> float:
        return float(self.below if self.below is not None else self.above)

    def crossed(self, value: float) -> bool:
        return value < self.threshold if self.below is not None else value > self.threshold

    def describe(self, value: float | None) -> str:
        op = "<" if self.below is not None else ">"
        shown = "no data" if value is None else f"{value:.4g}"
        return f"{self.metric} {shown} {op} {self.threshold:g} over {self.window:g}s"


class _Window:
    """Per-second counts and timestamped latency samples, pruned to the longest rule window."""

    def __init__(self, span: float):
        self.span = span
        self.seconds: deque[list] = deque()  # [second, hits, lookups, errors, ops]
        self.lm_latency: deque[tuple[float, float]] = deque(maxlen=_LATENCY_SAMPLES)
        self.lookup_latency: deque[tuple[float, float]] = deque(maxlen=_LATENCY_SAMPLES)

    def _bucket(self, now: float) -> list:
        second = int(now)
        if not self.seconds or self.seconds[-1][0] != second:
            self.seconds.append([second, 0, 0, 0, 0])
        return self.seconds[-1]

    def add(self, event: Event, now: float) -> None:
        kind = event.kind
        if kind in (ev.HIT, ev.MISS):
            b = self._bucket(now)
            b[2] += 1
            b[4] += 1
            if kind == ev.HIT:
                b[1] += 1
            if event.latency is not None:
                self.lookup_latency.append((now, event.latency))
        elif kind == ev.LM_CALL:
            b = self._bucket(now)
            b[4] += 1
            if event.error:
                b[3] += 1
            elif event.latency is not None:
                self.lm_latency.append((now, event.latency))
        elif kind == ev.ERROR:
            self._bucket(now)[3] += 1

    def prune(self, now: float) -> None:
        edge = now - self.span
        while self.seconds and self.seconds[0][0] < int(edge):
            self.seconds.popleft()
        for samples in (self.lm_latency, self.lookup_latency):
            while samples and samples[0][0] < edge:
                samples.popleft()

    def value(self, rule: AlertRule, now: float) -> float | None:
        edge = now - rule.window
        if rule.metric.endswith("_p95"):
            source = self.lm_latency if rule.metric == "lm_latency_p95" else self.lookup_latency
            values = sorted(lat for t, lat in source if t >= edge)
            if len(values) < rule.min_events:
                return None
            return values[min(len(values) - 1, int(0.95 * len(values)))]
        hits = lookups = errors = ops = 0
        for second, h, lk, er, op in self.seconds:
            if second >= int(edge):
                hits, lookups, errors, ops = hits + h, lookups + lk, errors + er, ops + op
        if rule.metric == "hit_rate":
            return hits / lookups if lookups >= rule.min_events else None
        if ops < rule.min_events:
            return None
        return min(1.0, errors / ops)


class AlertMonitor:
    """Evaluates the rules; a background handler of the event bus (see ``handoff``)."""

    EVALUATE_EVERY = 0.25  # seconds between evaluations while events stream in

    def __init__(self, rules: list[AlertRule], bus: EventBus, namespace: str | None = None, clock=time.time):
        self.rules = list(rules)
        self.bus = bus
        self.namespace = namespace
        self.clock = clock
        self._window = _Window(max(rule.window for rule in self.rules))
        self._firing: dict[str, float | None] = {}
        self._lock = threading.Lock()
        self._next = 0.0

    def __call__(self, event: Event) -> None:
        if event.kind == ALERT:
            return
        now = self.clock()
        self._window.add(event, now)
        if now >= self._next:
            self.evaluate(now)

    def tick(self) -> None:
        self.evaluate()

    def flush(self) -> None:
        self.evaluate()

    def firing(self) -> list[str]:
        with self._lock:
            return sorted(self._firing)

    def evaluate(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        self._next = now + self.EVALUATE_EVERY
        self._window.prune(now)
        for rule in self.rules:
            value = self._window.value(rule, now)
            crossed = value is not None and rule.crossed(value)
            with self._lock:
                was = rule.name in self._firing
                if crossed:
                    self._firing[rule.name] = value
                else:
                    self._firing.pop(rule.name, None)
            if crossed and not was:
                logger.warning("dspy-turbo alert %s firing: %s", rule.name, rule.describe(value))
                self._emit(rule, "firing", value)
            elif was and not crossed:
                logger.warning("dspy-turbo alert %s resolved: %s", rule.name, rule.describe(value))
                self._emit(rule, "resolved", value)

    def _emit(self, rule: AlertRule, state: str, value: float | None) -> None:
        self.bus.emit(Event(ALERT, reason=rule.name, namespace=self.namespace, extra={
            "state": state, "metric": rule.metric, "value": value, "threshold": rule.threshold,
            "op": "below" if rule.below is not None else "above", "window": rule.window,
        }))
