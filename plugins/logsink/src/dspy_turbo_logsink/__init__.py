"""dspy-turbo's structured-log metric sink (``metrics: {sinks: [{type: log}]}``)."""

from __future__ import annotations

from .sink import LogSink

__all__ = ["LogSink"]
