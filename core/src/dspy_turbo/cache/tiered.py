"""The tiered exact cache: tiers read in config order, hits promoted, writes through.

A tier that raises, or answers slower than its ``timeout``, is skipped with an error
event and counts against its circuit breaker; an open breaker skips the tier until its
cool-down has passed. Reads and writes have a breaker each, so a tier that can still be
read but not written (a full disk) keeps serving hits; the coordinator a tier offers has a
third, so only the tier's own calls open or close each. Bounding a call by ``timeout``
is the backend's part (the redis tier cuts its whole call off at that deadline). Nothing
a tier does ever raises into the caller.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..events import bus as ev
from ..events.bus import Event, EventBus, describe_error
from ..host.redaction import redact_text
from .backend import CacheBackend, effective_ttl
from .breaker import CircuitBreaker
from .entry import Entry


@dataclass
class Tier:
    backend: CacheBackend
    breaker: CircuitBreaker
    name: str
    ttl: float | None
    timeout: float | None
    write_breaker: CircuitBreaker = field(default=None)  # type: ignore[assignment]
    """Writes (set, delete); defaults to a copy of ``breaker``'s settings."""
    coordination_breaker: CircuitBreaker = field(default=None)  # type: ignore[assignment]
    """The coordinator this tier's backend offers (leases, rate buckets, logs); defaults to a
    copy of ``breaker``'s settings. Apart from ``breaker``: a quick lease or log call that
    succeeds says nothing about the tier's reads, and must not close their breaker."""

    def __post_init__(self) -> None:
        if self.write_breaker is None:
            self.write_breaker = CircuitBreaker(self.breaker.threshold, self.breaker.cooldown)
        if self.coordination_breaker is None:
            self.coordination_breaker = CircuitBreaker(self.breaker.threshold, self.breaker.cooldown)
        # Named for their transition log lines (breaker.py), unless the caller named them
        for breaker, what in ((self.breaker, "reads"), (self.write_breaker, "writes"),
                              (self.coordination_breaker, "coordination calls (leases, logs)")):
            if breaker.label is None:
                breaker.label = f"cache tier {self.name!r} {what}"

    @property
    def backend_in_process(self) -> bool:
        """The backend's class claims its entries live in this process (see ``TieredCache.in_process``)."""
        return getattr(type(self.backend), "in_process", False)


class TieredCache:
    def __init__(self, tiers: Iterable[Tier], bus: EventBus, namespace: str | None = None):
        self.tiers = list(tiers)
        self.bus = bus
        self.namespace = namespace
        self.before_read = None
        """Called before every read: applies other processes' invalidations (invalidation.py)."""

    # -- failure bookkeeping -------------------------------------------------------------

    def failed(self, tier: Tier, op: str, exc: BaseException | None, reason: str | None = None,
               breaker: CircuitBreaker | None = None) -> None:
        """An error event for ``tier``, counted toward its (read, unless given) circuit breaker."""
        breaker = breaker or tier.breaker
        error = describe_error(exc) if exc else reason
        opened = breaker.failure(redact_text(f"{op}: {error}"))  # a log line: no URL credentials
        self.bus.emit(Event(ev.ERROR, tier=tier.name, error=error, reason=op, namespace=self.namespace))
        if opened:
            reason = "open" if breaker is tier.breaker else \
                "open_writes" if breaker is tier.write_breaker else "open_coordination"
            self.bus.emit(Event(ev.BREAKER, tier=tier.name, reason=reason, namespace=self.namespace,
                                extra={"cooldown": breaker.cooldown}))

    def _done(self, tier: Tier, op: str, started: float, breaker: CircuitBreaker | None = None) -> None:
        breaker = breaker or tier.breaker
        if tier.timeout is not None and time.perf_counter() - started > tier.timeout:
            self.failed(tier, op, None, f"slower than its timeout of {tier.timeout:g}s", breaker)
        else:
            breaker.success()

    @property
    def in_process(self) -> bool:
        """Every tier keeps its entries in this process (see ``CacheBackend.in_process``):
        a lookup or store is cheaper inline than handed to a thread."""
        # The class's own claim: a wrapper forwarding attributes (__getattr__) to a memory
        # tier may itself do I/O, and does not inherit the claim that way.
        return all(tier.backend_in_process for tier in self.tiers)

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: str, count: bool = True, count_miss: bool = True, check=None) -> Entry | None:
        """The entry from the first tier that has it (promoted upward), or None.

        ``count=False`` emits no hit or miss event: for a re-read of a request that was
        already counted (single-flight), so every request counts once. ``count_miss=False``
        leaves the miss event to the caller (the semantic cache, which may still hit).
        ``check(entry)``: why the entry cannot serve its caller (a value of the wrong shape),
        or None; an entry it refuses is corrupt: removed from every tier, an error event,
        and the read a miss (never counted as a hit).
        """
        if self.before_read is not None:
            self.before_read()
        started = time.perf_counter()
        for index, tier in enumerate(self.tiers):
            if not tier.breaker.allow():
                continue
            t0 = time.perf_counter()
            try:
                entry = tier.backend.get(key)
            except Exception as exc:
                self.failed(tier, "get", exc)
                continue
            self._done(tier, "get", t0)
            if entry is None:
                continue
            if entry.expired():
                self._safe_delete(tier, key)
                continue
            if check is not None:
                problem = _checked(check, entry)
                if problem is not None:
                    self.corrupt(key, problem, tier.name)
                    break
            if index:
                self._promote(key, entry, self.tiers[:index])
            if count and self.bus:
                self.bus.emit(Event(ev.HIT, tier=tier.name, latency=time.perf_counter() - started, model=entry.model,
                                    tokens=entry.total_tokens, cost=entry.cost, key=key, namespace=self.namespace))
            return entry
        if count and count_miss and self.bus:
            self.bus.emit(Event(ev.MISS, latency=time.perf_counter() - started, key=key, namespace=self.namespace))
        return None

    def corrupt(self, key: str, problem: str, tier: str | None = None) -> None:
        """A stored value its caller cannot use: removed from every tier, an error event."""
        self.delete(key)
        if self.bus:
            self.bus.emit(Event(ev.ERROR, key=key, reason="corrupt", error=problem[:300], namespace=self.namespace,
                                extra={"component": "dspy", "tier": tier}))

    def get_many(self, keys: list[str], report_misses: bool = True, level: str | None = None) -> dict[str, Entry]:
        """Bulk lookup for the batch path: one ``get_many`` per tier for what is still missing.

        ``report_misses=False`` emits no miss events: a batch item that misses runs its
        program, whose LM requests are counted on their own. ``level`` (``"item"``: whole
        batch items) goes into the hit and promote events' ``extra``, so counts can tell them
        from LM calls.
        """
        if self.before_read is not None:
            self.before_read()
        found: dict[str, Entry] = {}
        missing = list(dict.fromkeys(keys))
        for index, tier in enumerate(self.tiers):
            if not missing:
                break
            if not tier.breaker.allow():
                continue
            t0 = time.perf_counter()
            try:
                got = tier.backend.get_many(missing)
            except Exception as exc:
                self.failed(tier, "get_many", exc)
                continue
            self._done(tier, "get_many", t0)
            for key, entry in got.items():
                if entry.expired():
                    continue
                found[key] = entry
                if index:
                    self._promote(key, entry, self.tiers[:index], level)
                self.bus.emit(Event(ev.HIT, tier=tier.name, model=entry.model, tokens=entry.total_tokens,
                                    cost=entry.cost, key=key, namespace=self.namespace,
                                    extra={"level": level} if level else None))
            missing = [k for k in missing if k not in found]
        if report_misses:
            for key in missing:
                self.bus.emit(Event(ev.MISS, key=key, namespace=self.namespace))
        return found

    def _promote(self, key: str, entry: Entry, tiers: list[Tier], level: str | None = None) -> None:
        entry.share()  # an in-process tier keeps this very object
        for tier in tiers:
            self._set_one(tier, key, entry, promote=True, level=level)

    # -- writes ----------------------------------------------------------------------------

    def _set_one(self, tier: Tier, key: str, entry: Entry, promote: bool = False, level: str | None = None) -> bool:
        ttl = effective_ttl(tier.ttl, entry)
        # Not stored, and said so: an entry whose own expiry has passed, or one larger than the
        # tier's whole byte bound (``max_bytes``; it would evict everything and still not fit).
        # An older value under the key must not stay readable in that tier either.
        max_bytes = getattr(getattr(tier.backend, "options", None), "max_bytes", None)
        skip = "expired" if ttl is not None and ttl <= 0 else \
            "too_large" if isinstance(max_bytes, int) and entry.size > max_bytes else None
        if skip is not None:
            self._safe_delete(tier, key)
            if self.bus:
                self.bus.emit(Event(ev.SKIP_STORE, tier=tier.name, key=key, reason=skip, namespace=self.namespace,
                                    extra={"size": entry.size, "max_bytes": max_bytes} if skip == "too_large" else None))
            return False
        breaker = tier.write_breaker
        if not breaker.allow():  # from here on, a half-open breaker's trial is ours to settle
            return False
        t0 = time.perf_counter()
        try:
            tier.backend.set(key, entry, ttl)
        except Exception as exc:
            self.failed(tier, "set", exc, breaker=breaker)
            return False
        self._done(tier, "set", t0, breaker)
        if self.bus:
            self.bus.emit(Event(ev.STORE, tier=tier.name, key=key, reason="promote" if promote else "write",
                                namespace=self.namespace, extra={"level": level} if level else None))
        return True

    def put(self, key: str, entry: Entry, level: str | None = None) -> int:
        """Write through to every tier; returns how many tiers took it (``level``: see get_many)."""
        return sum(self._set_one(tier, key, entry, level=level) for tier in self.tiers)

    def put_to(self, key: str, entry: Entry, tier_names: Iterable[str]) -> list[str]:
        """Write to the tiers named (an import); returns the names of those that took it."""
        wanted = set(tier_names)
        return [tier.name for tier in self.tiers if tier.name in wanted and self._set_one(tier, key, entry)]

    def _safe_delete(self, tier: Tier, key: str) -> None:
        if not tier.write_breaker.allow():
            return
        try:
            tier.backend.delete(key)
        except Exception as exc:
            self.failed(tier, "delete", exc, breaker=tier.write_breaker)
            return
        tier.write_breaker.success()

    def contains(self, key: str) -> bool:
        """Is ``key`` in any tier? No events, no promotion; a failing tier answers no."""
        for tier in self.tiers:
            if not tier.breaker.allow():
                continue
            try:
                found = tier.backend.get(key) is not None
            except Exception as exc:
                self.failed(tier, "get", exc)
                continue
            tier.breaker.success()
            if found:
                return True
        return False

    def delete(self, key: str) -> None:
        for tier in self.tiers:
            self._safe_delete(tier, key)

    def _removal(self, op: str, tier_name: str | None, remove) -> dict[str, int]:
        """``remove(backend)`` on every tier (or the one named): how many each removed; a tier
        that raises is an error event and is left out of the result."""
        removed = {}
        for tier in self.tiers:
            if tier_name is not None and tier.name != tier_name:
                continue
            try:
                removed[tier.name] = remove(tier.backend)
            except Exception as exc:
                self.failed(tier, op, exc)
        return removed

    def clear(self, prefix: str = "", tier_name: str | None = None) -> dict[str, int]:
        return self._removal("clear", tier_name, lambda backend: backend.clear(prefix))

    def delete_tagged(self, prefix: str, tag: str, tier_name: str | None = None) -> dict[str, int]:
        return self._removal("delete_tagged", tier_name, lambda backend: backend.delete_tagged(prefix, tag))

    def close(self) -> None:
        for tier in self.tiers:
            try:
                tier.backend.close()
            except Exception as exc:
                self.failed(tier, "close", exc)


def _checked(check, entry: Entry) -> str | None:
    try:
        return check(entry)
    except Exception as exc:  # a check that fails on this value refuses it
        return f"the stored value cannot be checked ({describe_error(exc)})"
