"""Conformance tests every cache backend must pass. Third-party authors subclass these
(the example: ``dspy_turbo.testing``).

Optional fixtures: ``corrupt`` (a callable ``corrupt(backend, key)`` that damages the
stored bytes of ``key`` in place; the corrupt-entry test is skipped without it).
Each test documents the rule it checks; ``dspy_turbo.plugin.backend`` lists them all. A backend
whose entries live outside this process (``in_process`` False) must store what
``encode_entry`` gives and read through ``decode_entry``: the signing tests check that.
"""

from __future__ import annotations

import threading
import time

import pytest

from ..plugin.backend import CacheBackend, Entry, Signer


def _entry(value=None, **kwargs) -> Entry:
    return Entry.create(value if value is not None else {"answer": "42", "n": [1, 2, 3]}, **kwargs)


class CacheBackendSuite:
    """The contract of :class:`dspy_turbo.plugin.backend.CacheBackend`."""

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

    @pytest.mark.parametrize("prefix", ["n*:", "n?:", "n[s]:", "n%:", "n_:", "n\\:", "n.:", "n^$:"])
    def test_clear_takes_the_prefix_literally(self, backend, prefix):
        """No glob, ``LIKE`` or regex: a prefix with ``*``, ``?``, ``[]``, ``%``, ``_`` or ``\\``
        removes only the keys that start with exactly those characters."""
        mine = [f"{prefix}v1:a", f"{prefix}v1:b"]
        others = ["ns:v1:a", "n:v1:a", "nx:v1:a", "n.:v1:x" if prefix != "n.:" else "nx.:v1:a",
                  prefix[:-1] + "x:v1:a", prefix.replace(prefix[1], "\\" + prefix[1], 1) + "v1:a"]
        others = [k for k in others if not k.startswith(prefix)]
        for key in mine + others:
            backend.set(key, _entry({"key": key}))
        removed = backend.clear(prefix)
        assert [k for k in others if backend.get(k) is None] == [], "clear() removed keys outside its prefix"
        assert [k for k in mine if backend.get(k) is not None] == [] and removed == len(mine)
        assert backend.delete_tagged(prefix, "none") == 0 and all(backend.get(k) is not None for k in others)

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

    def test_entries_of_several_megabytes(self, backend):
        """A long answer (a whole document, many choices) comes back whole, alone and in bulk,
        and replaces and is replaced by a small one."""
        big = {"text": "".join(f"line {i}: naïve ✓ 日本語\n" for i in range(200_000)), "n": list(range(50_000))}
        assert Entry.create(big).size > 5_000_000
        whole = "a long entry must come back whole"
        backend.set("conformance:huge", _entry(big))
        got = backend.get("conformance:huge")
        assert got is not None and got.value == big, whole
        got = backend.get_many(["conformance:huge"]).get("conformance:huge")
        assert got is not None and got.value == big, whole
        backend.set("conformance:huge", _entry({"v": "small"}))
        assert backend.get("conformance:huge").value == {"v": "small"}
        backend.set("conformance:huge", _entry(big))
        got = backend.get("conformance:huge")
        assert got is not None and got.value == big, whole
        backend.delete("conformance:huge")
        assert backend.get("conformance:huge") is None

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

    # -- entries(prefix): optional, for listings and exports ---------------------------------

    @staticmethod
    def _listed(backend, prefix: str) -> dict:
        try:
            found = list(backend.entries(prefix))
        except NotImplementedError:
            pytest.skip("entries() is optional: this backend cannot list its entries")
        keys = [key for key, _ in found]
        assert len(keys) == len(set(keys)), "entries() yielded a key twice"
        return dict(found)

    def test_entries_lists_the_live_entries_under_the_prefix(self, backend):
        backend.set("ns1:v1:a", _entry({"v": "a"}, model="openai/gpt-4o-mini", tags=("faq",), cost=0.5))
        backend.set("ns1:v1:b", _entry({"v": "b"}))
        backend.set("ns1:v1:gone", _entry(), ttl=0.05)
        backend.set("ns2:v1:a", _entry({"v": "other"}))
        time.sleep(0.1)
        listed = self._listed(backend, "ns1:")
        assert set(listed) == {"ns1:v1:a", "ns1:v1:b"}, "an expired entry or another prefix was listed"
        a = listed["ns1:v1:a"]
        assert a.value == {"v": "a"} and a.model == "openai/gpt-4o-mini" and tuple(a.tags) == ("faq",) and a.cost == 0.5
        assert set(self._listed(backend, "")) >= {"ns1:v1:a", "ns1:v1:b", "ns2:v1:a"}

    @pytest.mark.parametrize("prefix", ["n*:", "n?:", "n[s]:", "n%:", "n_:", "n\\:"])
    def test_entries_takes_the_prefix_literally(self, backend, prefix):
        mine = {f"{prefix}v1:a", f"{prefix}v1:b"}
        others = [k for k in ("ns:v1:a", "n:v1:a", "nx:v1:a", prefix[:-1] + "x:v1:a") if not k.startswith(prefix)]
        for key in [*mine, *others]:
            backend.set(key, _entry({"key": key}))
        listed = self._listed(backend, prefix)
        assert set(listed) == mine and all(listed[k].value == {"key": k} for k in mine)

    def test_entries_pages_through_many_entries_once_each(self, backend):
        """More entries than one page of any store (500 rows, a SCAN batch): each exactly once."""
        keys = {f"many:v1:{i:05d}" for i in range(1234)}
        for key in keys:
            backend.set(key, _entry({"k": key}))
        listed = self._listed(backend, "many:")
        assert set(listed) == keys and all(listed[k].value == {"k": k} for k in keys)

    def test_entries_skips_a_corrupt_entry(self, backend, corrupt):
        if corrupt is None:
            pytest.skip("no `corrupt` fixture: this backend does not store bytes")
        reported = []
        backend.on_corrupt = lambda key, error: reported.append(key)
        backend.set("conformance:ok", _entry({"v": 1}))
        backend.set("conformance:bad", _entry({"v": 2}))
        corrupt(backend, "conformance:bad")
        assert set(self._listed(backend, "conformance:")) == {"conformance:ok"}
        assert reported == ["conformance:bad"]

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

    @pytest.mark.parametrize("size", [1_000, 200_000])
    def test_one_key_written_and_read_at_once_is_never_torn(self, backend, size):
        """4 writers overwrite one key while 4 readers read it: every read is a whole entry that
        one writer wrote (or a miss), never a part or a mix of two, never a corrupt one."""
        writes, reported, problems, seen = 60, [], [], []
        backend.on_corrupt = lambda key, error: reported.append(str(error))

        def value(w: int, i: int) -> dict:
            return {"w": w, "i": i, "body": f"<{w}:{i}>" * (size // 8)}

        backend.set("conformance:one", _entry(value(0, 0), usage={"total_tokens": 0}))
        done = threading.Event()

        def write(w: int) -> None:
            try:
                for i in range(1, writes + 1):
                    backend.set("conformance:one", _entry(value(w, i), usage={"total_tokens": w * 1000 + i}))
            except Exception as exc:
                problems.append(f"writer {w}: {exc!r}")

        def read() -> None:
            try:
                while not done.is_set():
                    got = backend.get("conformance:one")
                    if got is None:
                        continue
                    v = got.value
                    if v != value(v.get("w"), v.get("i")) or got.usage.get("total_tokens") != v["w"] * 1000 + v["i"]:
                        problems.append(f"a torn entry: {str(v)[:80]}")
                    seen.append(v["i"])
            except Exception as exc:
                problems.append(f"reader: {exc!r}")

        readers = [threading.Thread(target=read) for _ in range(4)]
        writers = [threading.Thread(target=write, args=(w,)) for w in range(1, 5)]
        for t in readers + writers:
            t.start()
        for t in writers:
            t.join()
        done.set()
        for t in readers:
            t.join()
        assert problems[:5] == [] and reported[:5] == [], f"{len(problems)} problems, {len(reported)} corrupt reads"
        assert seen, "the readers never saw the key"
        last = backend.get("conformance:one").value
        assert last["i"] == writes and last == value(last["w"], writes)

    def test_entries_are_signed_with_the_engines_signer(self, backend):
        """With ``cache.signing_key`` set, the engine gives every backend a signer: a backend that
        keeps bytes stores ``encode_entry``'s and reads through ``decode_entry``, so an entry
        signed with another key, or not signed, is a miss, reported and deleted."""
        if backend.in_process:
            pytest.skip("an in-process backend keeps entry objects, which nobody else can write")
        reported = []
        backend.on_corrupt = lambda key, error: reported.append(key)
        backend.signer = Signer("conformance signing key one")
        backend.set("conformance:signed", _entry({"v": "signed"}))
        assert backend.get("conformance:signed").value == {"v": "signed"}
        assert backend.get_many(["conformance:signed"])["conformance:signed"].value == {"v": "signed"}
        assert reported == []
        backend.signer = Signer("conformance signing key two")  # another key: a planted entry's case
        assert backend.get("conformance:signed") is None
        assert reported == ["conformance:signed"], "an entry that does not verify must be reported"
        assert backend.get("conformance:signed") is None and reported == ["conformance:signed"], "and deleted"
        backend.signer = None
        backend.set("conformance:plain", _entry({"v": "plain"}))
        backend.set("conformance:bulk", _entry({"v": "plain"}))
        assert backend.get("conformance:plain").value == {"v": "plain"}
        backend.signer = Signer("conformance signing key one")
        assert backend.get("conformance:plain") is None, "an unsigned entry is refused once a key is set"
        assert backend.get_many(["conformance:bulk"]) == {}, "in bulk reads too"
        assert reported == ["conformance:signed", "conformance:plain", "conformance:bulk"]
        backend.signer = None
        assert backend.get("conformance:plain") is None, "a signed tier must not keep what failed verification"
