"""Coordination between callers: leases (single-flight across processes) and token buckets
(rate limits shared by every worker).

A Turbo has exactly one :class:`Coordinator`, ``turbo.coordinator``. The first tier whose
backend offers one (``backend.coordinator()``, e.g. the Redis tier) provides it, so every
process using the same namespace on that server coordinates; otherwise it is the
in-process :class:`LocalCoordinator`, which coordinates the threads and tasks of this
process only. ``coordinator.shared`` says which it is.

A coordinator that fails (a down server) raises; callers treat that as "no coordination"
(call the LM themselves, or fall back to a local bucket), never as an error in the
user's program.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass


class Coordinator:
    """The contract. Names are plain strings; implementations add their own prefix."""

    shared: bool = False
    """True when other processes see the same leases and buckets."""

    def try_lease(self, name: str, ttl: float) -> str | None:
        """Take the lease ``name`` for ``ttl`` seconds if nobody holds it.

        Returns a token to release it with, or ``None`` when another holder has it. A
        holder that crashes loses the lease when ``ttl`` runs out.
        """
        raise NotImplementedError

    def release(self, name: str, token: str) -> None:
        """Give the lease back, only if ``token`` still holds it (an expired lease may
        already belong to someone else)."""
        raise NotImplementedError

    def renew(self, name: str, token: str, ttl: float) -> bool:
        """Extend the lease ``name`` to ``ttl`` seconds from now if ``token`` still holds it;
        False when it does not (expired, taken over).

        Optional: the default cannot renew, and a lease then lasts ``ttl`` from when it was
        taken. A leader renews its lease while its call runs, so a lease outlives a slow call
        and still expires soon after a crash."""
        return False

    def holder(self, name: str) -> str | None:
        """The token holding the lease ``name`` now, or None (free, or unknown: the default).

        Optional: lets a waiter tell a new holder (one who took over from a crashed leader)
        from the one it began waiting for."""
        return None

    def take(self, bucket: str, amount: float, rate: float, capacity: float) -> float:
        """Take ``amount`` tokens from a bucket refilled at ``rate`` tokens per second up to
        ``capacity`` (full when first used).

        Returns ``0.0`` when the tokens were taken, else how many seconds to wait before
        enough are there (nothing is taken then). A request larger than ``capacity`` waits
        for a full bucket (not forever), then takes its whole ``amount``: the bucket goes
        into debt, so the requests after it wait until the rate has paid for it.
        """
        raise NotImplementedError

    def members(self, group: str, member: str, ttl: float) -> int:
        """Record that ``member`` of ``group`` is alive for the next ``ttl`` seconds, and return
        how many members are alive, itself included.

        Optional: the default knows of no other process and returns 1. A shared coordinator
        that counts its processes lets a rate limit keep each one to its share while the
        coordinator itself is down (``dspy_turbo.ratelimit``).
        """
        return 1

    # Optional: an append-only log shared by every process (``supports_logs``), which
    # keeps each process's similarity index in step (``dspy_turbo.replication``).
    supports_logs: bool = False

    def append(self, log: str, record: bytes) -> None:
        """Append ``record`` to the log ``log`` (the oldest records may be trimmed)."""
        raise NotImplementedError

    def read(self, log: str, after: str, count: int) -> list[tuple[str, bytes]]:
        """Up to ``count`` records appended after the record id ``after`` (``"0"``: from the
        start), oldest first, as ``(id, record)``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; the default has none."""


@dataclass
class _Bucket:
    level: float
    updated: float


class LocalCoordinator(Coordinator):
    """This process's threads and tasks only. ``clock`` is injectable for tests."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[str, float]] = {}
        self._buckets: dict[str, _Bucket] = {}

    def try_lease(self, name: str, ttl: float) -> str | None:
        now = self.clock()
        with self._lock:
            held = self._leases.get(name)
            if held is not None and held[1] > now:
                return None
            token = uuid.uuid4().hex
            self._leases[name] = (token, now + ttl)
            return token

    def release(self, name: str, token: str) -> None:
        with self._lock:
            held = self._leases.get(name)
            if held is not None and held[0] == token:
                del self._leases[name]

    def renew(self, name: str, token: str, ttl: float) -> bool:
        with self._lock:
            held = self._leases.get(name)
            if held is None or held[0] != token or held[1] <= self.clock():
                return False
            self._leases[name] = (token, self.clock() + ttl)
            return True

    def holder(self, name: str) -> str | None:
        with self._lock:
            held = self._leases.get(name)
            return held[0] if held is not None and held[1] > self.clock() else None

    def take(self, bucket: str, amount: float, rate: float, capacity: float) -> float:
        need = min(amount, capacity)
        now = self.clock()
        with self._lock:
            state = self._buckets.get(bucket)
            if state is None:
                state = self._buckets[bucket] = _Bucket(capacity, now)
            state.level = min(capacity, state.level + (now - state.updated) * rate)
            state.updated = now
            if state.level >= need:
                state.level -= amount  # may go below zero: debt for an oversized request
                return 0.0
            return (need - state.level) / rate if rate > 0 else float("inf")


class CoordinationUnavailable(RuntimeError):
    """The shared coordinator is skipped (its circuit breaker is open) or failed."""


class GuardedCoordinator(Coordinator):
    """A shared coordinator behind a circuit breaker of its own (the tier's
    ``coordination_breaker``): while it is open, calls fail at once with
    ``CoordinationUnavailable`` instead of waiting on a dead server; every failure counts
    toward it and is an error event of the tier. The tier's read and write breakers count
    only the tier's own calls."""

    shared = True

    def __init__(self, inner: Coordinator, allow: Callable[[], bool], failed: Callable[[BaseException], None],
                 succeeded: Callable[[], None]):
        self.inner = inner
        self._allow, self._failed, self._succeeded = allow, failed, succeeded

    def _run(self, method, *args):
        if not self._allow():
            raise CoordinationUnavailable("the shared coordinator is unavailable (circuit breaker open)")
        try:
            result = method(*args)
        except Exception as exc:
            self._failed(exc)
            raise CoordinationUnavailable(str(exc)) from exc
        self._succeeded()
        return result

    def try_lease(self, name: str, ttl: float) -> str | None:
        return self._run(self.inner.try_lease, name, ttl)

    def release(self, name: str, token: str) -> None:
        self._run(self.inner.release, name, token)

    def renew(self, name: str, token: str, ttl: float) -> bool:
        return self._run(self.inner.renew, name, token, ttl)

    def holder(self, name: str) -> str | None:
        return self._run(self.inner.holder, name)

    def take(self, bucket: str, amount: float, rate: float, capacity: float) -> float:
        return self._run(self.inner.take, bucket, amount, rate, capacity)

    def members(self, group: str, member: str, ttl: float) -> int:
        return self._run(self.inner.members, group, member, ttl)

    @property
    def supports_logs(self) -> bool:  # type: ignore[override]
        return self.inner.supports_logs

    def append(self, log: str, record: bytes) -> None:
        self._run(self.inner.append, log, record)

    def read(self, log: str, after: str, count: int) -> list[tuple[str, bytes]]:
        return self._run(self.inner.read, log, after, count)

    def close(self) -> None:
        self.inner.close()
