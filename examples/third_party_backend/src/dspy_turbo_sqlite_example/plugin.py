"""The plugin module that the ``dspy_turbo`` entry point names (see pyproject.toml).

dspy-turbo registers this module with pluggy and calls the functions named after its hook
specs (``dspy_turbo.plugin.hookspecs``). Keep it to hook implementations: any other callable
named ``dspy_turbo_*`` here is reported as a misspelt hook at start-up.
"""

from __future__ import annotations

import click

import dspy_turbo

from .backend import SQLiteBackend
from .feature import PATH, SECTION, SQLiteStats


@dspy_turbo.hookimpl
def dspy_turbo_cache_backends():
    """Make ``type: sqlite`` available under ``cache.tiers``."""
    return [SQLiteBackend]


@dspy_turbo.hookimpl
def dspy_turbo_config_sections():
    """The ``sqlite_example:`` section of the YAML (``feature.SQLiteExampleSettings``)."""
    return [SECTION]


def _sqlite_tiers(turbo) -> list:
    return [t for t in turbo.cache.tiers if isinstance(t.backend, SQLiteBackend)]


@dspy_turbo.hookimpl
def dspy_turbo_startup(turbo):
    """Keep this Turbo's counters where the other hooks find them: ``turbo.sqlite_example``."""
    turbo.publish(PATH, SQLiteStats())


@dspy_turbo.hookimpl
def dspy_turbo_stats(turbo):
    """A ``sqlite_example`` block in ``turbo.stats()`` when the config has a sqlite tier."""
    tiers = _sqlite_tiers(turbo)
    if not tiers:
        return None
    block = turbo.features[PATH].block(tiers)
    block["compact_on_close"] = turbo.config.section(PATH).compact_on_close
    return {PATH: block}


@dspy_turbo.hookimpl
def dspy_turbo_reset_stats(turbo):
    turbo.publish(PATH, SQLiteStats())


@dspy_turbo.hookimpl
def dspy_turbo_shutdown(turbo):
    """``compact_on_close: true``: compact every sqlite tier (shutdown runs before the tiers close)."""
    if not turbo.config.section(PATH).compact_on_close:
        return
    counters = turbo.features[PATH]
    for tier in _sqlite_tiers(turbo):
        removed, _ = tier.backend.compact()
        counters.compactions += 1
        counters.compacted_rows += removed


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
