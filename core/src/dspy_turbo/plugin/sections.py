"""A plugin's own part of the YAML document: :class:`ConfigSection`.

A feature plugin declares where its settings live and their pydantic model, through the
``dspy_turbo_config_sections`` hook; the host adds the section to the document's model,
so a file is validated in one pass with the same messages and YAML paths as the core's
own keys (``sqlite_example.compact_on_clse: unknown key ...; did you mean ...``). A
section no loaded plugin declares is an unknown key. The core's own features (the
semantic cache's ``cache.semantic``, the alert rules' ``metrics.alerts``) are declared
the same way::

    from dspy_turbo.plugin import ConfigSection, Options, hookimpl

    class SQLiteExampleSettings(Options):
        compact_on_close: bool = False
        \"\"\"Run VACUUM on every sqlite-example tier when the Turbo closes.\"\"\"

    @hookimpl
    def dspy_turbo_config_sections():
        return [ConfigSection("sqlite_example", SQLiteExampleSettings,
                              doc="Settings of the sqlite-example plugin.")]

The validated value is ``turbo.settings.<path>`` (``turbo.config.section("cache.semantic")``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["ConfigSection"]


@dataclass(frozen=True, eq=False)
class ConfigSection:
    """One section of the YAML document that a plugin owns."""

    path: str
    """Where it lives: a top-level key (``"sqlite_example"``) or a key inside one of the core's
    mappings (``"cache.semantic"``, ``"metrics.alerts"``): at most one dot, and no key the core
    or another plugin already has."""
    model: Any
    """Its type: an ``Options`` subclass (unknown keys refused), or any pydantic type such as
    ``list[AlertRule]``."""
    default: Any = None
    """Its value when the file leaves it out. ``None``: the section is optional (``null`` is
    accepted and means "off")."""
    components: Mapping[str, str] = field(default_factory=dict)
    """Keys of the section that hold component blocks (``{type: ..., ...}``), with their kind:
    ``{"index": "similarity_index", "embedder": "embedder"}``. The host resolves each block to
    its registered class and validates its options (errors at ``<path>.<key>``), masks its
    secrets in the settings, and shows its choices in the JSON schema; declare those keys as
    ``dict[str, Any]`` in ``model``. The resolved specs: ``turbo.config.component("<path>.<key>")``."""
    doc: str = ""
    """One or two sentences for the config reference (docs) and the JSON schema's description."""

    def __post_init__(self) -> None:
        parts = self.path.split(".")
        if not 1 <= len(parts) <= 2 or not all(p.isidentifier() for p in parts):
            raise ValueError(f"config section path {self.path!r}: one key or 'parent.key', each a Python identifier")
        object.__setattr__(self, "components", MappingProxyType(dict(self.components)))

    @property
    def parent(self) -> str | None:
        """The core mapping it lives in (``"cache"``), or None at the top level."""
        return self.path.rpartition(".")[0] or None

    @property
    def key(self) -> str:
        """Its own key inside the parent (``"semantic"``)."""
        return self.path.rpartition(".")[2]
