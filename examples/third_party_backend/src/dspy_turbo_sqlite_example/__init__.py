"""dspy-turbo-sqlite-example: a persistent cache tier in one SQLite file.

Enable it in the dspy-turbo config with ``{type: sqlite, path: ./cache.db}`` under
``cache.tiers``; the plugin is found through its ``dspy_turbo`` entry point.
"""

from __future__ import annotations

from .backend import SQLiteBackend, SQLiteOptions

__all__ = ["SQLiteBackend", "SQLiteOptions"]
