"""The core's own components, registered through the same hooks as any plugin."""

from __future__ import annotations

from .hookspecs import hookimpl
from .memory import MemoryBackend


@hookimpl
def dspy_turbo_cache_backends():
    return [MemoryBackend]
