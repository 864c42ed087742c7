"""The tiered engine: order, promotion with remaining TTL, write-through, failing tiers."""

import time

import pytest

import dspy_turbo
from dspy_turbo.cache.breaker import CircuitBreaker


class Flaky(dspy_turbo.CacheBackend):
    """A memory-like tier that can be switched to fail or to be slow."""

    name = "flaky"

    def __init__(self, options=None):
        super().__init__(options)
        self.data, self.down, self.delay, self.gets = {}, False, 0.0, 0

    def get(self, key):
        self.gets += 1
        if self.down:
            raise ConnectionError("flaky is down")
        time.sleep(self.delay)
        return self.data.get(key, (None,))[0]

    def set(self, key, entry, ttl=None):
        if self.down:
            raise ConnectionError("flaky is down")
        self.data[key] = (entry, ttl)

    def delete(self, key):
        self.data.pop(key, None)

    def clear(self, prefix=""):
        doomed = [k for k in self.data if k.startswith(prefix)]
        for k in doomed:
            del self.data[k]
        return len(doomed)


class Plugin:
    @dspy_turbo.hookimpl
    def dspy_turbo_cache_backends(self):
        return [Flaky]


def two_tiers(make_turbo, **flaky_options):
    turbo = make_turbo({"cache": {"breaker": {"failures": 2, "cooldown": "1s"},
                                  "tiers": [{"type": "memory"}, {"type": "flaky", **flaky_options}]}}, plugins=[Plugin()])
    return turbo, turbo.cache.tiers[0].backend, turbo.cache.tiers[1].backend


def test_writes_go_through_and_reads_go_in_order(make_turbo):
    turbo, memory, flaky = two_tiers(make_turbo)
    turbo.store("k", {"v": 1})
    assert "k" in flaky.data and memory.get("k") is not None
    assert turbo.lookup("k") == {"v": 1}
    assert flaky.gets == 0, "a memory hit never reaches the slower tier"


def test_hit_in_lower_tier_promotes_with_remaining_ttl(make_turbo):
    turbo, memory, flaky = two_tiers(make_turbo)
    entry = dspy_turbo.Entry.create({"v": 2}, ttl=100)
    flaky.data["k"] = (entry, None)
    assert turbo.lookup("k") == {"v": 2}
    assert turbo.stats()["hits"] == {"flaky": 1}
    promoted_deadline = memory._data["k"][1]
    assert promoted_deadline == pytest.approx(entry.expires_at, abs=0.5), "promotion keeps the remaining TTL, never more"
    assert turbo.lookup("k") == {"v": 2}
    assert turbo.stats()["hits"] == {"flaky": 1, "memory": 1}


def test_per_tier_ttl(make_turbo):
    turbo, memory, flaky = two_tiers(make_turbo, ttl="1h")
    turbo.store("k", "v")
    assert flaky.data["k"][1] == pytest.approx(3600)


def test_failing_tier_is_skipped_then_breaker_opens_then_recovers(make_turbo):
    turbo, memory, flaky = two_tiers(make_turbo)
    flaky.down = True
    for i in range(5):
        assert turbo.lookup(f"missing-{i}") is None  # no exception reaches the caller
    assert flaky.gets == 2, "after 2 failures the breaker skips the tier"
    assert turbo.stats()["tiers"]["flaky"]["breaker"] == "open"
    assert turbo.stats()["errors"]["flaky"] == 2
    flaky.down = False
    time.sleep(1.1)
    turbo.lookup("after-cooldown")
    assert turbo.stats()["tiers"]["flaky"]["breaker"] == "closed"


def test_slow_tier_counts_as_failure(make_turbo):
    turbo, memory, flaky = two_tiers(make_turbo, timeout=0.01)
    flaky.delay = 0.05
    turbo.lookup("a")
    turbo.lookup("b")
    assert turbo.stats()["tiers"]["flaky"]["breaker"] == "open"


def test_expired_entry_in_a_tier_is_a_miss(make_turbo):
    turbo, memory, flaky = two_tiers(make_turbo)
    flaky.data["k"] = (dspy_turbo.Entry.create("old", ttl=0.01), None)
    time.sleep(0.05)
    assert turbo.lookup("k") is None
    assert "k" not in flaky.data


def test_clear_only_touches_the_namespace(make_turbo):
    turbo, memory, flaky = two_tiers(make_turbo)
    turbo.store(turbo.key({"q": 1}), "mine")
    flaky.data["other-app:v1:x"] = (dspy_turbo.Entry.create("theirs"), None)
    assert turbo.clear() == {"memory": 1, "flaky": 1}
    assert "other-app:v1:x" in flaky.data


def test_breaker_half_open_failure_reopens():
    clock = [0.0]
    breaker = CircuitBreaker(failures=1, cooldown=10, clock=lambda: clock[0])
    assert breaker.failure() is True and not breaker.allow()
    clock[0] = 11
    assert breaker.allow() and breaker.state == "half_open"
    assert not breaker.allow(), "only one trial call while half-open"
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()


def test_a_short_signing_key_is_a_config_error_that_does_not_echo_it(make_turbo):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"cache": {"signing_key": "hunter2"}})
    assert "cache.signing_key" in str(info.value) and "hunter2" not in str(info.value)
    turbo = make_turbo({"cache": {"signing_key": "", "tiers": [{"type": "memory"}]}})  # ${VAR:-} left empty: off
    assert turbo.cache.tiers[0].backend.signer is None


def test_the_signer_never_shows_its_key_and_binds_entries_to_their_key(make_turbo):
    secret = "a-signing-key-for-the-tiered-tests"
    turbo = make_turbo({"cache": {"signing_key": secret, "tiers": [{"type": "memory"}]}})
    signer = turbo.cache.tiers[0].backend.signer
    assert secret not in repr(signer) + repr(turbo.settings) + repr(turbo.config) + str(turbo.settings.model_dump())
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(signer)
    blob = dspy_turbo.Entry.create({"v": 1}).to_bytes()
    signed = signer.sign("ns:v1:a", blob)
    assert signer.verify("ns:v1:a", signed) == blob
    for key, data in [("ns:v1:b", signed), ("ns:v1:a", signed[:-1] + b"!"), ("ns:v1:a", blob), ("ns:v1:a", signed[:10])]:
        with pytest.raises(dspy_turbo.DecodeError):
            signer.verify(key, data)
