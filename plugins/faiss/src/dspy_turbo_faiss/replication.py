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
from typing import Any

import numpy as np

from dspy_turbo.plugin.coordination import Coordinator, SharedLog, supports_logs

__all__ = ["IndexReplication", "supports_logs"]


class IndexReplication(SharedLog):
    def __init__(self, coordinator: Coordinator, index: Any, log: str = "semantic", interval: float = 0.1):
        super().__init__(coordinator, log, interval, from_start=True)
        self.index = index

    # -- writing ---------------------------------------------------------------------------

    def published_add(self, scope: str, item_id: int, vector: np.ndarray, meta: dict[str, Any]) -> None:
        row = np.asarray(vector, dtype="float32").reshape(-1)
        self.publish({"op": "add", "scope": scope, "id": int(item_id),
                      "vector": base64.b64encode(row.tobytes()).decode(), "meta": meta})

    def published_remove(self, item_id: int) -> None:
        self.publish({"op": "remove", "id": int(item_id)})

    def published_clear(self) -> None:
        self.publish({"op": "clear"})

    # -- reading ---------------------------------------------------------------------------

    def apply(self, op: dict[str, Any]) -> None:
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
