"""The plugin module that the ``dspy_turbo`` entry point names (see pyproject.toml).

dspy-turbo registers this module with pluggy and calls the functions named after its hook
specs (``dspy_turbo.hookspecs``). Keep it to hook implementations: any other callable
named ``dspy_turbo_*`` here is reported as a misspelt hook at start-up.
"""

from __future__ import annotations

import click

import dspy_turbo

from .backend import SQLiteBackend


@dspy_turbo.hookimpl
def dspy_turbo_cache_backends():
    """Make ``type: sqlite`` available under ``cache.tiers``."""
    return [SQLiteBackend]


@dspy_turbo.hookimpl
def dspy_turbo_commands(cli):
    """Add ``dspy-turbo sqlite-compact``: a plugin's own subcommand, next to the core's."""

    @cli.command("sqlite-compact", help="Compact the config's sqlite tiers.\n\nDeletes expired rows and gives their space back (VACUUM).")
    @cli.config_option
    def sqlite_compact(config):
        turbo = cli.load(config)
        try:
            tiers = [t for t in turbo.cache.tiers if isinstance(t.backend, SQLiteBackend)]
            if not tiers:
                raise click.ClickException(f"{config or 'the default config'} has no sqlite tier")
            for tier in tiers:
                removed, size = tier.backend.compact()
                click.echo(f"{tier.name}: removed {removed} expired entries; {tier.backend.options.path} is {size} bytes")
        finally:
            turbo.close()
        return 0
