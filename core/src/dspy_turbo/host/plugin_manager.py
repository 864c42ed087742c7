"""The plugin host: one pluggy PluginManager per Turbo, and the component registry.

Load order: the core's built-ins (``DEFAULT_PLUGINS``: its components and its features,
as pytest's ``default_plugins``), then every installed distribution's entry point in the
``dspy_turbo`` group. ``DSPY_TURBO_PLUGINS=a,b`` loads only the named entry points
(``DSPY_TURBO_PLUGINS=`` loads none: built-ins only). Hook implementations whose names
start with ``dspy_turbo_`` but match no spec are a start-up error.
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ..plugin import hookspecs
from ..plugin.sections import ConfigSection
from .components import KINDS, Component

logger = logging.getLogger("dspy_turbo.plugins")
ENTRY_POINT_GROUP = "dspy_turbo"
ENV_FILTER = "DSPY_TURBO_PLUGINS"

# The core's own plugins, registered before any entry point and through the same hooks:
# its components and CLI commands, then one module per feature (dspy_turbo.features).
# pluggy calls the last registered first: timings, alerts, the invalidation feed. (The semantic
# cache's feature is dspy-turbo-faiss's.)
DEFAULT_PLUGINS = (
    "dspy_turbo.builtin",
    "dspy_turbo.features.invalidation",
    "dspy_turbo.features.alerts",
    "dspy_turbo.features.timings",
)

# Registration hook -> the kinds its classes may have.
REGISTRATION_HOOKS = {
    "dspy_turbo_cache_backends": ("cache_backend",),
    "dspy_turbo_similarity_search": ("similarity_index", "embedder"),
    "dspy_turbo_batch_strategies": ("batch_strategy",),
    "dspy_turbo_model_selectors": ("model_selector",),
    "dspy_turbo_metric_sinks": ("metric_sink",),
}

# Where a well-known component lives, for "install X" hints in config errors.
KNOWN_PROVIDERS = {
    ("cache_backend", "redis"): "dspy-turbo-redis",
    ("cache_backend", "file"): "dspy-turbo-file",
    ("similarity_index", "faiss"): "dspy-turbo-faiss",
    ("embedder", "sentence-transformers"): "dspy-turbo-faiss",
    ("batch_strategy", "thread"): "dspy-turbo-batching",
    ("batch_strategy", "async"): "dspy-turbo-batching",
    ("batch_strategy", "ray"): "dspy-turbo-ray",
    ("metric_sink", "prometheus"): "dspy-turbo-prometheus",
    ("metric_sink", "log"): "dspy-turbo-logsink",
}
# Subcommands that come with a plugin, for the "install X" hint of `dspy-turbo <command>`.
KNOWN_COMMANDS = {"top": "dspy-turbo-prometheus", "calibrate": "dspy-turbo-faiss"}
# Config sections that come with a plugin (dspy_turbo_config_sections), for the "install X" hint of a
# file that uses one without it.
KNOWN_SECTIONS = {"cache.semantic": ("the semantic cache", "dspy-turbo-faiss")}


class PluginError(RuntimeError):
    """A plugin could not be loaded or registers something invalid."""


@dataclass
class PluginInfo:
    name: str
    version: str | None
    hooks: list[str]
    components: dict[str, list[str]] = field(default_factory=dict)
    distribution: str | None = None


@dataclass
class Registry:
    """Component classes by kind and name, each with the plugin that registered it."""

    classes: dict[str, dict[str, type[Component]]] = field(default_factory=lambda: {k: {} for k in KINDS})
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    sections: dict[str, ConfigSection] = field(default_factory=dict)
    """Config sections plugins declared (``dspy_turbo_config_sections``), by YAML path."""
    section_owners: dict[str, str] = field(default_factory=dict)
    unloaded: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    """Installed plugins that were not loaded: entry-point name -> (distribution, why)."""

    def why_missing(self, package: str | None) -> str | None:
        """Why the installed ``package`` (a distribution name) provides nothing here, or None
        when it is not installed (or loaded fine)."""
        for name, (dist, why) in self.unloaded.items():
            if package is not None and dist is not None and _normal(dist) == _normal(package):
                return f"{package} is installed, but its plugin {name!r} {why}"
        return None

    def unloaded_note(self) -> str:
        """For a component nobody provides: the installed plugins that were not loaded."""
        if not self.unloaded:
            return ""
        listed = "; ".join(f"{name!r} {why}" for name, (_, why) in sorted(self.unloaded.items()))
        return f"installed plugins not loaded: {listed}; "

    def add(self, kind: str, cls: type[Component], owner: str) -> None:
        if kind not in self.classes:
            raise PluginError(f"plugin {owner!r} registers {cls.__qualname__} with unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
        if not cls.name:
            raise PluginError(f"plugin {owner!r} registers {cls.__qualname__} without a name")
        previous = self.owners.get((kind, cls.name))
        if previous is not None:
            raise PluginError(f"{kind} {cls.name!r} is registered twice: by plugin {previous!r} and by plugin {owner!r}")
        self.classes[kind][cls.name] = cls
        self.owners[(kind, cls.name)] = owner

    def get(self, kind: str, name: str) -> type[Component] | None:
        return self.classes[kind].get(name)

    def names(self, kind: str) -> list[str]:
        return sorted(self.classes[kind])


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _filter() -> set[str] | None:
    raw = os.environ.get(ENV_FILTER)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _allowed(name: str) -> bool:
    names = _filter()
    return names is None or name in names


_warned: set[tuple[str, ...]] = set()


def _warn_once(*what: str) -> None:
    """A warning per distinct problem and process (``load()`` may run many times)."""
    if what not in _warned:
        _warned.add(what)
        logger.warning("%s", what[-1])


def _check_filter(available: list[str]) -> None:
    """``DSPY_TURBO_PLUGINS`` naming a plugin that is not installed: a warning, with the closest name."""
    import difflib

    for name in sorted((_filter() or set()) - set(available)):
        close = difflib.get_close_matches(name, available, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        _warn_once("filter", name, f"{ENV_FILTER} names {name!r}, which no installed plugin is called; {hint}"
                                   f"installed plugins: {', '.join(sorted(available)) or 'none'}")


def _skip(pm: pluggy.PluginManager, ep: importlib.metadata.EntryPoint, problem: str) -> None:
    """A broken entry-point plugin: reported (once per process) and left out of this manager."""
    dist = ep.dist.name if ep.dist else None
    unloaded(pm)[ep.name] = (dist, f"failed to load ({problem})")
    _warn_once("broken", ep.name, problem,
               f"plugin {ep.name!r} ({ep.value}) from {dist or 'an unknown distribution'} failed to load and is "
               f"skipped: {problem}. Fix or uninstall it, or leave it out with {ENV_FILTER}=<the plugins to load>")


def unloaded(pm: pluggy.PluginManager) -> dict[str, tuple[str | None, str]]:
    """Entry points this manager did not load: name -> (distribution, why), for messages."""
    found = getattr(pm, "_dspy_turbo_unloaded", None)
    if found is None:
        found = {}
        pm._dspy_turbo_unloaded = found
    return found


def make_plugin_manager(extra_plugins: Iterable[Any] = (), *, entry_points: bool = True) -> pluggy.PluginManager:
    """Built-ins, then entry points (filtered by ``DSPY_TURBO_PLUGINS``), then ``extra_plugins``.

    An installed plugin that is broken (it does not import, implements a misspelt hook, a
    hook with the wrong arguments) is reported with a warning and skipped: it matters only
    to a config that uses what it provides, whose error then says why it is missing. The
    program's own ``extra_plugins`` are held to the same checks as errors (``PluginError``).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if entry_points:
        eps = _entry_points()
        if _filter() is not None:
            _check_filter([ep.name for ep in eps])
        for ep in eps:
            if not _allowed(ep.name):
                dist = ep.dist.name if ep.dist else None
                unloaded(pm)[ep.name] = (dist, f"is left out by {ENV_FILTER}={os.environ.get(ENV_FILTER, '')}")
                continue
            if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                _skip(pm, ep, f"{type(exc).__name__}: {exc}")
                continue
            problem = _misspelt(plugin)
            if problem is None:
                try:
                    pm.register(plugin, name=ep.name)
                except (pluggy.PluginValidationError, ValueError) as exc:
                    problem = str(exc)
            if problem is not None:
                _skip(pm, ep, problem)
                continue
            if ep.dist is not None:
                _DISTRIBUTIONS[ep.name] = (ep.dist.name, ep.dist.version)
    for plugin in extra_plugins:
        if pm.is_registered(plugin):
            continue
        pm.register(plugin, name=getattr(plugin, "__name__", None) or type(plugin).__name__)
    check(pm)
    return pm


_DISTRIBUTIONS: dict[str, tuple[str, str]] = {}


def _misspelt(plugin: Any) -> str | None:
    """Why ``plugin`` implements a hook that does not exist (with the closest name), or None."""
    import difflib

    specs = [name for name in dir(hookspecs) if name.startswith("dspy_turbo_")]
    for attr in dir(plugin):
        if attr.startswith("dspy_turbo_") and attr not in specs and callable(getattr(plugin, attr, None)):
            close = difflib.get_close_matches(attr, specs, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return f"implements unknown hook {attr!r}{hint}"
    return None


def check(pm: pluggy.PluginManager) -> None:
    """Misspelt hook implementations are errors, with the closest spec name suggested."""
    for plugin in pm.get_plugins():
        problem = _misspelt(plugin)
        if problem is not None:
            raise PluginError(f"plugin {pm.get_name(plugin)!r} {problem}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc


def _normal(dist: str) -> str:
    return dist.lower().replace("_", "-").replace(".", "-")


# -- calling a broadcast hook, each implementation on its own ------------------------------

_WRAPPING = threading.Lock()
# (hook name, results) of the call_each running in this thread or task
_COLLECTING: contextvars.ContextVar[tuple[str, list] | None] = contextvars.ContextVar("dspy_turbo_collecting",
                                                                                      default=None)


def _each(impl: Any, hook_name: str) -> None:
    """Let ``call_each`` see ``impl``'s result or exception on its own (pluggy stops a call at
    the first exception): its function, wrapped once; called outside ``call_each``, the
    wrapper is the function itself."""
    function = impl.function
    if getattr(function, "_dspy_turbo_each", False) or impl.hookwrapper or impl.wrapper:
        return

    def each(*args: Any) -> Any:
        collecting = _COLLECTING.get()
        if collecting is None or collecting[0] != hook_name:
            return function(*args)
        try:
            collecting[1].append((impl.plugin_name, function(*args), None))
        except Exception as exc:
            collecting[1].append((impl.plugin_name, None, exc))
        return None

    each._dspy_turbo_each = True
    impl.function = each


def call_each(hook: Any, **kwargs: Any) -> list[tuple[str, Any, Exception | None]]:
    """Call a broadcast hook through pluggy (its order, ``tryfirst``/``trylast``, argument
    selection, wrappers), every implementation even when one raises: a list of
    ``(plugin name, result, exception or None)`` in call order. The caller reports the
    exceptions; none is raised."""
    with _WRAPPING:  # two threads' first calls wrap each implementation once
        for impl in hook.get_hookimpls():
            _each(impl, hook.name)
    results: list[tuple[str, Any, Exception | None]] = []
    token = _COLLECTING.set((hook.name, results))
    try:
        hook(**kwargs)
    finally:
        _COLLECTING.reset(token)
    return results


def _add_sections(pm: pluggy.PluginManager, registry: Registry) -> None:
    from .config import section_problem

    for owner, sections, exc in call_each(pm.hook.dspy_turbo_config_sections):
        if exc is not None:
            raise PluginError(f"plugin {owner!r}: dspy_turbo_config_sections raised {type(exc).__name__}: {exc}") from exc
        for section in sections or []:
            if not isinstance(section, ConfigSection):
                raise PluginError(f"plugin {owner!r}: dspy_turbo_config_sections returned {section!r}; "
                                  "it takes dspy_turbo.plugin.ConfigSection objects")
            previous = registry.section_owners.get(section.path)
            if previous is not None:
                raise PluginError(f"config section {section.path!r} is declared twice: by plugin {previous!r} "
                                  f"and by plugin {owner!r}")
            problem = section_problem(section)
            if problem is not None:
                raise PluginError(f"plugin {owner!r}: config section {section.path!r} {problem}")
            for kind in section.components.values():
                if kind not in KINDS:
                    raise PluginError(f"plugin {owner!r}: config section {section.path!r} names unknown component "
                                      f"kind {kind!r}; kinds: {', '.join(KINDS)}")
            registry.sections[section.path] = section
            registry.section_owners[section.path] = owner


def build_registry(pm: pluggy.PluginManager) -> Registry:
    registry = Registry(unloaded=dict(unloaded(pm)))
    _add_sections(pm, registry)
    for hook_name, kinds in REGISTRATION_HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            classes = impl.function() or []
            for cls in classes:
                kind = getattr(cls, "kind", "")
                if kind not in kinds:
                    raise PluginError(f"plugin {impl.plugin_name!r}: {hook_name} returned {getattr(cls, '__qualname__', cls)!r} "
                                      f"of kind {kind!r}; this hook takes {' or '.join(kinds)}")
                registry.add(kind, cls, impl.plugin_name)
    return registry


def describe(pm: pluggy.PluginManager, registry: Registry) -> list[PluginInfo]:
    """What ``dspy-turbo plugins`` prints: each plugin, its version, hooks and components."""
    from .. import __version__

    infos = []
    # pluggy hands out a set: the built-ins first, then by name, the same on every run
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: (item[0] != "dspy_turbo.builtin", str(item[0]))):
        if plugin is None:  # blocked
            continue
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        comps: dict[str, list[str]] = {}
        for (kind, comp), owner in sorted(registry.owners.items()):
            if owner == name:
                comps.setdefault(kind, []).append(comp)
        dist, version = _DISTRIBUTIONS.get(name, (None, None))
        if name in DEFAULT_PLUGINS:
            dist, version = "dspy-turbo", __version__
        infos.append(PluginInfo(name, version, hooks, comps, dist))
    return infos
