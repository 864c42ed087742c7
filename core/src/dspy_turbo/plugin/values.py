"""The value codec: any cached value as JSON-able data with type tags, and back, never pickle.

A component that moves values across a boundary of its own (a worker process, a Ray actor,
a wire format) encodes them the way the tiers do: ``encode_value(value)`` gives
``(kind, data)`` (``EncodeError`` for what no codec knows), ``decode_value(kind, data)``
rebuilds the value (``DecodeError`` for anything malformed, never an import of a name that
came from the data). ``copy_value(value)`` is a caller's own copy of a value, made the way a
cache hit's is (mutating it never changes the original).
"""

from __future__ import annotations

from ..cache.codec import DecodeError, EncodeError, decode_value, encode_value
from ..cache.codec import copy_any as copy_value

__all__ = ["DecodeError", "EncodeError", "copy_value", "decode_value", "encode_value"]
