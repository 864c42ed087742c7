"""The ``memory`` tier: an in-process LRU bounded by bytes and/or entries, with TTL.

It keeps decoded entries, so a hit costs a dict lookup and the codec's cheap copy, not a
decode. Sizes are the encoded entry size (what the entry would cost in Redis or on disk),
a stable measure that does not depend on Python object overheads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import ClassVar

from pydantic import Field

from ..host.units import ByteSize
from .backend import BackendOptions, CacheBackend, effective_ttl
from .entry import Entry


class MemoryOptions(BackendOptions):
    max_bytes: ByteSize | None = Field(default=256 * 1024**2, gt=0)
    """Upper bound of the encoded size of all entries (``256MB``); ``null`` for no byte bound.
    An entry larger than this is not stored here (a ``skip_store`` event, reason ``too_large``;
    not counted as a store) and an older value under its key is dropped."""
    max_entries: int | None = Field(default=None, gt=0)
    """Upper bound of the number of entries; ``null`` for no count bound."""


class MemoryBackend(CacheBackend):
    name: ClassVar[str] = "memory"
    in_process: ClassVar[bool] = True  # a dict behind a lock held for microseconds: no I/O to wait on
    Options: ClassVar[type[MemoryOptions]] = MemoryOptions

    def __init__(self, options: MemoryOptions | None = None):
        super().__init__(options)
        # key -> (entry, deadline or None, size)
        self._data: OrderedDict[str, tuple[Entry, float | None, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self.evictions = 0

    def get(self, key: str) -> Entry | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            deadline = item[1]
            if deadline is not None and time.time() >= deadline:
                self._remove(key)
                return None
            self._data.move_to_end(key)
            return item[0]

    def set(self, key: str, entry: Entry, ttl: float | None = None) -> None:
        ttl = effective_ttl(ttl if ttl is not None else self.options.ttl, entry)
        size = entry.size
        max_bytes = self.options.max_bytes
        if (ttl is not None and ttl <= 0) or (max_bytes is not None and size > max_bytes):
            # Already expired, or would evict everything else and still not fit: not stored,
            # and an older value under this key must not stay readable either.
            self.delete(key)
            return
        deadline = time.time() + ttl if ttl is not None else None
        with self._lock:
            if key in self._data:
                self._remove(key)
            self._data[key] = (entry, deadline, size)
            self._bytes += size
            evicted = self._evict()
        if evicted and self.on_evict is not None:
            for old in evicted:
                self.on_evict(old)

    def _remove(self, key: str) -> None:
        _, _, size = self._data.pop(key)
        self._bytes -= size

    def _evict(self) -> list[str]:
        max_bytes, max_entries = self.options.max_bytes, self.options.max_entries
        evicted = []
        while self._data and (
            (max_bytes is not None and self._bytes > max_bytes) or (max_entries is not None and len(self._data) > max_entries)
        ):
            old, (_, _, size) = self._data.popitem(last=False)
            self._bytes -= size
            evicted.append(old)
        self.evictions += len(evicted)
        return evicted

    def delete(self, key: str) -> None:
        with self._lock:
            if key in self._data:
                self._remove(key)

    def clear(self, prefix: str = "") -> int:
        with self._lock:
            doomed = [k for k in self._data if k.startswith(prefix)]
            for key in doomed:
                self._remove(key)
            return len(doomed)

    def keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            return [k for k in self._data if k.startswith(prefix)]

    def entries(self, prefix: str = "") -> Iterator[tuple[str, Entry]]:
        """The live entries under ``prefix``, oldest use first; reading them is no use (the
        LRU order stays). The snapshot holds references only: the entries are here already."""
        with self._lock:
            items = [(k, entry, deadline) for k, (entry, deadline, _) in self._data.items() if k.startswith(prefix)]
        now = time.time()
        for key, entry, deadline in items:
            if (deadline is None or now < deadline) and not entry.expired(now):
                yield key, entry

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)
