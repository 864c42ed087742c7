"""The core's own components, registered through the same hooks as any plugin."""

from __future__ import annotations

from .hookspecs import hookimpl
from .memory import MemoryBackend
from .routing import ComplexitySelector


@hookimpl
def dspy_turbo_cache_backends():
    return [MemoryBackend]


@hookimpl
def dspy_turbo_model_selectors():
    return [ComplexitySelector]


@hookimpl
def dspy_turbo_commands(cli):
    """The core's subcommands (``dspy_turbo.cli.builtin``), added as any plugin's are."""
    from .cli import builtin

    builtin.register(cli)
