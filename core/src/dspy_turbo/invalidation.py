"""Invalidation that reaches the in-process tiers of every process.

``turbo.invalidate`` removes entries from the shared tiers (Redis, a shared disk) for
everyone, but each process's memory tier is its own: without this, another worker would
go on serving an invalidated answer from memory until its TTL. With a coordinator that
keeps logs (a redis tier), each invalidation is appended to the namespace's
``invalidate`` log, and every process applies what the others appended to its own
in-process tiers before a cache read, at most every ``interval`` seconds. An invalidated
answer is then served elsewhere for at most ``interval`` plus one read.

A process starting up skips what the log already holds (its memory tier is empty).
Records are JSON, never pickles; a damaged record is skipped and counted. When the log
cannot be reached, reads go on and memory tiers keep what they have: a stale answer at
worst for the tier's TTL, as without a shared tier, never an error.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING

import orjson

from .coordination import CoordinationUnavailable, Coordinator

if TYPE_CHECKING:
    from .tiered import TieredCache

logger = logging.getLogger("dspy_turbo")

LOG = "invalidate"
_READ_BATCH = 1000


class InvalidationFeed:
    def __init__(self, coordinator: Coordinator, cache: TieredCache, interval: float = 0.1):
        self.coordinator = coordinator
        self.cache = cache
        self.interval = interval
        self.origin = uuid.uuid4().hex  # our own records are skipped when read back
        self.after: str | None = None  # None: not at the log's end yet (see _catch_up)
        self._next_sync = 0.0
        self._lock = threading.Lock()
        self.published = self.applied = self.failed = self.bad_records = 0
        self.sync(force=True)

    def publish(self, prefix: str, tag: str | None, tier: str | None) -> None:
        """Tell the other processes to drop what ``prefix`` (and ``tag``) covers from their
        in-process tiers (only the tier named ``tier``, when given)."""
        if not any(t.backend_in_process for t in self.cache.tiers if tier is None or t.name == tier):
            return  # no in-process tier is affected: the shared tiers were cleared for everyone
        try:
            self.coordinator.append(LOG, orjson.dumps({"p": prefix, "g": tag, "t": tier, "o": self.origin}))
            self.published += 1
        except CoordinationUnavailable:
            self.failed += 1  # the tier's error event was already emitted

    def sync(self, force: bool = False) -> int:
        """Apply the invalidations others appended since the last sync; returns how many."""
        now = time.monotonic()
        if not force and now < self._next_sync:
            return 0
        if not self._lock.acquire(blocking=force):
            return 0  # another thread is applying them right now
        try:
            self._next_sync = now + self.interval
            if self.after is None:
                return self._catch_up()
            applied = 0
            while True:
                try:
                    records = self.coordinator.read(LOG, self.after, _READ_BATCH)
                except CoordinationUnavailable:
                    self.failed += 1
                    return applied
                for record_id, record in records:
                    self.after = record_id
                    applied += self._apply(record)
                if len(records) < _READ_BATCH:
                    return applied
        finally:
            self._lock.release()

    def _catch_up(self) -> int:
        """Move to the log's end without applying: what is there predates this process's
        memory. Retried on the next sync while the log cannot be reached."""
        after = "0"
        while True:
            try:
                records = self.coordinator.read(LOG, after, _READ_BATCH)
            except CoordinationUnavailable:
                self.failed += 1
                return 0
            if records:
                after = records[-1][0]
            if len(records) < _READ_BATCH:
                self.after = after
                return 0

    def _apply(self, record: bytes) -> int:
        try:
            op = orjson.loads(record)
            if op.get("o") == self.origin:
                return 0
            prefix, tag, tier = op["p"], op.get("g"), op.get("t")
            if type(prefix) is not str or not prefix or (tag is not None and type(tag) is not str) \
                    or (tier is not None and type(tier) is not str):
                raise ValueError("fields of the wrong type")
        except Exception:  # a foreign or damaged record must not stop the feed
            self.bad_records += 1
            return 0
        for t in self.cache.tiers:
            if t.backend_in_process and (tier is None or t.name == tier):
                try:
                    t.backend.delete_tagged(prefix, tag) if tag is not None else t.backend.clear(prefix)
                except Exception as exc:
                    self.cache.failed(t, "invalidate", exc)
        self.applied += 1
        return 1

    def snapshot(self) -> dict[str, int]:
        return {"published": self.published, "applied": self.applied, "failed": self.failed,
                "bad_records": self.bad_records}
