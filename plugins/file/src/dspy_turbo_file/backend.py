"""The ``file`` tier: entries on local disk in a diskcache directory (SQLite + files).

Several processes and threads may read and write one directory at once (SQLite's locking;
each write is one transaction). Values are dspy-turbo entry bytes, never pickles: the
:class:`BytesOnlyDisk` below refuses to unpickle anything found in the directory, and
never opens or deletes a file that is not one of diskcache's own value files inside the
directory (a row naming ``../x``, an absolute path or a symlink out), so a planted or
foreign row is a miss, reported and deleted, and touches nothing else.

A directory that can be read but not written (a read-only mount, no write permission, a
full disk: opening diskcache writes its settings) is opened read-only (``readonly.py``):
what it holds is still served, writes fail (error events, the write breaker) and are
tried again on the breaker's trials. One that cannot be read at all makes the tier raise
on use; the engine turns that into error events and its circuit breaker, and the program
goes on with the other tiers. A failed open leaves nothing open behind it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import diskcache
from pydantic import Field

from dspy_turbo.plugin.backend import BackendOptions, CacheBackend, DecodeError, Entry, effective_ttl
from dspy_turbo.plugin.units import ByteSize, Duration
from dspy_turbo.plugin.units import cache_dir as default_directory

from .readonly import ReadOnlyCache

# diskcache's eviction policies by the names users know them by.
_MODE_RAW = diskcache.core.MODE_RAW
_EVICTION = diskcache.core.EVICTION_POLICY
_POLICIES = {"lrs": "least-recently-stored", "lru": "least-recently-used", "lfu": "least-frequently-used", "none": "none"}
# The one query diskcache's own ``Cache.get`` makes when a read writes nothing (no lru/lfu
# bookkeeping, no statistics), against its ``Cache`` table (private to diskcache 5): a hit through
# ``Cache.get`` spends as many instructions around this query as in it.
_SELECT = ("SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
           " AND (expire_time IS NULL OR expire_time > ?)")


# One page of ``entries``: our (raw, text) keys after a rowid, under a literal prefix.
_PAGE = ("SELECT rowid, key FROM Cache WHERE rowid > ? AND raw = 1 AND typeof(key) = 'text'"
         " AND substr(key, 1, ?) = ? ORDER BY rowid LIMIT ?")
_PAGE_SIZE = 500


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


# The names diskcache 5 gives value files (Disk.filename): two levels of hex directories.
_VALUE_FILE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{28}\.val")


class BytesOnlyDisk(diskcache.Disk):
    """A diskcache ``Disk`` that stores and returns bytes only, never unpickles, and never
    reads, writes or removes a file outside its directory, whatever a row names."""

    def __init__(self, directory, **kwargs):
        super().__init__(directory, **kwargs)
        self._real_directory = os.path.realpath(directory)

    def _inside(self, filename) -> str | None:
        """The full path of a value file of ours, or None: not diskcache's name for one, or a
        path that leaves the directory (``..``, absolute, a symlinked file or directory)."""
        if type(filename) is not str or not _VALUE_FILE.fullmatch(filename):
            return None
        full = os.path.join(self._directory, filename)
        return full if os.path.realpath(full) == os.path.join(self._real_directory, filename) else None

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if not isinstance(value, bytes):
            raise TypeError(f"the file tier stores entry bytes, not {type(value).__name__}")
        return super().store(value, read, key=key)

    def filename(self, key=diskcache.core.UNKNOWN, value=diskcache.core.UNKNOWN):
        filename, full_path = super().filename(key, value)
        if self._inside(filename) is None:  # a planted symlink where one of its directories goes
            raise OSError(f"a value file's directory in {self._directory} leads out of it; not written")
        return filename, full_path

    def fetch(self, mode, filename, value, read):
        if mode == _MODE_RAW and type(value) is bytes:  # every entry below min_file_size: the hit path
            return value
        if mode == diskcache.core.MODE_PICKLE:
            raise DecodeError("a pickled value is in the cache directory; refused (dspy-turbo never unpickles)")
        if mode != _MODE_RAW and self._inside(filename) is None:
            raise DecodeError("a cache row names a file outside the cache directory; refused")
        return super().fetch(mode, filename, value, read)

    def remove(self, file_path):
        # diskcache removes a row's file (and its emptied directories) on delete, overwrite,
        # eviction and expiry: only ever one of ours, inside the directory.
        if self._inside(file_path) is not None:
            super().remove(file_path)

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
        self._cache: diskcache.Cache | diskcache.FanoutCache | ReadOnlyCache | None = None
        self._direct = False  # reads may run _SELECT themselves (see _open)
        self.read_only = False
        """Opened read-only: the directory could not be written when it was opened."""
        self._open_lock = threading.Lock()
        try:
            self._open()
        except Exception:
            pass  # unavailable for now: every call raises, so the engine reports it and trips the breaker

    def _store(self):
        """The cache to write to; opened writable when it is read-only (raises while it cannot be)."""
        # `is None`, never truthiness: diskcache's __len__ is an SQL query
        cache = self._cache
        return cache if cache is not None and not self.read_only else self._open(write=True)

    def _open(self, write: bool = False):
        if self._cache is not None and not (write and self.read_only):
            return self._cache
        with self._open_lock:
            if self._cache is not None and not (write and self.read_only):
                return self._cache
            try:
                cache = self._open_writable()
            except Exception:
                if write or self._cache is not None:
                    raise  # a write while read-only: still impossible
                try:
                    self._cache = ReadOnlyCache(self.directory, self.options.shards, BytesOnlyDisk)
                except Exception:
                    pass
                else:
                    self.read_only, self._direct = True, False
                    return self._cache
                raise  # why it could not be opened writable says more than why not read-only
            old, self._cache, self.read_only = self._cache, cache, False
            if old is not None:
                old.close()
            if self.options.shards == 1:
                # Only where Cache.get itself is that one query (its own test for its fast
                # path); statistics switched on, lru/lfu or shards read through Cache.get.
                self._direct = not cache.statistics and _EVICTION[cache.eviction_policy]["get"] is None
        return self._cache

    def _open_writable(self):
        settings = {"disk": BytesOnlyDisk, "size_limit": int(self.options.max_bytes),
                    "eviction_policy": _POLICIES[self.options.eviction], "timeout": float(self.options.lock_timeout)}
        if self.options.shards == 1:
            return _opened(diskcache.Cache, str(self.directory), **settings)
        return _opened_fanout(str(self.directory), self.options.shards, **settings)

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
            return Entry.from_bytes(blob) if self.signer is None else self.decode_entry(key, blob)
        except DecodeError as exc:
            return self._corrupt(key, exc)

    def _corrupt(self, key: str, error: BaseException) -> None:
        try:
            if not self.read_only:  # else it stays until a writer opens the directory
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
        if cache.set(key, self.encode_entry(key, entry), expire=ttl) is False:
            raise TimeoutError(f"the file tier's write lock was busy for more than {self.options.lock_timeout:g}s")

    def delete(self, key: str) -> None:
        self._store().delete(key)

    def keys(self, prefix: str = "") -> list[str]:
        """Our keys under ``prefix``, read as raw rows: a foreign (pickled) key in the directory
        is passed over, never unpickled, and does not stop the listing (invalidation)."""
        cache = self._open()
        if self.read_only:
            rows = cache.keys()
        else:
            rows = [row for shard in getattr(cache, "_shards", None) or (cache,)
                    for row in shard._sql("SELECT key, raw FROM Cache").fetchall()]
        return [key for key, raw in rows if raw and isinstance(key, str) and key.startswith(prefix)]

    def entries(self, prefix: str = "") -> Iterator[tuple[str, Entry]]:
        """The live entries under ``prefix``, shard by shard in pages of rows (bounded memory
        for any size of directory); the prefix is compared with ``substr``, literally."""
        cache = self._open()
        if self.read_only:
            queries = [shard.sql for shard in cache._shards]
        else:
            queries = [lambda q, p, shard=shard: shard._sql(q, p).fetchall()
                       for shard in getattr(cache, "_shards", None) or (cache,)]
        for query in queries:
            last = 0
            while True:
                rows = query(_PAGE, (last, len(prefix), prefix, _PAGE_SIZE))
                for _rowid, key in rows:
                    entry = self.get(key)
                    if entry is not None and not entry.expired():
                        yield key, entry
                if len(rows) < _PAGE_SIZE:
                    break
                last = rows[-1][0]

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
        return self._open().volume()

    def __len__(self) -> int:
        return len(self._open())

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()


def _close_quietly(cache) -> None:
    try:
        cache.close()
    except Exception:  # half built: it may hold nothing yet
        pass


def _opened(cls, directory: str, **settings):
    """``cls(directory, **settings)``, or its exception with nothing left open: a Cache that
    fails half-way through opening (a read-only or full disk) keeps its SQLite connection
    until the garbage collector finds it, one more file descriptor per failed attempt."""
    cache = cls.__new__(cls)
    try:
        cache.__init__(directory, **settings)
    except BaseException:
        _close_quietly(cache)
        raise
    return cache


def _opened_fanout(directory: str, shards: int, **settings):
    """A ``FanoutCache`` whose shards are opened by ``_opened``: one that fails closes the
    others. (FanoutCache's own constructor opens them in a generator: a failure drops them.)"""
    size_limit = settings.pop("size_limit") / shards
    opened = []
    try:
        for n in range(shards):
            opened.append(_opened(diskcache.Cache, os.path.join(directory, f"{n:03d}"), size_limit=size_limit, **settings))
    except BaseException:
        for cache in opened:
            cache.close()
        raise
    # What FanoutCache.__init__ (diskcache 5) sets, with these shards.
    fanout = diskcache.FanoutCache.__new__(diskcache.FanoutCache)
    fanout._count, fanout._directory, fanout._disk = shards, directory, settings["disk"]
    fanout._shards = tuple(opened)
    fanout._hash = opened[0].disk.hash
    fanout._caches, fanout._deques, fanout._indexes = {}, {}, {}
    return fanout
