"""A spend limit per period for routed LM calls (``routing.budget`` in the YAML).

Windows are aligned to UTC multiples of the period (``1d`` resets at midnight UTC, ``1h``
on the hour). The limit counts what routed calls cost as they finish, so calls already in
flight when it is reached may overshoot it by their own cost. The count is per process.
"""

from __future__ import annotations

import datetime
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from ..host.units import format_duration


def money(dollars: float) -> str:
    """``$12.50``, ``$0.25``, and small amounts to three significant digits (``$0.001``, never ``$0.00``)."""
    if dollars >= 0.995 or dollars <= 0:
        return f"${dollars:,.2f}"
    digits = min(12, 2 - math.floor(math.log10(dollars)))  # three significant digits, no exponent
    return "$" + f"{dollars:.{digits}f}".rstrip("0")


class BudgetExceeded(RuntimeError):
    """The routing budget for the current period is spent and ``on_exceeded: error``."""


class Budget:
    def __init__(self, limit: float, period: float, on_exceeded: str = "cheapest", clock: Callable[[], float] = time.time):
        self.limit = float(limit)
        self.period = float(period)
        self.on_exceeded = on_exceeded
        self.clock = clock
        self._lock = threading.Lock()
        self._window = self._window_of(clock())
        self._spent = 0.0

    def _window_of(self, now: float) -> float:
        return now - now % self.period

    def _roll(self) -> None:
        window = self._window_of(self.clock())
        if window != self._window:
            self._window, self._spent = window, 0.0

    def add(self, dollars: float | None) -> None:
        if not dollars:
            return
        with self._lock:
            self._roll()
            self._spent += dollars

    @property
    def spent(self) -> float:
        with self._lock:
            self._roll()
            return self._spent

    def exceeded(self) -> bool:
        return self.spent >= self.limit

    def resets_at(self) -> str:
        with self._lock:
            self._roll()
            end = self._window + self.period
        return datetime.datetime.fromtimestamp(end, datetime.timezone.utc).isoformat(timespec="seconds")

    def error(self) -> BudgetExceeded:
        return BudgetExceeded(f"dspy-turbo routing budget reached: {money(self.spent)} spent of {money(self.limit)} "
                              f"per {format_duration(self.period)} period; it resets at {self.resets_at()}. Raise "
                              "routing.budget.limit, or set routing.budget.on_exceeded: cheapest to keep answering with the cheapest tier")

    def status(self) -> dict[str, Any]:
        spent = self.spent
        return {"limit": self.limit, "spent": round(spent, 6), "remaining": round(max(0.0, self.limit - spent), 6),
                "period_s": self.period, "resets_at": self.resets_at(), "on_exceeded": self.on_exceeded,
                "exceeded": spent >= self.limit}
