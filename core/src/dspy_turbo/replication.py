"""Keeping every process's similarity index in step through the shared coordinator's log.

Each process keeps its own FAISS replica (searching it costs no round trip). Every change
a process makes (add, remove, clear) is appended to one log per namespace on the shared
tier (a Redis stream); before a search, a process applies what the others appended since
it last looked, at most every ``interval`` seconds. A new process replays the log from the
start, so it begins with what the others indexed (the log keeps the latest ``log_max``
changes). Records are JSON, never pickles; a record that does not parse is skipped and
counted.

When the log cannot be reached (the tier's breaker is open), changes stay local and
searches go on with what this replica has: a miss at worst, never an error.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from typing import Any

import numpy as np
import orjson

from .coordination import CoordinationUnavailable, Coordinator

_READ_BATCH = 1000


def supports_logs(coordinator: Coordinator) -> bool:
    return coordinator.shared and getattr(coordinator, "supports_logs", False)


class IndexReplication:
    def __init__(self, coordinator: Coordinator, index: Any, log: str = "semantic", interval: float = 0.1):
        self.coordinator = coordinator
        self.index = index
        self.log = log
        self.interval = interval
        self.origin = uuid.uuid4().hex  # our own records are skipped when read back
        self.after = "0"
        self._next_sync = 0.0
        self._sync_lock = threading.Lock()
        self.published = self.applied = self.failed = self.bad_records = 0

    # -- writing ---------------------------------------------------------------------------

    def published_add(self, scope: str, item_id: int, vector: np.ndarray, meta: dict[str, Any]) -> None:
        row = np.asarray(vector, dtype="float32").reshape(-1)
        self._publish({"op": "add", "scope": scope, "id": int(item_id),
                       "vector": base64.b64encode(row.tobytes()).decode(), "meta": meta})

    def published_remove(self, item_id: int) -> None:
        self._publish({"op": "remove", "id": int(item_id)})

    def published_clear(self) -> None:
        self._publish({"op": "clear"})

    def _publish(self, op: dict[str, Any]) -> None:
        try:
            self.coordinator.append(self.log, orjson.dumps({**op, "o": self.origin}))
            self.published += 1
        except CoordinationUnavailable:
            self.failed += 1  # stays local; the tier's error event was already emitted

    # -- reading ---------------------------------------------------------------------------

    def sync(self, force: bool = False) -> int:
        """Apply the other processes' changes appended since the last sync; returns how many."""
        now = time.monotonic()
        if not force and now < self._next_sync:
            return 0
        if not self._sync_lock.acquire(blocking=force):
            return 0  # another thread is syncing right now: search with what we have
        try:
            self._next_sync = now + self.interval
            applied = 0
            while True:
                try:
                    records = self.coordinator.read(self.log, self.after, _READ_BATCH)
                except CoordinationUnavailable:
                    self.failed += 1
                    return applied
                for record_id, record in records:
                    self.after = record_id
                    applied += self._apply(record)
                if len(records) < _READ_BATCH:
                    return applied
        finally:
            self._sync_lock.release()

    def _apply(self, record: bytes) -> int:
        try:
            op = orjson.loads(record)
            if op.get("o") == self.origin:
                return 0
            kind = op["op"]
            if kind == "add":
                vector = np.frombuffer(base64.b64decode(op["vector"]), dtype="float32")
                self.index.add(op["scope"], int(op["id"]), vector, dict(op.get("meta") or {}))
            elif kind == "remove":
                self.index.remove(int(op["id"]))
            elif kind == "clear":
                self.index.clear()
            else:
                raise ValueError(f"unknown operation {kind!r}")
        except Exception:  # a foreign or damaged record must not stop the replica
            self.bad_records += 1
            return 0
        self.applied += 1
        return 1

    def snapshot(self) -> dict[str, int]:
        return {"published": self.published, "applied": self.applied, "failed": self.failed,
                "bad_records": self.bad_records}
