"""dspy-turbo: a caching and performance layer for DSPy programs.

    import dspy_turbo
    turbo = dspy_turbo.load("turbo.yaml").install()   # every dspy.LM call now goes through it
    ...
    print(turbo.stats())
    turbo.close()
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import _moved

_moved.install_finder()  # before anything else: old module paths (dspy_turbo.keys) keep working

try:
    __version__ = version("dspy-turbo")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"

from .backend import BackendOptions, CacheBackend
from .budget import BudgetExceeded
from .cached import cached
from .codec import Codec, DecodeError, EncodeError, register_codec
from .host.components import Component, Options
from .host.config import ConfigError, ConfigIssue
from .controls import ReplayMiss, bypass, caching, read_only, refresh
from .entry import Entry
from .events import Event
from .hookspecs import hookimpl
from .host.plugin_manager import PluginError
from .routing import Decision, ModelSelector
from .host.turbo import Turbo, load

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
        from .cached_module import CachedModule

        return CachedModule
    old = _moved.old_module(__name__, name)  # a module that moved into a subpackage, by its old path
    if old is not None:
        return old
    raise AttributeError(f"module 'dspy_turbo' has no attribute {name!r}")
