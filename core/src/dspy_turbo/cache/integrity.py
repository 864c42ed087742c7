"""Integrity of entries in shared tiers: an HMAC over each entry and the key it is stored under.

Whoever can write to a shared Redis or to a cache directory can plant a well-formed entry
that every process would then serve. With ``cache.signing_key`` set, byte-oriented tiers
store ``b"DS\\x01" + HMAC-SHA256(key, cache key + entry bytes) + entry bytes``; an entry
whose MAC is missing or wrong is a miss, an error event, and is deleted. The MAC covers
the cache key, so a genuine entry copied under another key (another request, another
namespace) fails too.

What it does not cover: an old genuine entry put back under its own key (it still
expires when its own expiry says), deleting entries, and the coordination data next to
them (leases, rate buckets, the invalidation and semantic-index logs). It does not hide
anything either: entries are readable by whoever can read the tier.
"""

from __future__ import annotations

import hashlib
import hmac

from .codec import DecodeError

MAGIC = b"DS\x01"
_MAC_SIZE = 32
_HEADER = len(MAGIC) + _MAC_SIZE
# Domain separation: the configured secret is never used as an HMAC key as it is.
_CONTEXT = b"dspy-turbo entry signing v1\0"


class IntegrityError(DecodeError):
    """An entry's signature is missing or does not match its bytes and key."""


class Signer:
    """Signs and verifies entry bytes with a secret. Never shows the secret (repr, pickle)."""

    __slots__ = ("_key",)

    def __init__(self, secret: str | bytes):
        if isinstance(secret, str):
            secret = secret.encode()
        if not secret:
            raise ValueError("a signing key must not be empty")
        self._key = hashlib.sha256(_CONTEXT + secret).digest()

    def _mac(self, key: str, blob: bytes) -> bytes:
        name = key.encode()
        # The key's length first: no (key, blob) pair can be re-split into another.
        return hmac.digest(self._key, len(name).to_bytes(4, "big") + name + blob, "sha256")

    def sign(self, key: str, blob: bytes) -> bytes:
        """What to store for the entry bytes ``blob`` under ``key``."""
        return MAGIC + self._mac(key, blob) + blob

    def verify(self, key: str, data: bytes) -> bytes:
        """The entry bytes in ``data`` read from under ``key``; ``IntegrityError`` if not signed
        with this secret for this key."""
        if type(data) is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise IntegrityError(f"expected signed bytes, got {type(data).__name__}")
            data = bytes(data)
        if not data.startswith(MAGIC):
            raise IntegrityError("the entry is not signed (cache.signing_key is set)")
        blob = data[_HEADER:]
        if len(data) < _HEADER or not hmac.compare_digest(data[len(MAGIC):_HEADER], self._mac(key, blob)):
            raise IntegrityError("the entry's signature does not verify (another key, another cache key, or altered)")
        return blob

    def __repr__(self) -> str:
        return "<Signer key=**********>"

    def __reduce__(self):
        raise TypeError("a Signer holds a secret and is not pickled")
