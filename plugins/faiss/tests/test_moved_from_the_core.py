"""The semantic cache moved from the core into this distribution: what the core's tests checked
of it (its section's wording, its hooks' name, calibrate's config option) and the old import paths."""

import importlib

import click
import pytest

import dspy_turbo
import dspy_turbo_faiss.plugin
from dspy_turbo.cli import build_cli
from dspy_turbo.plugin import ConfigSection, Options, hookimpl


class Gauge(Options):
    level: int = 0


class Clash:
    @hookimpl
    def dspy_turbo_config_sections(self):
        return [ConfigSection("cache.semantic", Gauge)]


def test_a_section_that_clashes_with_the_semantic_cache_is_a_plugin_error():
    with pytest.raises(dspy_turbo.PluginError, match="declared twice: by plugin 'Clash' and by plugin 'dspy_turbo_faiss.plugin'"):
        dspy_turbo.load(plugins=[dspy_turbo_faiss.plugin, Clash()], entry_points=False)


def test_the_semantic_section_s_messages_use_the_file_s_words():
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"cache": {"semantic": 5, "tiers": [{"type": "memory"}]}})
    found = {issue.path: issue.message for issue in info.value.issues}
    assert found == {"cache.semantic": "expected a mapping of settings (key: value lines), got a number"}


def test_without_a_semantic_section_the_feature_publishes_none():
    turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}]}})
    try:
        assert turbo.semantic is None and turbo.features["semantic"] is None
        assert "semantic" not in turbo.stats()
    finally:
        turbo.close()


def test_calibrate_takes_the_config_option_as_every_config_command():
    group = build_cli()
    option = lambda name: [p for p in group.commands[name].params if isinstance(p, click.Option) and "--config" in p.opts]  # noqa: E731
    (mine,), (theirs,) = option("calibrate"), option("check")
    assert mine.opts == ["-c", "--config"] and mine.help == theirs.help and mine.envvar == theirs.envvar


def test_the_semantic_settings_old_import_path_warns_and_still_works():
    from dspy_turbo_faiss.feature import SemanticSettings

    with pytest.warns(DeprecationWarning, match="moved to dspy_turbo_faiss.feature.SemanticSettings"):
        from dspy_turbo.config import SemanticSettings as old
    assert old is SemanticSettings


@pytest.mark.parametrize(("old", "new", "name"), [
    ("dspy_turbo.semantic", "dspy_turbo_faiss.semantic", "SemanticCache"),
    ("dspy_turbo.semantic", "dspy_turbo_faiss.semantic", "rejection"),
    ("dspy_turbo.guards", "dspy_turbo_faiss.guards", "guard_reason"),
    ("dspy_turbo.judge", "dspy_turbo_faiss.judge", "Judge"),
    ("dspy_turbo.calibration", "dspy_turbo_faiss.calibration", "sweep"),
    ("dspy_turbo.verifier", "dspy_turbo_faiss.verifier", "Verifier"),
    ("dspy_turbo.replication", "dspy_turbo_faiss.replication", "IndexReplication"),
    ("dspy_turbo.micro_batcher", "dspy_turbo_faiss.micro_batcher", "MicroBatcher"),
    ("dspy_turbo.features.semantic", "dspy_turbo_faiss.feature", "SemanticSettings"),
])
def test_the_old_paths_warn_and_give_the_moved_names(old, new, name):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        found = getattr(module, name)
    assert found is getattr(importlib.import_module(new), name)


def test_the_semantic_section_with_the_plugin_left_out_says_why(monkeypatch):
    monkeypatch.setenv("DSPY_TURBO_PLUGINS", "")
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}], "semantic": {"threshold": 0.9}}})
    (issue,) = info.value.issues
    assert issue.path == "cache.semantic"
    assert issue.message.startswith("the semantic cache (cache.semantic) is provided by dspy-turbo-faiss; dspy-turbo-faiss "
                                    "is installed, but its plugin 'faiss' is left out by DSPY_TURBO_PLUGINS="), issue.message
