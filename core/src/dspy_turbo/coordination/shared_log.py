"""Following one of the coordinator's shared logs: publish records, apply the others'.

The base of what keeps processes in step through a shared tier (a Redis stream per log
and namespace): the semantic index replicas (``replication.py``) and invalidations of
memory tiers (``invalidation.py``). Records are JSON carrying the publisher's origin, so
a process skips its own when it reads them back; a record that does not parse or apply is
skipped and counted, never raised. A sync runs at most every ``interval`` seconds and by
one thread at a time; the others go on without waiting. When the log cannot be reached,
publishing and syncing count a failure and return.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import orjson

from .coordinator import CoordinationUnavailable, Coordinator

_READ_BATCH = 1000


def supports_logs(coordinator: Coordinator) -> bool:
    return coordinator.shared and getattr(coordinator, "supports_logs", False)


class SharedLog:
    """Subclasses implement ``apply(record)`` for a record of another process."""

    def __init__(self, coordinator: Coordinator, log: str, interval: float = 0.1, from_start: bool = True):
        self.coordinator = coordinator
        self.log = log
        self.interval = interval
        self.origin = uuid.uuid4().hex
        # from_start: replay what the log holds; else begin at its end (None until reached)
        self.after: str | None = "0" if from_start else None
        self._next_sync = 0.0
        self._sync_lock = threading.Lock()
        self.published = self.applied = self.failed = self.bad_records = 0

    def apply(self, record: dict[str, Any]) -> None:  # pragma: no cover - subclasses implement it
        raise NotImplementedError

    def publish(self, record: dict[str, Any]) -> None:
        try:
            self.coordinator.append(self.log, orjson.dumps({**record, "o": self.origin}))
            self.published += 1
        except CoordinationUnavailable:
            self.failed += 1  # stays local; the tier's error event was already emitted

    def sync(self, force: bool = False) -> int:
        """Apply the other processes' records appended since the last sync; returns how many."""
        now = time.monotonic()
        if not force and now < self._next_sync:
            return 0
        if not self._sync_lock.acquire(blocking=force):
            return 0  # another thread is syncing right now: go on with what we have
        try:
            self._next_sync = now + self.interval
            skipping = self.after is None  # moving to the end: what is there predates us
            after, applied = self.after or "0", 0
            while True:
                try:
                    records = self.coordinator.read(self.log, after, _READ_BATCH)
                except CoordinationUnavailable:
                    self.failed += 1
                    return applied
                for record_id, record in records:
                    after = record_id
                    if not skipping:
                        self.after = after
                        applied += self._apply(record)
                if len(records) < _READ_BATCH:
                    self.after = after
                    return applied
        finally:
            self._sync_lock.release()

    def _apply(self, record: bytes) -> int:
        try:
            op = orjson.loads(record)
            if op.get("o") == self.origin:
                return 0
            self.apply(op)
        except Exception:  # a foreign or damaged record must not stop the follower
            self.bad_records += 1
            return 0
        self.applied += 1
        return 1

    def snapshot(self) -> dict[str, int]:
        return {"published": self.published, "applied": self.applied, "failed": self.failed,
                "bad_records": self.bad_records}
