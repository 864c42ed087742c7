"""The core's modules live in folders by concern (``dspy_turbo.cache.keys``, ``dspy_turbo.host.config``,
...). Their old flat paths, which a published plugin may still import, keep working for one
release: the very module object of the new path, with a DeprecationWarning naming it."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import types
import warnings

import pytest

import dspy_turbo

MOVED_MODULES = [
    ("dspy_turbo.plugins", "dspy_turbo.host.plugin_manager"),
    ("dspy_turbo.config", "dspy_turbo.host.config"),
    ("dspy_turbo.components", "dspy_turbo.host.components"),
    ("dspy_turbo.units", "dspy_turbo.host.units"),
    ("dspy_turbo.redaction", "dspy_turbo.host.redaction"),
    ("dspy_turbo.turbo", "dspy_turbo.host.turbo"),
    ("dspy_turbo.batching", "dspy_turbo.host.batching"),
    ("dspy_turbo.keys", "dspy_turbo.cache.keys"),
    ("dspy_turbo.entry", "dspy_turbo.cache.entry"),
    ("dspy_turbo.codec", "dspy_turbo.cache.codec"),
    ("dspy_turbo.memory", "dspy_turbo.cache.memory"),
    ("dspy_turbo.tiered", "dspy_turbo.cache.tiered"),
    ("dspy_turbo.breaker", "dspy_turbo.cache.breaker"),
    ("dspy_turbo.backend", "dspy_turbo.cache.backend"),
    ("dspy_turbo.integrity", "dspy_turbo.cache.integrity"),
    ("dspy_turbo.admission", "dspy_turbo.cache.admission"),
    ("dspy_turbo.controls", "dspy_turbo.cache.controls"),
    ("dspy_turbo.transfer", "dspy_turbo.cache.transfer"),
    ("dspy_turbo.cache_dir", "dspy_turbo.cache.directory"),
    ("dspy_turbo.items", "dspy_turbo.cache.items"),
    ("dspy_turbo.programs", "dspy_turbo.cache.program_identity"),
    ("dspy_turbo.cached", "dspy_turbo.cache.cached_functions"),
    ("dspy_turbo.cached_module", "dspy_turbo.cache.cached_module"),
    ("dspy_turbo.dspy_integration", "dspy_turbo.integration.dspy_cache"),
    ("dspy_turbo.callpolicy", "dspy_turbo.integration.call_dispatch"),
    ("dspy_turbo.metadata_memo", "dspy_turbo.integration.metadata_memo"),
    ("dspy_turbo.signature_text", "dspy_turbo.integration.signature_text"),
    ("dspy_turbo.handoff", "dspy_turbo.events.sink_queue"),
    ("dspy_turbo.stats", "dspy_turbo.events.stats"),
    ("dspy_turbo.alerts", "dspy_turbo.events.alerts"),
    ("dspy_turbo.profiling", "dspy_turbo.events.profiling"),
    ("dspy_turbo.singleflight", "dspy_turbo.coordination.singleflight"),
    ("dspy_turbo.shared_log", "dspy_turbo.coordination.shared_log"),
    ("dspy_turbo.invalidation", "dspy_turbo.coordination.invalidation"),
    ("dspy_turbo.router", "dspy_turbo.routing.router"),
    ("dspy_turbo.costs", "dspy_turbo.routing.costs"),
    ("dspy_turbo.budget", "dspy_turbo.routing.budget"),
    ("dspy_turbo.context", "dspy_turbo.routing.context"),
    ("dspy_turbo.offline", "dspy_turbo.engines.offline"),
    ("dspy_turbo.openai_server", "dspy_turbo.engines.openai_server"),
    ("dspy_turbo.demo", "dspy_turbo.cli.demo"),
    ("dspy_turbo.hookspecs", "dspy_turbo.plugin.hookspecs"),
]

# old modules whose name is now a package: the package reads their names from the new module
NOW_PACKAGES = [
    ("dspy_turbo.events", "Event", "dspy_turbo.events.bus"),
    ("dspy_turbo.events", "EventBus", "dspy_turbo.events.bus"),
    ("dspy_turbo.coordination", "LocalCoordinator", "dspy_turbo.coordination.coordinator"),
    ("dspy_turbo.coordination", "CoordinationUnavailable", "dspy_turbo.coordination.coordinator"),
    ("dspy_turbo.routing", "ComplexitySelector", "dspy_turbo.routing.model_selection"),
    ("dspy_turbo.routing", "Decision", "dspy_turbo.routing.model_selection"),
]


@pytest.mark.parametrize(("old", "new"), MOVED_MODULES)
def test_an_old_module_path_is_the_new_module_with_a_deprecation_warning(old, new):
    parent, _, leaf = old.rpartition(".")
    package = importlib.import_module(parent)
    public = package.__dict__.get(leaf)
    sys.modules.pop(old, None)  # as in a fresh process
    if isinstance(public, types.ModuleType):
        delattr(package, leaf)
    with pytest.warns(DeprecationWarning, match=rf"{re.escape(old)} moved to {re.escape(new)}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__spec__.name == new and module.__name__ == new
    found = {}
    exec(f"from {parent} import {leaf} as found", found)  # noqa: S102 - the other form a plugin uses
    if isinstance(public, types.ModuleType) or public is None:
        assert found["found"] is module
    else:  # a public name of the package (dspy_turbo.cached, the decorator) stays what it is
        assert found["found"] is public and getattr(package, leaf) is public


def test_the_warning_points_at_the_code_that_imports_the_old_path():
    sys.modules.pop("dspy_turbo.keys", None)
    dspy_turbo.__dict__.pop("keys", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.import_module("dspy_turbo.keys")
    assert [w.filename for w in caught if issubclass(w.category, DeprecationWarning)] == [__file__]


def test_an_old_module_read_as_an_attribute_of_the_package_is_the_new_module():
    sys.modules.pop("dspy_turbo.tiered", None)
    dspy_turbo.__dict__.pop("tiered", None)
    with pytest.warns(DeprecationWarning, match="dspy_turbo.tiered moved to dspy_turbo.cache.tiered"):
        found = dspy_turbo.tiered
    assert found is importlib.import_module("dspy_turbo.cache.tiered")


@pytest.mark.parametrize(("old", "name", "new"), NOW_PACKAGES)
def test_the_names_of_an_old_module_that_is_now_a_package_warn_and_resolve(old, name, new):
    package = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"{re.escape(old)}\.{name} moved to {re.escape(new)}\.{name}"):
        found = getattr(package, name)
    assert found is getattr(importlib.import_module(new), name)
    with pytest.warns(DeprecationWarning, match=re.escape(new)):
        exec(f"from {old} import {name}", {})  # noqa: S102 - the form a published plugin uses


def test_python_m_on_the_old_path_of_the_loopback_server_still_runs():
    done = subprocess.run([sys.executable, "-m", "dspy_turbo.openai_server", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--latency" in done.stdout
    assert "dspy_turbo.openai_server moved to dspy_turbo.engines.openai_server" in done.stderr
