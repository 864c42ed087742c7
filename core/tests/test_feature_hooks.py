"""Features plug in through hooks: a plugin's config section, its stats block, its part of
reset_stats/clear/invalidate/close. One that raises is reported, never raised, and every
other implementation still runs (pluggy alone stops a call at the first exception)."""

from __future__ import annotations

import pytest

import dspy_turbo
from dspy_turbo import hookimpl
from dspy_turbo.plugin import ConfigSection, Options


class Gauge(Options):
    level: int = 1
    """A level."""


class Feature:
    """A well-behaved feature plugin with a section, a stats block and a clear of its own."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def dspy_turbo_config_sections(self):
        return [ConfigSection("gauge", Gauge, default=Gauge(), doc="A gauge.")]

    @hookimpl
    def dspy_turbo_stats(self, turbo):
        return {"gauge": {"level": turbo.config.section("gauge").level}}

    @hookimpl
    def dspy_turbo_reset_stats(self):
        self.calls.append("reset")

    @hookimpl
    def dspy_turbo_clear(self, removed, tier):
        removed["gauge"] = 7
        self.calls.append(("clear", tier))

    @hookimpl
    def dspy_turbo_invalidate(self, prefix, namespace, tag, tier, removed):
        self.calls.append(("invalidate", prefix, namespace, tag, tier))

    @hookimpl
    def dspy_turbo_shutdown(self):
        self.calls.append("shutdown")


class Broken:
    """A feature plugin whose every hook raises."""

    @hookimpl
    def dspy_turbo_stats(self):
        raise RuntimeError("stats broke")

    @hookimpl
    def dspy_turbo_reset_stats(self):
        raise RuntimeError("reset broke")

    @hookimpl
    def dspy_turbo_clear(self):
        raise RuntimeError("clear broke")

    @hookimpl
    def dspy_turbo_invalidate(self):
        raise RuntimeError("invalidate broke")

    @hookimpl
    def dspy_turbo_shutdown(self):
        raise RuntimeError("shutdown broke")


class Events:
    def __init__(self):
        self.seen = []

    @hookimpl
    def dspy_turbo_metric_event(self, event):
        self.seen.append(event)


def test_a_plugin_section_and_stats_block_and_its_part_of_clear_and_invalidate():
    feature = Feature()
    turbo = dspy_turbo.load({"namespace": "feat", "gauge": {"level": 3}}, plugins=[feature], entry_points=False)
    assert turbo.settings.gauge.level == 3
    assert turbo.stats()["gauge"] == {"level": 3}
    turbo.reset_stats()
    assert turbo.clear()["gauge"] == 7
    turbo.invalidate(tag="t")
    turbo.close()
    assert feature.calls == ["reset", ("clear", None), ("invalidate", "feat:v2:", None, "t", None), "shutdown"]


def test_a_raising_feature_hook_is_an_error_event_and_the_others_still_run(caplog):
    feature, events = Feature(), Events()
    # registered after Feature: pluggy calls Broken first, and would stop there
    turbo = dspy_turbo.load({"namespace": "feat"}, plugins=[feature, Broken(), events], entry_points=False)
    assert turbo.stats()["gauge"] == {"level": 1}
    turbo.reset_stats()
    assert turbo.clear() == {"memory": 0, "gauge": 7}
    turbo.invalidate()
    turbo.close()
    assert feature.calls == ["reset", ("clear", None), ("invalidate", "feat:v2:", None, None, None), "shutdown"]
    failed = {(e.reason, e.extra["component"], e.error) for e in events.seen if e.kind == "error"}
    assert failed == {(f"dspy_turbo_{hook}", "Broken", f"RuntimeError: {hook.replace('_stats', '')} broke")
                      for hook in ("stats", "reset_stats", "clear", "invalidate", "shutdown")}
    assert "plugin 'Broken': dspy_turbo_clear raised RuntimeError: clear broke" in caplog.text


def test_a_misspelt_key_in_a_plugin_section_and_an_unregistered_section_are_config_errors():
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"gauge": {"levle": 2}}, plugins=[Feature()], entry_points=False)
    (issue,) = info.value.issues
    assert issue.path == "gauge.levle" and "did you mean 'level'?" in issue.message
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"gauge": {"level": 2}}, entry_points=False)
    (issue,) = info.value.issues
    assert issue.path == "gauge" and "unknown key 'gauge'" in issue.message


class Clash:
    def __init__(self, path):
        self.path = path

    @hookimpl
    def dspy_turbo_config_sections(self):
        return [ConfigSection(self.path, Gauge)]


@pytest.mark.parametrize(("path", "words"), [
    ("gauge", "declared twice: by plugin"),
    ("namespace", "is a key of the core's own"),
    ("cache.ttl", "is a key of the core's own"),
    ("namespace.inner", "must be a top-level key or a key inside one of"),
])
def test_a_section_that_clashes_is_a_plugin_error(path, words):
    with pytest.raises(dspy_turbo.PluginError, match=words):
        dspy_turbo.load(plugins=[Feature(), Clash(path)], entry_points=False)


class Indexed(Options):
    store: dict = {}
    """A component block."""


class WithComponent:
    @hookimpl
    def dspy_turbo_config_sections(self):
        return [ConfigSection("indexed", Indexed, components={"store": "cache_backend"})]


def test_a_component_block_inside_a_section_is_resolved_and_checked():
    config = dspy_turbo.load({"indexed": {"store": {"type": "memory", "max_bytes": "1MB"}}},
                             plugins=[WithComponent()], entry_points=False).config
    spec = config.component("indexed.store")
    assert spec.cls.name == "memory" and spec.path == "indexed.store"
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"indexed": {"store": {"type": "memroy"}}}, plugins=[WithComponent()], entry_points=False)
    (issue,) = info.value.issues
    assert issue.path == "indexed.store.type" and "did you mean 'memory'?" in issue.message


def test_a_feature_cannot_publish_over_a_turbo_attribute():
    turbo = dspy_turbo.load(entry_points=False)
    try:
        with pytest.raises(ValueError, match="'cache'"):
            turbo.publish("cache", object())
        assert set(turbo.features) >= {"semantic", "alerts", "timings", "invalidations"}
        assert turbo.semantic is None and turbo.features["semantic"] is None
    finally:
        turbo.close()

