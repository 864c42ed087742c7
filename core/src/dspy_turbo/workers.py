"""Moved: the batches' thread pool is in dspy-turbo-batching (``dspy_turbo_batching.workers``).
The old name warns for one release."""

from __future__ import annotations

from ._moved import moved_to_plugin

__getattr__ = moved_to_plugin(__name__, "dspy_turbo_batching.workers", "dspy-turbo-batching", ("WorkerPool",))
