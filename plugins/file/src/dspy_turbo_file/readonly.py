"""A diskcache directory opened for reading only: what the file tier serves from when it
cannot write (a read-only mount, a directory it may not write, a full disk).

diskcache cannot open a directory it cannot write: opening writes its settings. This reads
the same SQLite databases (``cache.db``, one per shard) with SQLite's read-only mode, and
when even that needs a write (a WAL database whose ``-shm`` file is missing or cannot grow)
as an immutable file: a snapshot of what the database file holds, without locking, so
entries written by another process after the snapshot may be missed (a miss, never a wrong
entry: rows are read whole, and signed entries name their key). Writes raise
``OSError(EROFS)``; the file tier then tries a writable open again on its write breaker's
trials.
"""

from __future__ import annotations

import errno
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import quote

_SELECT = ("SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
           " AND (expire_time IS NULL OR expire_time > ?)")


def _connect(path: Path) -> sqlite3.Connection:
    """``path`` opened read-only; raises ``sqlite3.Error`` (or ``OSError``) when it cannot be."""
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no cache database", str(path))
    uri = "file:" + quote(str(path.resolve()))
    last: sqlite3.Error | None = None
    for mode in ("mode=ro", "immutable=1"):
        db = sqlite3.connect(f"{uri}?{mode}", uri=True, check_same_thread=False)
        try:
            db.execute("SELECT COUNT(*) FROM Settings").fetchone()  # it opens lazily: make it read now
            return db
        except sqlite3.Error as exc:
            db.close()
            last = exc
    raise last  # type: ignore[misc]


class _Shard:
    def __init__(self, directory: Path, disk_class):
        self.db = _connect(directory / "cache.db")
        self.lock = threading.Lock()
        settings = dict(self.db.execute("SELECT key, value FROM Settings").fetchall())
        self.disk = disk_class(str(directory), min_file_size=settings.get("disk_min_file_size", 32768),
                               pickle_protocol=settings.get("disk_pickle_protocol", 5))

    def sql(self, query: str, params=()) -> list:
        with self.lock:
            return self.db.execute(query, params).fetchall()


class ReadOnlyCache:
    """The parts of ``diskcache.Cache`` / ``FanoutCache`` the file tier reads through."""

    read_only = True

    def __init__(self, directory: Path, shards: int, disk_class):
        self._directory = directory
        self._shards: list[_Shard] = []
        try:
            if shards == 1:
                self._shards.append(_Shard(directory, disk_class))
            else:  # FanoutCache's layout: 000/cache.db, 001/cache.db, ...
                self._shards += [_Shard(directory / f"{n:03d}", disk_class) for n in range(shards)]
        except BaseException:
            self.close()
            raise

    def _shard(self, key: str) -> _Shard:
        shards = self._shards
        return shards[0] if len(shards) == 1 else shards[shards[0].disk.hash(key) % len(shards)]

    def get(self, key: str) -> bytes | None:
        shard = self._shard(key)
        rows = shard.sql(_SELECT, (key, time.time()))
        if not rows:
            return None
        mode, filename, value = rows[0]
        try:
            return shard.disk.fetch(mode, filename, value, False)
        except OSError:  # its file is gone: a miss, as in Cache.get
            return None

    def keys(self) -> list[tuple[object, int]]:
        return [row for shard in self._shards for row in shard.sql("SELECT key, raw FROM Cache")]

    def _refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, f"the cache directory {self._directory} is open read-only (it cannot be written)")

    set = delete = clear = expire = _refuse

    def volume(self) -> int:
        total = 0
        for shard in self._shards:
            (pages,), = shard.sql("PRAGMA page_count")
            (size,), = shard.sql("PRAGMA page_size")
            row = shard.sql("SELECT value FROM Settings WHERE key = 'size'")
            total += pages * size + (row[0][0] if row else 0)
        return total

    def __len__(self) -> int:
        return sum((shard.sql("SELECT value FROM Settings WHERE key = 'count'") or [(0,)])[0][0] for shard in self._shards)

    def close(self) -> None:
        for shard in self._shards:
            shard.db.close()
        self._shards = []
