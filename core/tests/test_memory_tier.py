import pytest

import dspy_turbo
from dspy_turbo import Entry
from dspy_turbo.cache.memory import MemoryBackend
from dspy_turbo.testing import CacheBackendSuite


class TestMemoryConformance(CacheBackendSuite):
    @pytest.fixture
    def backend(self):
        return MemoryBackend()


def test_byte_bound_evicts_least_recently_used():
    # Encoded sizes differ by a byte or two (the timestamp), so bound by the largest.
    entries = {key: Entry.create({"text": "x" * 1000}) for key in "abcd"}
    bound = 3 * max(e.size for e in entries.values())
    assert sum(e.size for e in entries.values()) > bound, "four entries must not fit"
    backend = MemoryBackend(MemoryBackend.Options(max_bytes=bound))
    evicted = []
    backend.on_evict = evicted.append
    for key in "abc":
        backend.set(key, entries[key])
    backend.get("a")  # a is now the most recently used
    backend.set("d", entries["d"])
    assert evicted == ["b"]
    assert backend.get("b") is None and backend.get("a") is not None
    assert backend.bytes_used <= bound


def test_entry_bound():
    backend = MemoryBackend(MemoryBackend.Options(max_entries=2, max_bytes=None))
    for key in "abc":
        backend.set(key, Entry.create(key))
    assert len(backend) == 2 and backend.get("a") is None


def test_value_larger_than_the_bound_is_not_stored():
    backend = MemoryBackend(MemoryBackend.Options(max_bytes=100))
    backend.set("small", Entry.create("s"))
    backend.set("big", Entry.create("x" * 1000))
    assert backend.get("big") is None and backend.get("small") is not None


# -- an entry larger than a tier's max_bytes: not stored, and said so -----------------------


def _recording(make_turbo, config):
    events = []

    class Recorder:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_event(self, event):
            events.append(event)

    return make_turbo(config, plugins=[Recorder()]), events


def test_an_entry_larger_than_max_bytes_is_a_skip_store_event_not_a_store(make_turbo):
    turbo, events = _recording(make_turbo, {"cache": {"tiers": [
        {"type": "memory", "name": "small", "max_bytes": "1KB"},
        {"type": "memory", "name": "big", "max_bytes": "1MB"}]}})
    assert turbo.store("k", {"text": "x" * 5000}) is True, "the big tier took it"
    assert turbo.flush_events(5)
    stats = turbo.stats()
    assert stats["stores"] == {"big": 1}, "the small tier kept nothing and does not count as a store"
    assert stats["skipped_stores"] == {"too_large": 1}
    skipped = [e for e in events if e.kind == "skip_store"]
    assert [(e.tier, e.reason) for e in skipped] == [("small", "too_large")]
    assert skipped[0].extra["max_bytes"] == 1024 and skipped[0].extra["size"] > 1024
    assert len(turbo.cache.tiers[0].backend) == 0
    # a hit in the big tier is not promoted into the small one either, and says so again
    assert turbo.lookup("k") == {"text": "x" * 5000}
    assert turbo.stats()["hits"] == {"big": 1} and turbo.stats()["skipped_stores"] == {"too_large": 2}


def test_an_oversized_value_replacing_a_small_one_leaves_no_stale_value(make_turbo):
    turbo, _ = _recording(make_turbo, {"cache": {"tiers": [{"type": "memory", "max_bytes": "1KB"}]}})
    assert turbo.store("k", {"text": "old"})
    assert turbo.store("k", {"text": "x" * 5000}) is False, "no tier kept the new value"
    assert turbo.lookup("k") is None, "the old value must not be served in place of the new one"


def test_an_lm_answer_larger_than_the_tier_is_reported_and_the_program_still_works(make_turbo, lm):
    import dspy

    turbo, events = _recording(make_turbo, {"cache": {"tiers": [{"type": "memory", "max_bytes": "200B"}]}})
    turbo.install()
    program = dspy.Predict("question -> answer")
    first = program(question="What is too large to cache?")
    assert program(question="What is too large to cache?").answer == first.answer
    assert lm.engine.calls == 2, "nothing was stored, so the second call went to the LM"
    stats = turbo.stats()
    assert stats["stores"] == {} and stats["skipped_stores"] == {"too_large": 2}


def test_an_entry_whose_expiry_has_passed_is_not_stored_and_said_so(make_turbo):
    turbo, events = _recording(make_turbo, {"cache": {"tiers": [{"type": "memory"}]}})
    assert turbo.store("k", {"v": 1}, ttl=1e-12) is False  # expires the instant it is made
    assert turbo.flush_events(5)
    assert turbo.stats()["stores"] == {} and turbo.stats()["skipped_stores"] == {"expired": 1}
    assert [(e.tier, e.reason) for e in events if e.kind == "skip_store"] == [("memory", "expired")]
