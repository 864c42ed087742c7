"""Registers the ``prometheus`` metric sink. Imports nothing heavy: prometheus_client is
imported when a sink is built."""

from __future__ import annotations

import dspy_turbo


@dspy_turbo.hookimpl
def dspy_turbo_metric_sinks():
    from .sink import PrometheusSink

    return [PrometheusSink]
