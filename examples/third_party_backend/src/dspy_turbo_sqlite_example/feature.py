"""The plugin's own config section and ``stats()`` block: a feature, as the core's are.

Nothing in dspy-turbo names this plugin: the section reaches the YAML through the
``dspy_turbo_config_sections`` hook, the block reaches ``turbo.stats()`` through
``dspy_turbo_stats``, and the compaction at close runs from ``dspy_turbo_shutdown``::

    sqlite_example:
      compact_on_close: true     # VACUUM every sqlite tier when the Turbo closes

Left out, the section keeps its defaults; with the plugin not installed (or filtered out
by ``DSPY_TURBO_PLUGINS``), ``sqlite_example`` is an unknown key like any misspelling.
"""

from __future__ import annotations

from dspy_turbo.plugin import ConfigSection, Options

PATH = "sqlite_example"


class SQLiteExampleSettings(Options):
    """Settings of the sqlite-example plugin itself (each tier's own options are under ``cache.tiers``)."""

    compact_on_close: bool = False
    """When the Turbo closes, delete every sqlite tier's expired rows and give their space back (VACUUM)."""


SECTION = ConfigSection(PATH, SQLiteExampleSettings, default=SQLiteExampleSettings(),
                        doc="Settings of the sqlite-example plugin (dspy-turbo-sqlite-example).")


class SQLiteStats:
    """What this Turbo's sqlite tiers did beyond reads and writes (published as ``turbo.sqlite_example``)."""

    def __init__(self) -> None:
        self.compactions = 0
        self.compacted_rows = 0

    def block(self, tiers: list) -> dict:
        return {"compact_on_close": None, "compactions": self.compactions, "compacted_rows": self.compacted_rows,
                "files": {t.name: t.backend.options.path for t in tiers}}
