"""An installed third-party plugin that is broken (does not import, misspells a hook) is
reported and skipped: ``load()`` and the CLI go on unless the config uses what it provides.
The plugins are real distributions on ``sys.path`` (a ``.dist-info`` with an entry point in
the ``dspy_turbo`` group), found by importlib.metadata as any installed plugin is."""

import logging
import os
import subprocess
import sys
import textwrap

import pytest

import dspy_turbo
from dspy_turbo.host import plugin_manager as plugins


def _distribution(root, name, module, code):
    """A distribution ``name`` whose entry point ``name`` is ``module`` with ``code``."""
    (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[dspy_turbo]\n{module} = {module}\n")


@pytest.fixture
def broken_site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    _distribution(root, "turbo-broken-import", "turbo_broken_import", "import a_module_that_is_not_installed\n")
    _distribution(root, "turbo-typo-hook", "turbo_typo_hook", """
        import dspy_turbo

        @dspy_turbo.hookimpl
        def dspy_turbo_metric_evnt(event):
            pass
    """)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(plugins, "_warned", set(), raising=False)
    return root


def test_broken_plugins_are_reported_and_skipped(broken_site, caplog, make_turbo):
    with caplog.at_level(logging.WARNING, "dspy_turbo.plugins"):
        turbo = make_turbo()  # no exception: the config uses neither
        make_turbo()
    assert turbo.cache.tiers[0].name == "memory"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, "once per plugin and process, not per load()"
    imported, typo = sorted(warnings)
    assert "'turbo_broken_import'" in imported and "turbo-broken-import" in imported
    assert "ModuleNotFoundError" in imported and "DSPY_TURBO_PLUGINS" in imported
    assert "did you mean 'dspy_turbo_metric_event'" in typo

    class Typo:  # the program's own plugin is held to the check: an error, as before
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_evnt(self, event):
            pass

    with pytest.raises(dspy_turbo.PluginError, match="did you mean 'dspy_turbo_metric_event'"):
        dspy_turbo.load(plugins=[Typo()])


def test_a_config_that_needs_a_broken_plugin_says_why(broken_site):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"cache": {"tiers": [{"type": "notinstalled"}]}})
    message = str(info.value)
    assert "installed plugins not loaded: 'turbo_broken_import' failed to load (ModuleNotFoundError" in message


def test_the_cli_runs_beside_a_broken_plugin(broken_site):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken_site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "dspy_turbo.cli", "plugins"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "dspy_turbo.builtin" in done.stdout
    assert "turbo_broken_import" in done.stderr and "skipped" in done.stderr


@pytest.mark.requires_plugin("file")
def test_a_filter_naming_no_installed_plugin_warns(monkeypatch, caplog, make_turbo):
    monkeypatch.setattr(plugins, "_warned", set(), raising=False)
    monkeypatch.setenv("DSPY_TURBO_PLUGINS", "fiel")
    with caplog.at_level(logging.WARNING, "dspy_turbo.plugins"):
        make_turbo()
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "DSPY_TURBO_PLUGINS names 'fiel', which no installed plugin is called; did you mean 'file'?" in message
