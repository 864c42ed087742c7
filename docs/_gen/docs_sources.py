"""Where the documentation reads the code: the one place to repoint when modules move.

Everything the generated pages show is read from the live objects a user gets: a Turbo
from ``dspy_turbo.load`` (its plugin manager, component registry and settings model), the
``dspy-turbo`` console script (its parser or click group) and the installed distributions.
Only the names below that have no live registry (event kinds, contract classes) carry a
module hint; when the hint is stale the name is looked up in the installed ``dspy_turbo``
packages by a source scan, so a move within them keeps the docs building.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import importlib.util
import io
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONSOLE_SCRIPT = "dspy-turbo"
# The minimal config a throwaway Turbo is built from: nothing on disk, no server.
MINIMAL_CONFIG = {"cache": {"tiers": [{"type": "memory"}]}}

# Where each component kind sits in the YAML (user-visible: it does not move with the code).
KIND_SECTIONS = {
    "cache_backend": ("cache.tiers[]", "Cache tiers"),
    "similarity_index": ("cache.semantic.index", "Similarity indexes"),
    "embedder": ("cache.semantic.embedder", "Embedders"),
    "batch_strategy": ("batching", "Batch strategies"),
    "model_selector": ("routing", "Model selectors"),
    "metric_sink": ("metrics.sinks[]", "Metric sinks"),
}

# Event kinds: constant name -> the module that defines it (a hint, see above). The SDK's
# event table (dspy_turbo.plugin.events.EVENTS) names every kind with its fields.
EVENT_TABLE = ("EVENTS", "dspy_turbo.plugin.events")
EVENT_KINDS = {const: "dspy_turbo.plugin.events" for const in (
    "HIT", "MISS", "STORE", "SKIP_STORE", "EVICT", "ERROR", "BREAKER", "LM_CALL", "COALESCED", "ROUTE", "ROUTE_SAVING",
    "SEMANTIC_MISS", "SEMANTIC_REJECT", "SEMANTIC_SKIP", "SEMANTIC_ADD", "SEMANTIC_REMOVE", "SEMANTIC_JUDGE",
    "BATCH", "RETRY", "RATE_LIMITED", "TIMED", "ALERT")}

# The SDK module plugins import, and its submodules (one per contract): the plugin author pages show them.
SDK = "dspy_turbo.plugin"

# Classes the plugin author pages show: name -> the module that defines it today (a hint).
CONTRACTS = {
    "Component": "dspy_turbo.plugin.components", "Options": "dspy_turbo.plugin.components",
    "ComponentUnavailable": "dspy_turbo.plugin.components", "SecretURL": "dspy_turbo.plugin.components",
    "CacheBackend": "dspy_turbo.plugin.backend", "BackendOptions": "dspy_turbo.plugin.backend",
    "Entry": "dspy_turbo.plugin.backend", "effective_ttl": "dspy_turbo.plugin.backend",
    "SimilarityIndex": "dspy_turbo.plugin.similarity", "Embedder": "dspy_turbo.plugin.similarity",
    "WordVectorEmbedder": "dspy_turbo.plugin.similarity",
    "BatchStrategy": "dspy_turbo.plugin.batch", "Runner": "dspy_turbo.plugin.batch", "Item": "dspy_turbo.plugin.batch",
    "BatchOptions": "dspy_turbo.plugin.batch", "BatchError": "dspy_turbo.plugin.batch",
    "BatchRunner": "dspy_turbo.plugin.batch", "BatchHost": "dspy_turbo.plugin.batch",
    "CallPolicy": "dspy_turbo.plugin.calls", "WorkerPool": "dspy_turbo_batching.workers",
    "ModelSelector": "dspy_turbo.plugin.selector", "SelectorOptions": "dspy_turbo.plugin.selector",
    "Decision": "dspy_turbo.plugin.selector",
    "MetricSink": "dspy_turbo.plugin.sink", "Event": "dspy_turbo.plugin.events", "EventKind": "dspy_turbo.plugin.events",
    "problems": "dspy_turbo.plugin.events",
    "Coordinator": "dspy_turbo.plugin.coordination", "LocalCoordinator": "dspy_turbo.plugin.coordination",
    "Host": "dspy_turbo.plugin.host", "Tiers": "dspy_turbo.plugin.host", "EventBus": "dspy_turbo.plugin.host",
    "FeatureHost": "dspy_turbo.plugin.host", "HostConfig": "dspy_turbo.plugin.host",
    "CacheBackendSuite": "dspy_turbo.testing", "SimilarityIndexSuite": "dspy_turbo.testing",
    "EmbedderSuite": "dspy_turbo.testing", "BatchStrategySuite": "dspy_turbo.testing",
    "MetricSinkSuite": "dspy_turbo.testing", "ModelSelectorSuite": "dspy_turbo.testing",
    "CoordinatorSuite": "dspy_turbo.testing",
}
# The packages a moved name is searched in: the core and every dspy_turbo_* plugin installed.
SEARCH_PREFIX = "dspy_turbo"


class SourceError(RuntimeError):
    """The docs could not find something in the code: repoint this module."""


# -- the plugin host -------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    pm: Any  # the pluggy PluginManager, with every installed plugin
    registry: Any  # component classes by kind and name
    settings_model: type  # the pydantic model of the whole YAML document


@functools.cache
def host() -> Host:
    import dspy_turbo

    turbo = dspy_turbo.load(MINIMAL_CONFIG)
    try:
        return Host(turbo.pm, turbo.registry, type(turbo.config.settings))
    finally:
        turbo.close()


def hooks() -> dict[str, Any]:
    """Every hook spec of the live plugin manager: name -> its HookCaller (``.spec``, implementations)."""
    relay = host().pm.hook
    return {name: getattr(relay, name) for name in dir(relay)
            if name.startswith("dspy_turbo_") and getattr(getattr(relay, name), "spec", None) is not None}


def components() -> dict[str, dict[str, type]]:
    """kind -> {name: class} of every installed component."""
    registry = host().registry
    return {kind: {name: registry.get(kind, name) for name in registry.names(kind)} for kind in KIND_SECTIONS
            if kind in registry.classes}


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution_of(obj: Any) -> str:
    """The installed distribution an object's top-level package belongs to."""
    top = getattr(obj, "__module__", "").split(".")[0]
    dists = _distributions().get(top) or []
    return dists[0] if dists else top


# -- names without a registry ------------------------------------------------------------------


def _search_roots() -> list[Path]:
    """The source folders of ``dspy_turbo`` and of every installed ``dspy_turbo_*`` package."""
    tops = sorted(t for t in _distributions() if t.startswith(SEARCH_PREFIX))
    roots = []
    for top in [SEARCH_PREFIX, *(t for t in tops if t != SEARCH_PREFIX)]:
        spec = importlib.util.find_spec(top)
        if spec is not None and spec.submodule_search_locations:
            roots.extend(Path(p) for p in spec.submodule_search_locations)
    return roots


def _module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find(name: str, hint: str | None = None) -> Any:
    """The object ``name`` from module ``hint``, else from whichever dspy_turbo* module defines it."""
    return locate(name, hint)[0]


@functools.cache
def locate(name: str, hint: str | None = None) -> tuple[Any, str]:
    """``(object, module name)``; see :func:`find`."""
    if hint:
        try:
            return getattr(importlib.import_module(hint), name), hint
        except (ImportError, AttributeError):
            pass
    definition = re.compile(rf"^(class {name}\b|def {name}\b|{name}\b[^=\n]*=|[A-Z_, ]*\b{name}\b[A-Z_, ]*=)", re.M)
    for root in _search_roots():
        for path in sorted(root.rglob("*.py")):
            if path.name == "__main__.py":
                continue
            if definition.search(path.read_text(encoding="utf-8", errors="replace")):
                module = _module_name(root, path)
                try:
                    return getattr(importlib.import_module(module), name), module
                except (ImportError, AttributeError):
                    continue
    raise SourceError(f"{name!r} is defined in no dspy_turbo* module (hint: {hint}); repoint {__file__}")


def contract(name: str) -> Any:
    return find(name, CONTRACTS.get(name))


def event_table() -> dict[str, Any]:
    """kind -> its ``EventKind`` row (fields, extra keys, reasons), from the SDK's table."""
    return dict(find(*EVENT_TABLE))


# SDK submodules with a reference page of their own: the hooks (read from the plugin manager).
SDK_OWN_PAGES = ("hookspecs",)


def sdk_modules() -> list[Any]:
    """The SDK package and its submodules, in name order (those in ``SDK_OWN_PAGES`` aside)."""
    import pkgutil

    package = importlib.import_module(SDK)
    return [package, *(importlib.import_module(f"{SDK}.{info.name}")
                       for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name)
                       if info.name not in SDK_OWN_PAGES)]


def event_kinds() -> dict[str, str]:
    """kind -> the module that defines its constant."""
    out = {}
    for const, hint in EVENT_KINDS.items():
        value, module = locate(const, hint)
        out[value] = module
    return out


# -- the command line --------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    distribution: str | None = None
    """The plugin distribution that adds it (None: the core's own)."""


@functools.cache
def cli_entry() -> Callable[[list[str]], Any]:
    found = importlib.metadata.entry_points(group="console_scripts", name=CONSOLE_SCRIPT)
    if not found:
        raise SourceError(f"no console script {CONSOLE_SCRIPT!r} is installed; repoint {__file__}")
    return next(iter(found)).load()


def _click_group(entry: Any) -> Any | None:
    builder = getattr(sys.modules.get(getattr(entry, "__module__", ""), None), "build_cli", None)
    if builder is not None:  # a main(argv) function next to the click group it assembles (plugins' commands too)
        return builder()
    if hasattr(entry, "registered_commands"):  # a typer app
        import typer.main

        return typer.main.get_command(entry)
    return entry if hasattr(entry, "commands") and hasattr(entry, "get_help") else None


def cli_commands() -> list[Command]:
    """Every subcommand with its one-line help, in the order the CLI lists them."""
    entry = cli_entry()
    group = _click_group(entry)
    if group is not None:
        owners = getattr(group, "owners", {})  # command -> the plugin (entry point) that added it
        dists = {ep.name: ep.dist.name for ep in importlib.metadata.entry_points(group="dspy_turbo") if ep.dist}
        return [Command(name, cmd.get_short_help_str(limit=200) or "", dists.get(owners.get(name)))
                for name, cmd in group.commands.items()]
    module = sys.modules[entry.__module__]
    build = getattr(module, "build_parser", None)
    if build is None:
        raise SourceError(f"{entry.__module__} has no build_parser() and {CONSOLE_SCRIPT} is no click command; "
                          f"repoint {__file__}")
    import argparse

    parser = build()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return [Command(choice.dest, choice.help or "") for choice in action._choices_actions]
    return []


def cli_help(*argv: str, columns: int = 96) -> str:
    """What ``dspy-turbo ARGV... --help`` prints, run through the CLI's own entry point."""
    entry = cli_entry()
    out, err = io.StringIO(), io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(columns)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            group = _click_group(entry)
            try:
                if group is not None:
                    group.main([*argv, "--help"], prog_name=CONSOLE_SCRIPT, standalone_mode=True)
                else:
                    entry([*argv, "--help"])
            except SystemExit:
                pass
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    text = out.getvalue() or err.getvalue()
    if not text.strip():
        raise SourceError(f"{CONSOLE_SCRIPT} {' '.join(argv)} --help printed nothing")
    return text.rstrip() + "\n"
