"""A circuit breaker per tier: after ``failures`` consecutive failures the tier is skipped
for ``cooldown`` seconds, then one trial call decides whether it is back.

A breaker with a ``label`` logs its transitions on the ``dspy_turbo.breaker`` logger, once
each: a WARNING when it opens (the tier is being skipped, with the last error), an INFO when
it closes again (the tier is back). A failed trial re-opens it quietly (DEBUG): the outage
was reported when it began, and a log line every cool-down would say nothing new.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("dspy_turbo.breaker")


class CircuitBreaker:
    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(self, failures: int = 3, cooldown: float = 30.0, clock=time.monotonic, label: str | None = None):
        self.label = label
        """What the log lines call it (``tier 'redis' reads``); None: no log lines."""
        self.threshold = failures
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self.state = self.CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self.trips = 0

    def allow(self) -> bool:
        """May the tier be called now? Cheap when closed (the hot path)."""
        if self.state == self.CLOSED:
            return True
        with self._lock:
            if self.state == self.OPEN and self._clock() - self.opened_at >= self.cooldown:
                self.state = self.HALF_OPEN
                return True  # this caller is the trial
            return False

    def success(self) -> bool:
        """Record a success; True when it closed an open (or half-open) breaker."""
        if self.state == self.CLOSED and self.consecutive == 0:
            return False
        with self._lock:
            was = self.state
            self.consecutive = 0
            self.state = self.CLOSED
        if was != self.CLOSED and self.label:
            logger.info("%s are back: the circuit breaker closed after a successful trial call", self.label)
        return was != self.CLOSED

    def failure(self, error: str | None = None) -> bool:
        """Record a failure (``error``: a short description for the log); True when this
        failure opened the breaker."""
        with self._lock:
            self.consecutive += 1
            was = self.state
            if was == self.HALF_OPEN or (was == self.CLOSED and self.consecutive >= self.threshold):
                self.state = self.OPEN
                self.opened_at = self._clock()
                self.trips += 1
            else:
                return False
        if self.label:
            if was == self.CLOSED:
                logger.warning("%s failing (%d in a row%s): circuit breaker open, skipped for %gs, then one trial call",
                               self.label, self.consecutive, f", last: {error}" if error else "", self.cooldown)
            else:
                logger.debug("%s: the trial call failed%s; skipped for another %gs", self.label,
                             f" ({error})" if error else "", self.cooldown)
        return True
