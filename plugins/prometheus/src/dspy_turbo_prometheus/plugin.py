"""Registers the ``prometheus`` metric sink and the ``dspy-turbo top`` command. Imports
nothing heavy: prometheus_client is imported when a sink is built or ``top`` runs."""

from __future__ import annotations

import dspy_turbo


@dspy_turbo.hookimpl
def dspy_turbo_metric_sinks():
    from .sink import PrometheusSink

    return [PrometheusSink]


@dspy_turbo.hookimpl
def dspy_turbo_commands(cli):
    """``dspy-turbo top``: the live dashboard of a process running this sink."""
    from .commands import top

    cli.add_command(top)
