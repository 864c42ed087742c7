"""The plugin module that the ``dspy_turbo`` entry point names (see pyproject.toml).

dspy-turbo registers this module with pluggy and calls the functions named after its hook
specs (``dspy_turbo.hookspecs``). Keep it to hook implementations: any other callable
named ``dspy_turbo_*`` here is reported as a misspelt hook at start-up.
"""

from __future__ import annotations

import dspy_turbo

from .backend import SQLiteBackend


@dspy_turbo.hookimpl
def dspy_turbo_cache_backends():
    """Make ``type: sqlite`` available under ``cache.tiers``."""
    return [SQLiteBackend]
