import pytest

from dspy_turbo import Entry
from dspy_turbo.memory import MemoryBackend
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
