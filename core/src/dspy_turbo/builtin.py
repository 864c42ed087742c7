"""The core's own components, registered through the same hooks as any plugin."""

from __future__ import annotations

from .cache.memory import MemoryBackend
from .plugin.hookspecs import hookimpl
from .routing.model_selection import ComplexitySelector


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


@hookimpl(tryfirst=True)
def dspy_turbo_startup(turbo):
    """``turbo.semantic`` is None until a plugin publishes a semantic cache (dspy-turbo-faiss's,
    from its own ``tryfirst`` startup, which runs before this one): the DSPy integration reads
    it on every lookup, with no plugin installed too."""
    if "semantic" not in turbo.features:
        turbo.publish("semantic", None)
