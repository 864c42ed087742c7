"""The plugin SDK (dspy_turbo.plugin): its surface, the old paths of what moved into it, the
host interface a real Turbo hands components, and the event table against real events."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading

import dspy
import pytest

import dspy_turbo
import dspy_turbo.plugin as sdk
from dspy_turbo.plugin import events as sdk_events
from dspy_turbo.plugin.backend import CacheBackend, Entry
from dspy_turbo.plugin.events import EVENTS, Event, problems
from dspy_turbo.plugin.host import EventBus, Host, Tiers

# Every distribution of the repository against the SDK and the event table.
pytestmark = pytest.mark.requires_plugin("file", "redis", "prometheus", "logsink", "batching", "faiss")

SUBMODULES = ["backend", "batch", "calls", "components", "coordination", "events", "host", "selector", "signatures", "similarity",
              "sink", "units"]


def test_every_name_the_sdk_lists_is_there():
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None, name
    for sub in SUBMODULES:
        module = importlib.import_module(f"dspy_turbo.plugin.{sub}")
        assert module.__doc__, f"dspy_turbo.plugin.{sub} documents its contract"
        for name in module.__all__:
            assert hasattr(module, name), f"dspy_turbo.plugin.{sub}.{name}"
    assert sdk.hookimpl is dspy_turbo.hookimpl and sdk.CacheBackend is dspy_turbo.CacheBackend


MOVED = [
    ("dspy_turbo.host.batching", "BatchOptions", "dspy_turbo.plugin.batch"),
    ("dspy_turbo.host.batching", "BatchStrategy", "dspy_turbo.plugin.batch"),
    ("dspy_turbo.host.batching", "Runner", "dspy_turbo.plugin.batch"),
    ("dspy_turbo.host.batching", "BatchError", "dspy_turbo.plugin.batch"),
    ("dspy_turbo.host.batching", "item_key", "dspy_turbo.cache.items"),
    ("dspy_turbo.ratelimit", "RateLimitSettings", "dspy_turbo.plugin.batch"),
    ("dspy_turbo.retry", "RetrySettings", "dspy_turbo.plugin.batch"),
    ("dspy_turbo.integration.call_dispatch", "tracking_spent", "dspy_turbo.plugin.calls"),
    # the batch machinery, moved into dspy-turbo-batching (imported only when read)
    ("dspy_turbo.host.batching", "Item", "dspy_turbo_batching.batch"),
    ("dspy_turbo.integration.call_dispatch", "CallPolicy", "dspy_turbo_batching.policy"),
    ("dspy_turbo.ratelimit", "RateLimiter", "dspy_turbo_batching.ratelimit"),
    ("dspy_turbo.retry", "RetryPolicy", "dspy_turbo_batching.retry"),
    ("dspy_turbo.retry", "is_transient", "dspy_turbo_batching.retry"),
    ("dspy_turbo.progress", "Progress", "dspy_turbo_batching.progress"),
    ("dspy_turbo.workers", "WorkerPool", "dspy_turbo_batching.workers"),
    ("dspy_turbo.plugin.batch", "WorkerPool", "dspy_turbo_batching.workers"),
    ("dspy_turbo.plugin", "WorkerPool", "dspy_turbo_batching.workers"),
    ("dspy_turbo.semantic", "SimilarityIndex", "dspy_turbo.plugin.similarity"),
    ("dspy_turbo.semantic", "Embedder", "dspy_turbo.plugin.similarity"),
    ("dspy_turbo.semantic", "ComponentUnavailable", "dspy_turbo.plugin.components"),
    ("dspy_turbo.verifier", "WordVectorEmbedder", "dspy_turbo.plugin.similarity"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_a_moved_contract_keeps_its_old_path_with_a_deprecation_warning(old, name, new):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to {new}\.{name}"):
        found = getattr(module, name)
    assert found is getattr(importlib.import_module(new), name)
    with pytest.warns(DeprecationWarning, match=new):
        exec(f"from {old} import {name}", {})  # noqa: S102 - the form a published plugin uses


def test_the_model_tier_has_its_own_name_and_the_old_one_warns():
    """Two classes were called ``Tier`` (a cache tier, a routing tier); the routing one is ModelTier now."""
    import dspy_turbo.routing.model_selection as routing
    from dspy_turbo.plugin.selector import ModelTier

    with pytest.warns(DeprecationWarning, match="dspy_turbo.plugin.selector.ModelTier"):
        old = routing.Tier
    assert old is ModelTier
    with pytest.warns(DeprecationWarning, match="ModelTier"):
        exec("from dspy_turbo.routing import Tier", {})  # noqa: S102 - the form a published plugin uses


def test_the_core_and_the_plugins_never_use_an_old_path():
    """Importing every plugin module and running a batch warns nothing about a moved name."""
    code = (
        "import dspy, dspy_turbo\n"
        "import dspy_turbo.testing, dspy_turbo_faiss.calibration, dspy_turbo_faiss.plugin\n"
        "import dspy_turbo_batching.thread, dspy_turbo_batching.asynchronous, dspy_turbo_batching.runner\n"
        "import dspy_turbo_batching.policy, dspy_turbo_faiss.index\n"
        "import dspy_turbo_faiss.embedder, dspy_turbo_faiss.onnx_runtime, dspy_turbo_file.backend\n"
        "import dspy_turbo_redis.backend, dspy_turbo_redis.coordinator, dspy_turbo_prometheus.sink\n"
        "import dspy_turbo_logsink.sink, dspy_turbo_sqlite_example.backend\n"
        "from dspy_turbo.engines.offline import offline_lm\n"
        "turbo = dspy_turbo.load({'cache': {'tiers': [{'type': 'memory'}]}})\n"
        "with dspy.context(lm=offline_lm()):\n"
        "    for strategy in ('thread', 'async'):\n"
        "        turbo.batch(dspy.Predict('question -> answer'), [{'question': 'q'}], strategy=strategy, progress=False)\n"
        "turbo.close()\n"
    )
    # Only the SDK's own deprecations are errors (other libraries may warn at import).
    done = subprocess.run([sys.executable, "-W", "error:dspy_turbo.:DeprecationWarning", "-c", code],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


# -- the host interface ------------------------------------------------------------------------


class _Probe(CacheBackend):
    """A tier that keeps the host it was built with (and nothing else)."""

    name = "sdk_probe"
    in_process = True
    hosts: list = []

    @classmethod
    def from_options(cls, options, host=None):
        cls.hosts.append(host)
        return cls(options)

    def __init__(self, options=None):
        super().__init__(options)
        self.data = {}

    def get(self, key):
        return self.data.get(key)

    def set(self, key, entry, ttl=None):
        self.data[key] = entry

    def delete(self, key):
        self.data.pop(key, None)

    def clear(self, prefix=""):
        gone = [k for k in self.data if k.startswith(prefix)]
        for key in gone:
            del self.data[key]
        return len(gone)


class _Registers:
    @dspy_turbo.hookimpl
    def dspy_turbo_cache_backends(self):
        return [_Probe]


def test_a_real_turbo_is_the_host_its_components_receive(make_turbo):
    _Probe.hosts.clear()
    turbo = make_turbo({"namespace": "sdk-host", "cache": {"tiers": [{"type": "memory"}, {"type": "sdk_probe"}]}},
                       plugins=[_Registers()])
    (host,) = _Probe.hosts
    assert host is turbo and isinstance(host, Host)
    assert isinstance(host.cache, Tiers) and isinstance(host.bus, EventBus)
    assert isinstance(host.coordinator, sdk.Coordinator)
    # What a component may do with it, on the real thing:
    key = host.key({"question": "What is 2 + 2?"})
    assert key.startswith("sdk-host:") and key == host.key({"question": "What is 2 + 2?"})
    assert host.key({"question": "What is 2 + 2?", "noise": 1}, ignored=["noise"]) == key
    assert [t.name for t in host.cache.tiers] == ["memory", "sdk_probe"]
    assert host.cache.put(key, Entry.create({"answer": "4"})) == 2
    assert host.cache.get(key).value == {"answer": "4"} and set(host.cache.get_many([key])) == {key}
    seen = []
    host.bus.add("sdk-test", seen.append)
    host.bus.emit(Event("sdk_plugin_kind", namespace=host.namespace))
    assert [e.kind for e in seen] == ["sdk_plugin_kind"]
    assert host.bus.dropped() == {}
    token = host.coordinator.try_lease("sdk-test", 1.0)
    assert token and host.coordinator.try_lease("sdk-test", 1.0) is None
    host.cache.delete(key)
    assert host.cache.get(key, count=False) is None


def test_a_metric_sink_must_handle_events():
    class NoCall(sdk.MetricSink):
        name = "nocall"

    with pytest.raises(TypeError, match="__call__"):
        NoCall()


# -- the event table ---------------------------------------------------------------------------


def test_the_table_holds_every_event_kind_the_core_defines():
    from dspy_turbo.events import alerts, profiling
    from dspy_turbo.events import bus as events
    from dspy_turbo_batching import batch, policy
    from dspy_turbo_faiss import semantic

    defined = {v for m in (events, semantic) for k, v in vars(m).items() if k.isupper() and isinstance(v, str)
               and not k.startswith("_") and k != "TIER"}
    defined |= {batch.BATCH, policy.RETRY, policy.RATE_LIMITED, profiling.TIMED, alerts.ALERT}
    assert defined == set(EVENTS)
    assert {v for k, v in vars(sdk_events).items() if k.isupper() and isinstance(v, str)} == set(EVENTS)
    for kind in EVENTS.values():
        assert kind.summary and kind.area in {"cache", "lm", "routing", "semantic", "batching", "monitoring"}


def test_problems_names_what_a_kind_does_not_set():
    assert problems(Event("miss", latency=0.1, key="k")) == []
    assert problems(Event("miss", tier="memory")) == ["miss: sets tier='memory', which the kind does not list"]
    assert problems(Event("store", tier="memory", reason="bogus"))
    assert problems(Event("hit", extra={"novel": 1}))
    assert problems(Event("a_plugins_own_kind", tier="x", extra={"y": 1})) == []


class _Failing(_Probe):
    name = "sdk_failing"

    def get(self, key):
        raise ConnectionError("the store is down")


class _RegistersFailing:
    @dspy_turbo.hookimpl
    def dspy_turbo_cache_backends(self):
        return [_Failing]


def test_events_of_real_calls_conform_to_the_table(make_turbo):
    """A real DSPy program through a Turbo (hits, misses, stores, evictions, single-flight, a
    failing tier and its breaker, routing, a batch, a timing): every event fits its kind's row."""
    from dspy_turbo.engines.offline import offline_lm

    tiers = [{"type": "memory", "max_entries": 3}, {"type": "sdk_failing"}]
    config = {"namespace": "sdk-events", "cache": {"tiers": tiers, "breaker": {"failures": 2}},
              "routing": {"type": "complexity", "tiers": [{"name": "small", "model": "openai/gpt-4o-mini"},
                                                          {"name": "large", "model": "openai/gpt-4o"}]}}
    turbo = make_turbo(config, plugins=[_RegistersFailing()]).install()
    seen: list[Event] = []
    turbo.bus.add("sdk-events", seen.append)
    lm = offline_lm(latency=0.05)
    program = dspy.Predict("question -> answer")
    with dspy.context(lm=lm, adapter=None):
        for q in ["a", "b", "c", "d", "d", "e"]:
            program(question=q)
        threads = [threading.Thread(target=program, kwargs={"question": "together", "lm": lm}) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        turbo.batch(program, [{"question": f"batch {i}"} for i in range(4)], strategy="thread", progress=False)
    with dspy.context(lm=turbo.router(lm_factory=lambda model, **kw: offline_lm(model, **kw)), adapter=None):
        program(question="Explain, step by step, why the proof holds.")
    with turbo.timed("block"):
        pass
    key = turbo.key({"unencodable": True})
    turbo.store(key, threading.Lock())
    turbo.flush_events()
    kinds = {e.kind for e in seen}
    assert {"hit", "miss", "store", "evict", "error", "breaker", "lm_call", "coalesced", "batch", "route",
            "timed", "skip_store"} <= kinds, kinds
    assert [p for e in seen for p in problems(e)] == []
