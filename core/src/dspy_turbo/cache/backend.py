"""The cache backend contract: what a tier must do. Third-party tiers implement this.

A backend stores :class:`~dspy_turbo.cache.entry.Entry` objects under string keys. In-process
tiers may keep the objects; tiers that hold bytes store ``self.encode_entry(key, entry)``
and read back with ``self.decode_entry(key, data)`` (never pickle): the entry's wire bytes,
signed when ``cache.signing_key`` is set (``dspy_turbo.cache.integrity``). The conformance suite
in ``dspy_turbo.testing`` checks every rule below.

Rules:

- ``get`` returns an entry that is the reader's: one ``decode_entry`` made for this
  read, or the very object ``set`` was given (the engine copies those). Never return one
  ``decode_entry`` result twice: the engine hands its value to the caller uncopied.
- ``get`` returns ``None`` for a missing or expired key and for a stored value that cannot
  be decoded (which it also deletes, and reports through ``on_corrupt``); it raises only
  when the backend itself is broken (connection lost, disk gone). The engine turns those raises into error events and a
  circuit breaker, never into an exception in the user's program.
- ``set(key, entry, ttl)`` stores for at most ``ttl`` seconds (``None``: until evicted);
  it never keeps an entry past ``entry.expires_at``.
- ``delete`` of a missing key is not an error. ``clear(prefix)`` removes the keys that
  start with ``prefix``, taken literally (no glob or ``LIKE`` pattern: ``*``, ``?``, ``[``,
  ``%`` and ``_`` are characters like any other), and returns how many it removed.
- A ``set`` is atomic: a concurrent ``get`` of the same key sees the old entry, the new
  one or nothing, never a mix or a part of one; entries of several megabytes included.
- ``get_many`` returns a dict of the keys found; the default loops over ``get``.
- ``delete_tagged(prefix, tag)`` removes the entries under ``prefix`` whose ``entry.tags``
  contain ``tag`` and returns how many; the default scans with ``keys(prefix)``/``get``.
- All methods are safe to call from several threads at once.

Optional: ``__len__`` and a ``bytes_used`` property make ``turbo.stats()`` report the
tier's entries and bytes. ``entries(prefix)`` enumerates what a tier holds, for
``dspy-turbo ls``/``show``/``stats``/``export`` and ``turbo.export()``: it yields
``(key, entry)`` for the live entries whose keys start with ``prefix`` (literally, as
``clear``), lazily and in bounded memory (page through the store, never load it whole),
skipping what does not decode (deleted and reported, as ``get`` does); the order is the
backend's. The default reads ``keys(prefix)`` with ``get``; without either it raises
``NotImplementedError`` (the tier is then left out of listings and exports, with a message). A backend shared by several processes (Redis) may offer a
``coordinator()`` method returning a :class:`~dspy_turbo.coordination.coordinator.Coordinator`; the
first tier that offers one coordinates single-flight and rate limits across processes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import ClassVar

from pydantic import Field

from ..host.components import Component, Options
from ..host.units import TTL, Duration
from .entry import Entry


class BackendOptions(Options):
    """Options every tier understands (a backend's own ``Options`` subclasses this)."""

    name: str | None = None
    """The tier's name in stats and events; defaults to its type."""
    ttl: TTL | None = None
    """How long this tier keeps an entry (``7d``); ``None`` keeps until evicted. 0 is refused
    (a tier that should store nothing is removed from ``cache.tiers``)."""
    timeout: Duration | None = Field(default=None, gt=0)
    """The engine counts a call slower than this (``50ms``) as a failure of the tier, toward
    its circuit breaker. Bounding the wait itself is the backend's job: a backend that can
    should end each call by this deadline, all of it (the redis tier does: connect, send,
    every read); lock or socket timeouts bound only their own part."""


class CacheBackend(Component):
    kind: ClassVar[str] = "cache_backend"
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    on_evict = None
    """Set by the engine: call ``on_evict(key)`` when the backend drops an entry to make room."""
    on_corrupt = None
    """Set by the engine: call ``on_corrupt(key, error)`` when a stored value fails to decode
    (a foreign, truncated or planted value); the engine counts it as an error event."""
    signer = None
    """Set by the engine when ``cache.signing_key`` is configured (a ``dspy_turbo.cache.integrity.Signer``):
    ``encode_entry`` signs and ``decode_entry`` verifies; a backend that stores bytes calls those."""
    in_process: ClassVar[bool] = False
    """True when ``get``/``set`` never wait on I/O (the entries live in this process's
    memory): an event loop may then read and write inline instead of handing the call to
    a thread. Leave False for anything behind a socket, a file or a lock held across I/O."""

    @property
    def tier_name(self) -> str:
        return getattr(self.options, "name", None) or self.name

    def get(self, key: str) -> Entry | None:
        raise NotImplementedError

    def set(self, key: str, entry: Entry, ttl: float | None = None) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def clear(self, prefix: str = "") -> int:
        raise NotImplementedError

    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]:
        found = {}
        for key in keys:
            entry = self.get(key)
            if entry is not None:
                found[key] = entry
        return found

    def delete_tagged(self, prefix: str, tag: str) -> int:
        """Remove entries under ``prefix`` tagged ``tag``. The default needs a ``keys(prefix)``
        method; a backend with a tag index (Redis sets) overrides this."""
        keys = getattr(self, "keys", None)
        if keys is None:
            raise NotImplementedError(f"the {self.name!r} backend cannot invalidate by tag")
        removed = 0
        for key in keys(prefix):
            entry = self.get(key)
            if entry is not None and tag in entry.tags:
                self.delete(key)
                removed += 1
        return removed

    def entries(self, prefix: str = "") -> Iterator[tuple[str, Entry]]:
        """``(key, entry)`` for each live entry under ``prefix`` (see the module docstring).
        The default needs a ``keys(prefix)`` method; a backend that can page through its
        store (SQL, ``SCAN``) overrides this to stay in bounded memory."""
        keys = getattr(self, "keys", None)
        if keys is None:
            raise NotImplementedError(f"the {self.name!r} backend cannot list its entries")
        for key in keys(prefix):
            entry = self.get(key)
            if entry is not None and not entry.expired():
                yield key, entry

    def encode_entry(self, key: str, entry: Entry) -> bytes:
        """The bytes to store for ``entry`` under ``key`` (signed when the engine set a signer)."""
        signer = self.signer
        return entry.to_bytes() if signer is None else signer.sign(key, entry.to_bytes())

    def decode_entry(self, key: str, data: bytes) -> Entry:
        """The entry in ``data``, read from under ``key``. Raises ``DecodeError`` for anything
        that is not one (``IntegrityError`` when a signature is missing or wrong): the
        backend then deletes it, reports it through ``corrupt`` and answers a miss."""
        signer = self.signer
        return Entry.from_bytes(data if signer is None else signer.verify(key, data))

    def corrupt(self, key: str, error: BaseException) -> None:
        """Report an undecodable value (the backend deletes it itself)."""
        if self.on_corrupt is not None:
            self.on_corrupt(key, error)

    def close(self) -> None:
        """Release connections and files; the default has nothing to release."""


def effective_ttl(tier_ttl: float | None, entry: Entry, now: float | None = None) -> float | None:
    """The TTL to store ``entry`` with in a tier: the tier's, never past the entry's own expiry."""
    remaining = entry.remaining_ttl(now if now is not None else time.time())
    if tier_ttl is None:
        return remaining
    if remaining is None:
        return tier_ttl
    return min(tier_ttl, remaining)
