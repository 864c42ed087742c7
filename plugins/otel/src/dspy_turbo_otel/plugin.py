"""Registers the ``otel`` metric sink."""

from __future__ import annotations

import dspy_turbo


@dspy_turbo.hookimpl
def dspy_turbo_metric_sinks():
    from .sink import OtelSink

    return [OtelSink]
