"""A real Turbo is the host the SDK declares (``dspy_turbo.plugin.host``), member by member.

What ``Host`` and ``FeatureHost`` say each member is for, on the real thing: the key parts
a component derives identifiers from, the default TTL, a store admitted as a response is,
the bus's synchronous handlers, and a feature's config and publishing.
"""

from __future__ import annotations

import xxhash

from dspy_turbo.plugin import Event, FeatureHost, Host, HostConfig
from dspy_turbo.plugin.host import EventBus, Tiers

REQUEST = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}


def test_the_turbo_is_a_feature_host_and_a_host(make_turbo):
    turbo = make_turbo({"namespace": "host-members", "cache": {"tiers": [{"type": "memory"}], "ttl": "1h"}})
    assert isinstance(turbo, FeatureHost) and isinstance(turbo, Host)
    assert isinstance(turbo.config, HostConfig) and isinstance(turbo.cache, Tiers) and isinstance(turbo.bus, EventBus)
    assert turbo.default_ttl == 3600.0


def test_key_material_and_key_prefix_make_the_key(make_turbo):
    turbo = make_turbo({"namespace": "host-members", "cache": {"tiers": [{"type": "memory"}]}})
    assert turbo.key_prefix.startswith("host-members:v") and turbo.key_prefix.endswith(":")
    material = turbo.key_material(REQUEST)
    assert isinstance(material, bytes)
    assert turbo.key(REQUEST) == turbo.key_prefix + xxhash.xxh3_128_hexdigest(material)
    # the host's key settings apply: an ignored field changes neither
    assert turbo.key_material({**REQUEST, "noise": 1}, ["noise"]) == material


def test_store_admits_a_value_as_a_response_is(make_turbo):
    turbo = make_turbo({"namespace": "host-members", "cache": {"tiers": [{"type": "memory"}]}})
    key = turbo.key({"question": "verdict"})
    assert turbo.store(key, {"verdict": "same"}, model="openai/gpt-4o-mini") is True
    entry = turbo.cache.get(key, count=False)
    assert entry.value == {"verdict": "same"} and entry.model == "openai/gpt-4o-mini"
    with turbo.read_only():
        assert turbo.store(turbo.key({"question": "other"}), {"verdict": "different"}) is False


def test_get_without_counting_the_miss_and_with_a_check(make_turbo):
    turbo = make_turbo({"namespace": "host-members", "cache": {"tiers": [{"type": "memory"}]}})
    seen = []
    turbo.bus.add("host-members", seen.append)
    key = turbo.key({"question": "absent"})
    assert turbo.cache.get(key, count_miss=False) is None
    assert [e.kind for e in seen] == [], "the miss is left to the caller"
    turbo.store(key, {"answer": "4"})
    assert turbo.cache.get(key, check=lambda entry: "wrong shape") is None, "a refused entry is a miss"
    assert turbo.cache.get(key, count=False) is None, "and is removed"
    turbo.bus.remove("host-members")
    turbo.bus.emit(Event("after_remove", namespace=turbo.namespace))
    assert "after_remove" not in [e.kind for e in seen]


def test_a_feature_reads_its_config_and_publishes(make_turbo):
    turbo = make_turbo({"namespace": "host-members", "cache": {"tiers": [{"type": "memory"}]}})
    assert [spec.cls.name for spec in turbo.config.tiers] == ["memory"]
    assert turbo.config.component("cache.semantic.index") is None and turbo.config.routing is None
    assert isinstance(turbo.config.source, str)
    marker = object()
    turbo.publish("host_members_probe", marker)
    assert turbo.features["host_members_probe"] is marker
    assert "hits" in turbo.stats()
