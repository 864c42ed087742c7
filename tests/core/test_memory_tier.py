import pytest

from dspy_turbo import Entry
from dspy_turbo.memory import MemoryBackend
from dspy_turbo.testing import CacheBackendSuite


class TestMemoryConformance(CacheBackendSuite):
    @pytest.fixture
    def backend(self):
        return MemoryBackend()


def test_byte_bound_evicts_least_recently_used():
    entry = Entry.create({"text": "x" * 1000})
    backend = MemoryBackend(MemoryBackend.Options(max_bytes=entry.size * 3))
    evicted = []
    backend.on_evict = evicted.append
    for key in "abc":
        backend.set(key, Entry.create({"text": "x" * 1000}))
    backend.get("a")  # a is now the most recently used
    backend.set("d", Entry.create({"text": "x" * 1000}))
    assert evicted == ["b"]
    assert backend.get("b") is None and backend.get("a") is not None
    assert backend.bytes_used <= entry.size * 3


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
