"""dspy-turbo: a caching and performance layer for DSPy programs.

    import dspy_turbo
    turbo = dspy_turbo.load("turbo.yaml").install()   # every dspy.LM call now goes through it
    ...
    print(turbo.stats())
    turbo.close()
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import _moved  # first: it serves the old module paths (dspy_turbo.keys) from its table

try:
    __version__ = version("dspy-turbo")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"

from .cache.backend import BackendOptions, CacheBackend
from .cache.cached_functions import cached
from .cache.codec import Codec, DecodeError, EncodeError, register_codec
from .cache.controls import ReplayMiss, bypass, caching, read_only, refresh
from .cache.entry import Entry
from .events.bus import Event
from .host.components import Component, Options
from .host.config import ConfigError, ConfigIssue
from .host.plugin_manager import PluginError
from .host.turbo import Turbo, load
from .plugin.hookspecs import hookimpl
from .routing.budget import BudgetExceeded
from .routing.model_selection import Decision, ModelSelector

_moved.keep_public_names(__name__)

__all__ = [
    "BackendOptions",
    "BudgetExceeded",
    "Decision",
    "ModelSelector",
    "CacheBackend",
    "CachedModule",
    "Codec",
    "Component",
    "ConfigError",
    "ConfigIssue",
    "DecodeError",
    "EncodeError",
    "Entry",
    "Event",
    "Options",
    "PluginError",
    "ReplayMiss",
    "Turbo",
    "__version__",
    "bypass",
    "cached",
    "caching",
    "hookimpl",
    "load",
    "read_only",
    "refresh",
    "register_codec",
]


def __getattr__(name: str):
    # CachedModule subclasses dspy.Module: imported on first use, so `import dspy_turbo` stays light.
    if name == "CachedModule":
        from .cache.cached_module import CachedModule

        return CachedModule
    old = _moved.old_module(__name__, name)  # a module that moved into a subpackage, by its old path
    if old is not None:
        return old
    raise AttributeError(f"module 'dspy_turbo' has no attribute {name!r}")
