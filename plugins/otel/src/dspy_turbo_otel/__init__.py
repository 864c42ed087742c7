"""dspy-turbo's OpenTelemetry metric sink (``metrics: {sinks: [{type: otel}]}``).

OpenTelemetry is imported when a sink is built (or ``OtelSink`` is first used from here),
never when dspy-turbo registers the plugin.
"""

from __future__ import annotations

__all__ = ["OtelOptions", "OtelSink"]


def __getattr__(name: str):
    if name in __all__:
        from . import sink

        return getattr(sink, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
