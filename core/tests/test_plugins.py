"""The plugin host: registration, policy hooks, event broadcast, start-up checks."""

import dspy
import pytest

import dspy_turbo
from dspy_turbo.cache.memory import MemoryBackend
from dspy_turbo.cli import main as cli


class OtherMemory(MemoryBackend):
    pass


def test_duplicate_component_name_names_both_plugins():
    class Dup:
        @dspy_turbo.hookimpl
        def dspy_turbo_cache_backends(self):
            return [OtherMemory]

    with pytest.raises(dspy_turbo.PluginError) as info:
        dspy_turbo.load(plugins=[Dup()])
    assert "dspy_turbo.builtin" in str(info.value) and "Dup" in str(info.value)


def test_misspelt_hook_is_a_startup_error():
    class Typo:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_evnt(self, event):
            pass

    with pytest.raises(dspy_turbo.PluginError, match="did you mean 'dspy_turbo_metric_event'"):
        dspy_turbo.load(plugins=[Typo()])


def test_wrong_kind_from_a_registration_hook():
    class Wrong:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_sinks(self):
            return [MemoryBackend]

    with pytest.raises(dspy_turbo.PluginError, match="this hook takes metric_sink"):
        dspy_turbo.load(plugins=[Wrong()])


def test_metric_events_broadcast_and_a_failing_sink_is_isolated(make_turbo, lm):
    seen = []

    class Broken:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_event(self, event):
            raise RuntimeError("sink down")

    class Recorder:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_event(self, event):
            seen.append(event.kind)

    turbo = make_turbo(None, plugins=[Broken(), Recorder()]).install()
    lm("hello")
    lm("hello")
    assert turbo.flush_events(5), "sinks run on background threads: wait for them"
    assert {"miss", "lm_call", "store", "hit"} <= set(seen)
    assert turbo.stats()["lm_calls"] == 1, "the in-process stats sink still counts"
    assert sum(turbo.stats()["sink_errors"].values()) >= 4


def test_metric_sink_component_from_yaml(make_turbo, lm):
    received = []

    class ListSink(dspy_turbo.Component):
        name, kind = "list", "metric_sink"

        def __call__(self, event):
            received.append(event)

    class Plugin:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_sinks(self):
            return [ListSink]

    turbo = make_turbo({"metrics": {"sinks": [{"type": "list"}]}}, plugins=[Plugin()]).install()
    lm("x")
    assert turbo.flush_events(5)
    call = next(e for e in received if e.kind == "lm_call")
    assert call.model == "openai/gpt-4o-mini" and call.tokens > 0 and call.cost > 0 and call.latency >= 0


def test_should_store_veto_and_force(make_turbo):
    from dspy_turbo.engines.offline import offline_lm

    class Policy:
        @dspy_turbo.hookimpl
        def dspy_turbo_should_store(self, request, reason):
            if "secret" in str(request.get("messages")):
                return False
            if reason == "truncated":
                return True
            return None

    turbo = make_turbo(None, plugins=[Policy()]).install()
    cut = offline_lm(finish_reason="length")
    with dspy.context(lm=cut):
        cut("long story")
        cut("long story")
        cut("a secret")
        cut("a secret")
    assert cut.engine.calls == 3, "truncated forced into the cache; the secret vetoed"
    assert turbo.stats()["skipped_stores"] == {"vetoed": 2}


def test_wrap_backend_and_lifecycle_hooks(make_turbo):
    log = []

    class Tracing:
        def __init__(self, inner):
            self.inner, self.name = inner, inner.name

        def __getattr__(self, attr):
            return getattr(self.inner, attr)

        def get(self, key):
            log.append(("get", key))
            return self.inner.get(key)

    class Plugin:
        @dspy_turbo.hookimpl
        def dspy_turbo_wrap_backend(self, backend):
            return Tracing(backend)

        @dspy_turbo.hookimpl
        def dspy_turbo_startup(self, turbo):
            log.append("startup")

        @dspy_turbo.hookimpl
        def dspy_turbo_shutdown(self, turbo):
            log.append("shutdown")

    turbo = make_turbo(None, plugins=[Plugin()])
    turbo.lookup("k")
    turbo.close()
    assert log == ["startup", ("get", "k"), "shutdown"]


def test_env_filter_limits_entry_point_plugins(monkeypatch, capsys):
    monkeypatch.setenv("DSPY_TURBO_PLUGINS", "")
    assert cli(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "dspy_turbo.builtin" in out and "cache_backend: memory" in out
    assert "sqlite_example" not in out


@pytest.mark.requires_plugin("sqlite_example")
def test_entry_point_plugins_are_listed_with_version_and_components(capsys):
    assert cli(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "sqlite_example  [dspy-turbo-sqlite-example 0.1.0]" in out
    assert "cache_backend: sqlite" in out
