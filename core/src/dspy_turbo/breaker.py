"""A circuit breaker per tier: after ``failures`` consecutive failures the tier is skipped
for ``cooldown`` seconds, then one trial call decides whether it is back."""

from __future__ import annotations

import threading
import time


class CircuitBreaker:
    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(self, failures: int = 3, cooldown: float = 30.0, clock=time.monotonic):
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

    def success(self) -> None:
        if self.state == self.CLOSED and self.consecutive == 0:
            return
        with self._lock:
            self.consecutive = 0
            self.state = self.CLOSED

    def failure(self) -> bool:
        """Record a failure; True when this failure opened the breaker."""
        with self._lock:
            self.consecutive += 1
            if self.state == self.HALF_OPEN or (self.state == self.CLOSED and self.consecutive >= self.threshold):
                self.state = self.OPEN
                self.opened_at = self._clock()
                self.trips += 1
                return True
            return False
