"""Coordination between callers and processes: the coordinator (leases and token buckets),
single-flight, the shared logs and the invalidation feed that follows one.

``dspy_turbo.coordination`` was the coordinator's module: its names read from here still work
for one release, with a DeprecationWarning naming ``dspy_turbo.coordination.coordinator``."""

from .._moved import moved_into

__getattr__ = moved_into(__name__, "dspy_turbo.coordination.coordinator")
