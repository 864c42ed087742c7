"""Metric events: the bus that hands every event to the sinks (``bus``), the non-blocking
queue in front of each background sink (``sink_queue``), the in-process aggregate behind
``turbo.stats()``, alert rules and profiling of user code.

``dspy_turbo.events`` was the bus's module: its names read from here still work for one
release, with a DeprecationWarning naming ``dspy_turbo.events.bus``."""

from .._moved import moved_into

__getattr__ = moved_into(__name__, "dspy_turbo.events.bus")
