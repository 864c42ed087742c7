"""Conformance tests every cache backend must pass. Third-party authors subclass these.

    # tests/test_my_backend.py
    import pytest
    from dspy_turbo.testing import CacheBackendSuite

    class TestMyBackend(CacheBackendSuite):
        @pytest.fixture
        def backend(self, tmp_path):
            b = MyBackend(MyBackend.Options(path=str(tmp_path / "db")))
            yield b
            b.close()

Optional fixtures: ``corrupt`` (a callable ``corrupt(backend, key)`` that damages the
stored bytes of ``key`` in place; the corrupt-entry test is skipped without it).
Each test documents the rule it checks; ``dspy_turbo.backend`` lists them all.
"""

from __future__ import annotations

import threading
import time

import pytest

from .backend import CacheBackend
from .entry import Entry


def _entry(value=None, **kwargs) -> Entry:
    return Entry.create(value if value is not None else {"answer": "42", "n": [1, 2, 3]}, **kwargs)


class CacheBackendSuite:
    """The contract of :class:`dspy_turbo.backend.CacheBackend`."""

    @pytest.fixture
    def backend(self) -> CacheBackend:  # pragma: no cover - subclasses provide it
        raise NotImplementedError("provide a `backend` fixture that builds your backend")

    @pytest.fixture
    def corrupt(self):
        return None

    def test_is_a_cache_backend_with_a_name(self, backend):
        assert isinstance(backend, CacheBackend)
        assert backend.name and backend.name == backend.name.lower()

    def test_missing_key_is_none(self, backend):
        assert backend.get("conformance:missing") is None

    def test_set_then_get_roundtrips_value_and_metadata(self, backend):
        entry = _entry(usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}, cost=0.25,
                       model="openai/gpt-4o-mini", tags=("t1",))
        backend.set("conformance:a", entry)
        got = backend.get("conformance:a")
        assert got is not None
        assert got.value == {"answer": "42", "n": [1, 2, 3]}
        assert got.usage["total_tokens"] == 7 and got.cost == 0.25
        assert got.model == "openai/gpt-4o-mini" and tuple(got.tags) == ("t1",)

    def test_overwrite_replaces(self, backend):
        backend.set("conformance:a", _entry({"v": 1}))
        backend.set("conformance:a", _entry({"v": 2}))
        assert backend.get("conformance:a").value == {"v": 2}

    def test_keys_are_independent(self, backend):
        backend.set("conformance:a", _entry({"v": "a"}))
        backend.set("conformance:b", _entry({"v": "b"}))
        assert backend.get("conformance:a").value == {"v": "a"}
        assert backend.get("conformance:b").value == {"v": "b"}

    def test_delete_removes_and_missing_delete_is_fine(self, backend):
        backend.set("conformance:a", _entry())
        backend.delete("conformance:a")
        assert backend.get("conformance:a") is None
        backend.delete("conformance:never-set")

    def test_ttl_expires(self, backend):
        backend.set("conformance:short", _entry(), ttl=1.0)
        backend.set("conformance:long", _entry())
        assert backend.get("conformance:short") is not None
        time.sleep(1.3)
        assert backend.get("conformance:short") is None
        assert backend.get("conformance:long") is not None

    def test_entry_expiry_is_honoured_without_tier_ttl(self, backend):
        backend.set("conformance:e", _entry(ttl=1.0))
        time.sleep(1.3)
        got = backend.get("conformance:e")
        assert got is None or got.expired()  # the engine treats an expired entry as a miss

    def test_clear_by_prefix(self, backend):
        backend.set("ns1:v1:a", _entry())
        backend.set("ns1:v1:b", _entry())
        backend.set("ns2:v1:a", _entry())
        assert backend.clear("ns1:") == 2
        assert backend.get("ns1:v1:a") is None and backend.get("ns1:v1:b") is None
        assert backend.get("ns2:v1:a") is not None

    def test_a_read_value_is_the_readers_own(self, backend):
        """A caller that mutates what it read changes nothing another read sees."""
        backend.set("conformance:own", _entry())
        for read in (lambda: backend.get("conformance:own"), lambda: backend.get_many(["conformance:own"])["conformance:own"]):
            mine = read().copy_value()
            mine["answer"] = "changed"
            mine["n"].append(4)
            assert read().copy_value() == {"answer": "42", "n": [1, 2, 3]}

    def test_get_many(self, backend):
        backend.set("conformance:x", _entry({"v": "x"}))
        backend.set("conformance:y", _entry({"v": "y"}))
        found = backend.get_many(["conformance:x", "conformance:nope", "conformance:y"])
        assert set(found) == {"conformance:x", "conformance:y"}
        assert found["conformance:y"].value == {"v": "y"}

    def test_unicode_and_large_values(self, backend):
        value = {"text": "naïve café ✓ 日本語 " * 2000, "nested": {"list": list(range(500))}}
        backend.set("conformance:big", _entry(value))
        assert backend.get("conformance:big").value == value

    def test_model_response_comes_back_as_model_response(self, backend):
        litellm = pytest.importorskip("litellm")
        response = litellm.ModelResponse(
            id="r1", model="gpt-4o-mini",
            choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hello"}}],
            usage={"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        )
        backend.set("conformance:mr", _entry(response))
        got = backend.get("conformance:mr").value
        assert isinstance(got, litellm.ModelResponse)
        assert got.choices[0].message.content == "hello" and got.usage.total_tokens == 6

    def test_corrupt_entry_is_a_miss_not_an_exception(self, backend, corrupt):
        if corrupt is None:
            pytest.skip("no `corrupt` fixture: this backend does not store bytes")
        reported = []
        backend.on_corrupt = lambda key, error: reported.append(key)
        backend.set("conformance:c", _entry())
        corrupt(backend, "conformance:c")
        assert backend.get("conformance:c") is None
        assert reported == ["conformance:c"], "an undecodable value must be reported through on_corrupt"
        assert backend.get("conformance:c") is None and reported == ["conformance:c"], "and deleted"

    def test_delete_tagged_removes_only_tagged_entries_under_the_prefix(self, backend):
        backend.set("ns1:v1:a", _entry(tags=("faq", "v2")))
        backend.set("ns1:v1:b", _entry(tags=("other",)))
        backend.set("ns1:v1:c", _entry())
        backend.set("ns2:v1:a", _entry(tags=("faq",)))
        assert backend.delete_tagged("ns1:", "faq") == 1
        assert backend.get("ns1:v1:a") is None
        assert backend.get("ns1:v1:b") is not None and backend.get("ns1:v1:c") is not None
        assert backend.get("ns2:v1:a") is not None

    def test_concurrent_writers_and_readers(self, backend):
        errors = []

        def work(worker: int) -> None:
            try:
                for i in range(50):
                    key = f"conformance:w{worker}:{i}"
                    backend.set(key, _entry({"w": worker, "i": i}))
                    got = backend.get(key)
                    assert got is not None and got.value == {"w": worker, "i": i}
            except Exception as exc:  # collected: assertion errors in threads do not fail the test
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
