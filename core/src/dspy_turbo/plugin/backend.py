"""The cache backend contract: what a tier (``cache.tiers[]``) must do.

Subclass :class:`CacheBackend` (options subclass :class:`BackendOptions`) and register the
class through ``dspy_turbo_cache_backends``. A backend stores :class:`Entry` objects under
string keys; one that holds bytes stores ``self.encode_entry(key, entry)`` and reads back
with ``self.decode_entry(key, data)`` (a versioned envelope, never pickle; signed with
:class:`Signer` when ``cache.signing_key`` is set). A value that does not decode raises
:class:`DecodeError` (:class:`IntegrityError` for a bad signature): the backend deletes it,
reports it through ``self.corrupt(key, error)`` and answers a miss. :func:`effective_ttl`
is the TTL to store an entry with. The rules, one by one, are in ``CacheBackend``'s module
(``dspy_turbo.cache.backend``) and checked by ``dspy_turbo.testing.CacheBackendSuite``.
"""

from __future__ import annotations

from ..cache.backend import BackendOptions, CacheBackend, effective_ttl
from ..cache.codec import DecodeError
from ..cache.entry import Entry
from ..cache.integrity import IntegrityError, Signer

__all__ = ["BackendOptions", "CacheBackend", "DecodeError", "Entry", "IntegrityError", "Signer", "effective_ttl"]
