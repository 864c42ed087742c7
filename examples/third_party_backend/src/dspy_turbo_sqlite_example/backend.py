"""A persistent cache tier in one SQLite file, using only the standard library.

This is the example a third-party backend copies. The contract it implements is in
``dspy_turbo.plugin.backend``; ``dspy_turbo.testing.CacheBackendSuite`` checks it.

Storage: one table, one row per key::

    entries(key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL)  -- expires_at NULL: never

``value`` is ``self.encode_entry(key, entry)``: the core's versioned wire format, signed
when the user configured ``cache.signing_key``. This file never needs a schema migration
for values: a blob written by an incompatible version, or one that does not verify,
fails ``self.decode_entry`` with ``DecodeError``, and is then deleted and treated as a miss.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from dspy_turbo.plugin.backend import BackendOptions, CacheBackend, DecodeError, Entry, effective_ttl
from dspy_turbo.plugin.units import Duration

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL)",
    # Lets the periodic purge find expired rows without scanning the table.
    "CREATE INDEX IF NOT EXISTS entries_expires_at ON entries (expires_at) WHERE expires_at IS NOT NULL",
)

# SQLite caps the number of ``?`` in one statement (999 before 3.32); stay well below it.
_MAX_PARAMS = 500

# Rows that expire without being read again would stay forever; set() deletes them at
# most this often (seconds), so the cost is one indexed DELETE per interval.
_PURGE_INTERVAL = 60.0


def _default_path() -> str:
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return os.path.expanduser(os.path.join(cache_home, "dspy-turbo", "sqlite-example.db"))


class SQLiteOptions(BackendOptions):
    """Options of the ``sqlite`` tier (plus ``name`` and ``ttl`` from ``BackendOptions``)."""

    path: str = Field(default_factory=_default_path, min_length=1)
    """The database file (``~`` is expanded; a relative path is relative to the working
    directory). Missing parent directories are created."""
    timeout: Duration = Field(default=5.0, gt=0)
    """How long an operation waits for another process's lock (``250ms``, ``5s``). The
    engine also reads ``timeout``: an operation slower than this counts as a failure of
    the tier, towards its circuit breaker."""

    @field_validator("path")
    @classmethod
    def _expand_user(cls, value: str) -> str:
        return os.path.expanduser(value)


_PAGE = 500  # rows read per query by entries()


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``.

    SQLite compares TEXT byte-wise in UTF-8, which orders like Python's code points, so
    ``prefix <= key < bound`` selects exactly the keys starting with ``prefix`` and can use
    the primary-key index. (``LIKE 'prefix%'`` would treat ``%`` and ``_`` in the prefix as
    wildcards.) ``None`` when no bound exists: every key ``>= prefix`` then starts with it.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code <= 0x10FFFF:
            if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be encoded; skip past them
                code = 0xE000
            return "".join(chars) + chr(code)
    return None


class SQLiteBackend(CacheBackend):
    """A cache tier backed by one SQLite database file, shared by threads and processes."""

    name: ClassVar[str] = "sqlite"
    Options: ClassVar[type[SQLiteOptions]] = SQLiteOptions

    def __init__(self, options: SQLiteOptions | None = None):
        super().__init__(options)
        # One connection shared by all threads, serialised by a lock. SQLite executes one
        # statement per connection at a time anyway, and a single connection can be closed
        # from any thread (per-thread connections could not). Other *processes* get their
        # concurrency from WAL mode and the busy timeout.
        self._lock = threading.Lock()
        self._last_purge = 0.0
        # Opened here, not lazily: a bad path or a file that is not a database is a
        # start-up error naming the file, not a stream of error events later.
        self._db: sqlite3.Connection | None = self._connect()

    def _connect(self) -> sqlite3.Connection:
        Path(self.options.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit. Every statement below is a complete change on
        # its own, so there are no transactions to forget to commit.
        db = sqlite3.connect(self.options.path, timeout=self.options.timeout, check_same_thread=False,
                             isolation_level=None)
        try:
            # WAL: readers in other processes are not blocked by a writer. synchronous=NORMAL
            # is safe with WAL; a power cut may lose the last writes, which a cache can afford.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                db.execute(statement)
        except Exception:
            db.close()
            raise
        return db

    def _conn(self) -> sqlite3.Connection:
        # Called with the lock held. Raising is right: the engine turns it into an error event.
        if self._db is None:
            raise RuntimeError(f"the sqlite tier for {self.options.path} is closed")
        return self._db

    # -- reads -------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        with self._lock:
            row = self._conn().execute("SELECT value, expires_at FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        blob, expires_at = row
        now = time.time()
        if expires_at is not None and now >= expires_at:
            with self._lock:
                # The condition keeps a fresh value that another process wrote meanwhile.
                self._conn().execute("DELETE FROM entries WHERE key = ? AND expires_at <= ?", (key, now))
            return None
        return self._decode(key, blob)

    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]:
        wanted = list(dict.fromkeys(keys))
        rows: list[tuple[str, bytes]] = []
        now = time.time()
        # One SELECT ... IN (...) per chunk of keys, rather than one query per key.
        for start in range(0, len(wanted), _MAX_PARAMS):
            chunk = wanted[start:start + _MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows += self._conn().execute(
                    f"SELECT key, value FROM entries WHERE key IN ({marks}) AND (expires_at IS NULL OR expires_at > ?)",
                    (*chunk, now),
                ).fetchall()
        found = {}
        for key, blob in rows:
            entry = self._decode(key, blob)
            if entry is not None:
                found[key] = entry
        return found

    def _decode(self, key: str, blob: bytes) -> Entry | None:
        """The entry in ``blob``, or None after deleting a blob that is not a valid entry."""
        try:
            return self.decode_entry(key, blob)
        except DecodeError as exc:
            with self._lock:
                # Delete only this bad blob, never a good value written since it was read.
                self._conn().execute("DELETE FROM entries WHERE key = ? AND value = ?", (key, blob))
            self.corrupt(key, exc)  # the engine counts it as an error event
            return None

    # -- writes ------------------------------------------------------------------------

    def set(self, key: str, entry: Entry, ttl: float | None = None) -> None:
        # The engine passes the tier's TTL already; direct callers get the configured one.
        # Either way the entry's own expiry is a ceiling.
        ttl = effective_ttl(ttl if ttl is not None else self.options.ttl, entry)
        now = time.time()
        with self._lock:
            db = self._conn()
            if ttl is not None and ttl <= 0:
                # Already expired: storing it would be pointless, keeping an older value wrong.
                db.execute("DELETE FROM entries WHERE key = ?", (key,))
                return
            db.execute(
                "INSERT OR REPLACE INTO entries (key, value, expires_at) VALUES (?, ?, ?)",
                (key, self.encode_entry(key, entry), None if ttl is None else now + ttl),
            )
            if now - self._last_purge >= _PURGE_INTERVAL:
                self._last_purge = now
                db.execute("DELETE FROM entries WHERE expires_at <= ?", (now,))

    def delete(self, key: str) -> None:
        with self._lock:
            self._conn().execute("DELETE FROM entries WHERE key = ?", (key,))

    def keys(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix`` (the base class's ``delete_tagged`` scans these)."""
        upper = _prefix_upper_bound(prefix)
        with self._lock:
            if upper is None:
                rows = self._conn().execute("SELECT key FROM entries WHERE key >= ?", (prefix,)).fetchall()
            else:
                rows = self._conn().execute("SELECT key FROM entries WHERE key >= ? AND key < ?", (prefix, upper)).fetchall()
        return [row[0] for row in rows]

    def entries(self, prefix: str = "") -> Iterator[tuple[str, Entry]]:
        """The live entries under ``prefix``, in key order, a page of rows at a time (bounded
        memory however many there are; the lock is not held between pages)."""
        upper = _prefix_upper_bound(prefix)
        after = None
        while True:
            lower = "key > ?" if after is not None else "key >= ?"
            query = (f"SELECT key, value FROM entries WHERE {lower}" + ("" if upper is None else " AND key < ?")
                     + " AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?")
            params = (after if after is not None else prefix, *(() if upper is None else (upper,)), time.time(), _PAGE)
            with self._lock:
                rows = self._conn().execute(query, params).fetchall()
            for key, blob in rows:
                entry = self._decode(key, blob)
                if entry is not None:
                    yield key, entry
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def clear(self, prefix: str = "") -> int:
        upper = _prefix_upper_bound(prefix)
        with self._lock:
            db = self._conn()
            if upper is None:  # "" or a prefix of U+10FFFF only: every key >= prefix matches
                cursor = db.execute("DELETE FROM entries WHERE key >= ?", (prefix,))
            else:
                cursor = db.execute("DELETE FROM entries WHERE key >= ? AND key < ?", (prefix, upper))
            return cursor.rowcount

    def compact(self) -> tuple[int, int]:
        """Delete the expired rows and give their space back to the file system (``VACUUM``);
        returns ``(rows deleted, bytes the file has now)``. ``dspy-turbo sqlite-compact`` runs it."""
        with self._lock:
            db = self._conn()
            removed = db.execute("DELETE FROM entries WHERE expires_at <= ?", (time.time(),)).rowcount
            db.execute("VACUUM")
        return removed, os.path.getsize(self.options.path)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                # Closing the last connection checkpoints the WAL back into the main file.
                self._db.close()
                self._db = None

    def __repr__(self) -> str:
        return f"<SQLiteBackend path={self.options.path!r}>"
