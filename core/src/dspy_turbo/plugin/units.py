"""Option types with human units, and where a component keeps its files.

``Duration`` (seconds; ``"90s"``, ``"7d"``), ``TTL`` (a lifetime, more than 0; type it
``TTL | None`` for "no expiry") and ``ByteSize`` (bytes; ``"256MB"``) are pydantic field
types for a component's ``Options``: finite and bounded, with config errors that name the
YAML path. :func:`cache_dir` is dspy-turbo's directory on this machine, for files a
component derives once and reuses (the file tier's default, an exported model).
"""

from __future__ import annotations

from ..cache.directory import cache_dir
from ..host.units import TTL, ByteSize, Duration, parse_duration, parse_size, parse_ttl

__all__ = ["TTL", "ByteSize", "Duration", "cache_dir", "parse_duration", "parse_size", "parse_ttl"]
