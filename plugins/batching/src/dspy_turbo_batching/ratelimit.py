"""Rate limits per model: requests per minute and tokens per minute, as token buckets.

A limit never fails a call: a caller that finds the bucket empty waits until it has
refilled. The buckets live in ``turbo.coordinator``: with a Redis tier configured every
process using the same namespace draws from one bucket, so N workers together stay under
one provider limit; otherwise they are this process's own. A coordinator that fails (a
down Redis) is replaced by a local bucket for that call and logged once, never raised.
That bucket gets this process's share of the limit: a shared coordinator is told every few
seconds that this process is drawing from it (``Coordinator.members``), so each process
knows how many were sharing the limit when the coordinator went away, and N workers stay
under one provider limit through an outage too.

Tokens are taken before the call, so they are an estimate: the prompt's characters / 4
plus the average completion size seen so far for that model.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable

from dspy_turbo.plugin.batch import Limit, RateLimitSettings
from dspy_turbo.plugin.coordination import Coordinator, LocalCoordinator

logger = logging.getLogger("dspy_turbo.ratelimit")
_HEARTBEAT = 5.0  # seconds between this process's counts of the processes sharing a limit
_MEMBER = uuid.uuid4().hex  # with the pid: a forked worker is a process of its own


class _Sharing:
    """How many processes drew from a shared coordinator's buckets, as last counted. One per
    coordinator, kept across batches: a batch that starts while Redis is down still knows."""

    def __init__(self):
        self.processes = 1
        self.counted = float("-inf")


_sharing: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # coordinator -> _Sharing


class RateLimiter:
    """Blocks (or awaits) until a request of ``tokens`` may go to ``model``."""

    def __init__(self, settings: RateLimitSettings, coordinator: Coordinator, *,
                 sleep: Callable[[float], None] = time.sleep,
                 asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.coordinator = coordinator
        self.sleep = sleep
        self.asleep = asleep
        self.clock = clock
        self._sharing = _sharing.setdefault(coordinator, _Sharing()) if coordinator.shared else None
        self._fallback = LocalCoordinator(clock=clock)
        self._warned = False
        self._lock = threading.Lock()
        self._completion: dict[str, float] = {}
        self.waited = 0.0

    def limit_for(self, model: str | None) -> Limit:
        return self.settings.per_model.get(model or "", self.settings)

    def _buckets(self, model: str | None, tokens: float, requests: int = 1) -> list[tuple[str, float, float, float]]:
        limit = self.limit_for(model)
        out = []
        if limit.requests_per_minute:
            rate = limit.requests_per_minute / 60
            out.append((f"ratelimit:{model}:requests", float(requests), rate, max(1.0, rate * limit.burst)))
        if limit.tokens_per_minute:
            rate = limit.tokens_per_minute / 60
            out.append((f"ratelimit:{model}:tokens", max(1.0, tokens), rate, max(1.0, rate * limit.burst)))
        return out

    def _take(self, bucket: str, amount: float, rate: float, capacity: float) -> float:
        try:
            wait = self.coordinator.take(bucket, amount, rate, capacity)
        except Exception as exc:  # a down Redis: limit this process alone rather than fail the call
            share = self._sharing.processes if self._sharing is not None else 1
            if not self._warned:
                self._warned = True
                logger.warning("rate-limit coordinator failed (%s); using a local bucket at 1/%d of the limit "
                               "(processes sharing it when last counted: %d)", type(exc).__name__, share, share)
            return self._fallback.take(bucket, amount, rate / share, max(1.0, capacity / share))
        if self._sharing is not None:
            self._count_sharing()
        return wait

    def _count_sharing(self) -> None:
        """Every few seconds: say that this process draws from the shared buckets, and learn
        how many processes do (what each one's share is if the coordinator goes down)."""
        sharing, now = self._sharing, self.clock()
        if now - sharing.counted < _HEARTBEAT:
            return
        sharing.counted = now  # racing callers may both count: harmless, and no lock on the hot path
        try:
            sharing.processes = max(1, int(self.coordinator.members("ratelimit", f"{_MEMBER}:{os.getpid()}",
                                                                    3 * _HEARTBEAT)))
        except Exception:  # the coordinator is failing: the next take falls back with the last count
            pass

    def estimate(self, model: str | None, prompt_chars: int) -> float:
        return prompt_chars / 4 + self._completion.get(model or "", 0.0)

    def observe(self, model: str | None, completion_tokens: int) -> None:
        """Learn the usual completion size of ``model`` (an average weighted to recent calls)."""
        with self._lock:
            old = self._completion.get(model or "")
            self._completion[model or ""] = completion_tokens if old is None else 0.8 * old + 0.2 * completion_tokens

    def acquire(self, model: str | None, tokens: float = 0.0, requests: int = 1) -> float:
        """Wait until ``requests`` requests (of ``tokens`` in all) may go; returns the seconds waited."""
        waited = 0.0
        for bucket, amount, rate, capacity in self._buckets(model, tokens, requests):
            while (wait := self._take(bucket, amount, rate, capacity)) > 0:
                self.sleep(wait)
                waited += wait
        self.waited += waited
        return waited

    async def aacquire(self, model: str | None, tokens: float = 0.0, requests: int = 1) -> float:
        waited = 0.0
        shared = self.coordinator.shared  # a round trip to Redis: never on the event loop itself
        for bucket, amount, rate, capacity in self._buckets(model, tokens, requests):
            while (wait := (await asyncio.to_thread(self._take, bucket, amount, rate, capacity) if shared
                            else self._take(bucket, amount, rate, capacity))) > 0:
                await self.asleep(wait)
                waited += wait
        self.waited += waited
        return waited
