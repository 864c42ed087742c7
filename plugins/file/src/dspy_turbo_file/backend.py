"""The ``file`` tier: entries on local disk in a diskcache directory (SQLite + files).

Several processes and threads may read and write one directory at once (SQLite's locking;
each write is one transaction). Values are dspy-turbo entry bytes, never pickles: the
:class:`BytesOnlyDisk` below refuses to unpickle anything found in the directory, so a
planted or foreign row is a miss, reported and deleted.

A directory that cannot be opened (read-only, missing permissions) or a full disk makes
the tier raise on use; the engine turns that into error events and its circuit breaker,
and the program goes on with the other tiers.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import ClassVar, Literal

import diskcache
from pydantic import Field

from dspy_turbo import BackendOptions, CacheBackend, DecodeError, Entry
from dspy_turbo.backend import effective_ttl
from dspy_turbo.cache_dir import cache_dir as default_directory
from dspy_turbo.units import ByteSize, Duration

# diskcache's eviction policies by the names users know them by.
_MODE_RAW = diskcache.core.MODE_RAW
_EVICTION = diskcache.core.EVICTION_POLICY
_POLICIES = {"lrs": "least-recently-stored", "lru": "least-recently-used", "lfu": "least-frequently-used", "none": "none"}
# The one query diskcache's own ``Cache.get`` makes when a read writes nothing (no lru/lfu
# bookkeeping, no statistics), against its ``Cache`` table (private to diskcache 5): a hit through
# ``Cache.get`` spends as many instructions around this query as in it.
_SELECT = ("SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
           " AND (expire_time IS NULL OR expire_time > ?)")


class FileOptions(BackendOptions):
    directory: str | None = None
    """Where the cache lives; default: ``$DSPY_TURBO_CACHE_DIR`` or ``~/.cache/dspy-turbo``."""
    max_bytes: ByteSize = Field(default=1024**3, gt=0)
    """Size bound of the directory (``10GB``); past it, entries are evicted (``eviction``)."""
    eviction: Literal["lrs", "lru", "lfu", "none"] = "lrs"
    """Which entries go first: least recently stored (default: a read costs no write),
    least recently used or least frequently used (each read also writes), or none."""
    shards: int = Field(default=1, ge=1, le=64)
    """SQLite databases to spread writes over; more shards, less lock contention between
    many writing processes."""
    lock_timeout: Duration = Field(default=2.0, gt=0)
    """How long a write waits for another process's write lock before it fails."""


class BytesOnlyDisk(diskcache.Disk):
    """A diskcache ``Disk`` that stores and returns bytes only and never unpickles."""

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if not isinstance(value, bytes):
            raise TypeError(f"the file tier stores entry bytes, not {type(value).__name__}")
        return super().store(value, read, key=key)

    def fetch(self, mode, filename, value, read):
        if mode == _MODE_RAW and type(value) is bytes:  # every entry below min_file_size: the hit path
            return value
        if mode == diskcache.core.MODE_PICKLE:
            raise DecodeError("a pickled value is in the cache directory; refused (dspy-turbo never unpickles)")
        return super().fetch(mode, filename, value, read)

    def get(self, key, raw):
        if not raw:
            raise DecodeError("a pickled key is in the cache directory; refused")
        return super().get(key, raw)


class FileBackend(CacheBackend):
    name: ClassVar[str] = "file"
    Options: ClassVar[type[FileOptions]] = FileOptions

    def __init__(self, options: FileOptions | None = None):
        super().__init__(options)
        self.directory = Path(self.options.directory).expanduser() if self.options.directory else default_directory()
        self._cache: diskcache.Cache | diskcache.FanoutCache | None = None
        self._direct = False  # reads may run _SELECT themselves (see _open)
        self._open_lock = threading.Lock()
        try:
            self._open()
        except Exception:
            pass  # unavailable for now: every call raises, so the engine reports it and trips the breaker

    def _store(self):
        # `is None`, never truthiness: diskcache's __len__ is an SQL query
        cache = self._cache
        return cache if cache is not None else self._open()

    def _open(self):
        if self._cache is not None:
            return self._cache
        with self._open_lock:
            if self._cache is None:
                settings = {"disk": BytesOnlyDisk, "size_limit": int(self.options.max_bytes),
                            "eviction_policy": _POLICIES[self.options.eviction], "timeout": float(self.options.lock_timeout)}
                if self.options.shards > 1:
                    self._cache = diskcache.FanoutCache(str(self.directory), shards=self.options.shards, **settings)
                else:
                    cache = diskcache.Cache(str(self.directory), **settings)
                    # Only where Cache.get itself is that one query (its own test for its fast
                    # path); statistics switched on, lru/lfu or shards read through Cache.get.
                    self._direct = not cache.statistics and _EVICTION[cache.eviction_policy]["get"] is None
                    self._cache = cache
        return self._cache

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        cache = self._cache
        if cache is None:
            cache = self._open()
        try:
            if self._direct:
                row = cache._sql(_SELECT, (key, time.time())).fetchone()
                if row is None:
                    return None
                mode, filename, blob = row
                if mode != _MODE_RAW or type(blob) is not bytes:  # a value in its own file, a pickle
                    try:
                        blob = cache._disk.fetch(mode, filename, blob, False)
                    except OSError:  # its file was deleted under us: a miss, as in Cache.get
                        return None
            else:
                blob = cache.get(key)
        except DecodeError as exc:
            return self._corrupt(key, exc)
        if blob is None:
            return None
        try:
            return Entry.from_bytes(blob)
        except DecodeError as exc:
            return self._corrupt(key, exc)

    def _corrupt(self, key: str, error: BaseException) -> None:
        try:
            self._open().delete(key)
        finally:
            self.corrupt(key, error)
        return None

    # -- writes --------------------------------------------------------------------------

    def set(self, key: str, entry: Entry, ttl: float | None = None) -> None:
        ttl = effective_ttl(ttl if ttl is not None else self.options.ttl, entry)
        cache = self._store()
        if ttl is not None and ttl <= 0:
            cache.delete(key)  # already expired: an older value must not stay readable either
            return
        # diskcache raises Timeout (Cache) or returns False (FanoutCache) when the lock wait runs out
        if cache.set(key, entry.to_bytes(), expire=ttl) is False:
            raise TimeoutError(f"the file tier's write lock was busy for more than {self.options.lock_timeout:g}s")

    def delete(self, key: str) -> None:
        self._store().delete(key)

    def keys(self, prefix: str = "") -> list[str]:
        """Our keys under ``prefix``, read as raw rows: a foreign (pickled) key in the directory
        is passed over, never unpickled, and does not stop the listing (invalidation)."""
        cache = self._store()
        found = []
        for shard in getattr(cache, "_shards", None) or (cache,):
            for key, raw in shard._sql("SELECT key, raw FROM Cache").fetchall():
                if raw and isinstance(key, str) and key.startswith(prefix):
                    found.append(key)
        return found

    def clear(self, prefix: str = "") -> int:
        cache = self._store()
        if not prefix:
            return cache.clear()
        removed = 0
        for key in self.keys(prefix):
            removed += bool(cache.delete(key))
        return removed

    def expire(self) -> int:
        """Remove expired entries now (diskcache otherwise removes them lazily)."""
        return self._store().expire(time.time())

    # -- stats and lifecycle ---------------------------------------------------------------

    @property
    def bytes_used(self) -> int:
        return self._store().volume()

    def __len__(self) -> int:
        return len(self._store())

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
