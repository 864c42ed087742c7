"""The file tier (dspy-turbo-file): conformance, processes sharing a directory, corruption,
pickles, an unusable directory, the embedded default."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sqlite3
import subprocess
import time
from pathlib import Path

import diskcache
import dspy
import pytest

import dspy_turbo
from dspy_turbo.cache.entry import Entry
from dspy_turbo.testing import CacheBackendSuite
from dspy_turbo_file import FileBackend, FileOptions


def _corrupt(backend: FileBackend, key: str) -> None:
    """Damage the stored bytes in place: small values live in SQLite rows (one db per shard)."""
    for path in backend.directory.rglob("cache.db"):
        db = sqlite3.connect(path)
        with db:
            db.execute("UPDATE Cache SET value = ? WHERE key = ?", (b"DT\x01{not json", key))
        db.close()


class TestFileBackendConformance(CacheBackendSuite):
    @pytest.fixture
    def backend(self, tmp_path):
        backend = FileBackend(FileOptions(directory=str(tmp_path / "cache")))
        yield backend
        backend.close()

    @pytest.fixture
    def corrupt(self):
        return _corrupt


class TestShardedFileBackendConformance(CacheBackendSuite):
    @pytest.fixture
    def backend(self, tmp_path):
        backend = FileBackend(FileOptions(directory=str(tmp_path / "cache"), shards=4))
        yield backend
        backend.close()

    @pytest.fixture
    def corrupt(self):
        return _corrupt


def test_truncated_large_value_file_is_a_reported_miss(tmp_path):
    backend = FileBackend(FileOptions(directory=str(tmp_path)))
    reported = []
    backend.on_corrupt = lambda key, error: reported.append(key)
    big = {"text": "x" * 200_000}  # past diskcache's 32 KB threshold: stored in its own file
    backend.set("ns:v1:big", Entry.create(big))
    files = [p for p in Path(tmp_path).rglob("*.val")]
    assert len(files) == 1
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    assert backend.get("ns:v1:big") is None
    assert reported == ["ns:v1:big"]
    assert backend.get("ns:v1:big") is None  # deleted, not read again
    backend.close()


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_planted_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    payload = pickle.dumps(exploit)
    # A value diskcache itself would pickle, and raw pickle bytes: neither runs.
    planted = diskcache.Cache(str(tmp_path / "cache"))
    planted.set("ns:v1:a", {"looks": "innocent"})
    planted.set("ns:v1:b", payload)
    planted.close()
    backend = FileBackend(FileOptions(directory=str(tmp_path / "cache")))
    reported = []
    backend.on_corrupt = lambda key, error: reported.append((key, str(error)))
    assert backend.get("ns:v1:a") is None
    assert backend.get("ns:v1:b") is None
    assert not marker.exists()
    assert [k for k, _ in reported] == ["ns:v1:a", "ns:v1:b"]
    assert "pickle" in reported[0][1]
    backend.close()


def _writer(directory: str, worker: int, n: int, errors) -> None:
    backend = FileBackend(FileOptions(directory=directory, shards=4))
    try:
        for step in range(n):
            i = (step * 7 + worker * 131) % n  # every process writes every key, in its own order
            key = f"ns:v1:k{i}"
            backend.set(key, Entry.create({"i": i, "text": f"value {i} " * 20}))
            j = (i * 13 + worker) % n
            got = backend.get(f"ns:v1:k{j}")
            if got is not None and got.value != {"i": j, "text": f"value {j} " * 20}:
                errors.put(f"worker {worker} read a wrong value for k{j}")
    except Exception as exc:
        errors.put(f"worker {worker}: {type(exc).__name__}: {exc}")
    finally:
        backend.close()


def test_eight_processes_writing_and_reading_lose_and_corrupt_nothing(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    n = 1000
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, n, errors)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert problems == []
    backend = FileBackend(FileOptions(directory=str(tmp_path), shards=4))
    reported = []
    backend.on_corrupt = lambda key, error: reported.append(key)
    for i in range(n):
        got = backend.get(f"ns:v1:k{i}")
        assert got is not None, f"k{i} was lost"
        assert got.value == {"i": i, "text": f"value {i} " * 20}
    assert reported == [] and len(backend) == n
    backend.close()


def test_unusable_directory_degrades_to_an_unavailable_tier(tmp_path, lm):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}, {"type": "file", "directory": str(blocker / "cache")}],
                                       "breaker": {"failures": 2, "cooldown": "1h"}}}).install()
    try:
        program = dspy.Predict("question -> answer")
        first = [program(question=f"q{i}").answer for i in range(5)]
        again = [program(question=f"q{i}").answer for i in range(5)]
        assert first == again and lm.engine.calls == 5  # the memory tier still serves
        stats = turbo.stats()
        # two failed reads and two failed writes, then both breakers skip the tier
        assert stats["errors"]["file"] == 4
        assert stats["tiers"]["file"]["breaker"] == "open" and stats["tiers"]["file"]["write_breaker"] == "open"
    finally:
        turbo.close()


def test_embedded_default_is_memory_and_file_and_a_new_process_reads_from_disk(tmp_path, monkeypatch, workers):
    monkeypatch.setenv("DSPY_TURBO_CACHE_DIR", str(tmp_path / "cache"))
    turbo = dspy_turbo.load()
    assert [t.name for t in turbo.cache.tiers] == ["memory", "file"]
    assert turbo.cache.tiers[1].backend.directory == tmp_path / "cache"
    turbo.close()
    questions = [f"What is fact number {i}?" for i in range(20)]
    first = workers.run(None, questions)
    second = workers.run(None, questions)
    assert first["lm_calls"] == 20
    assert second["lm_calls"] == 0 and second["stats"]["hits"] == {"file": 20}
    assert second["answers"] == first["answers"]


def test_invalidate_by_tag_and_namespace_on_disk(tmp_path, lm):
    config = {"cache": {"tiers": [{"type": "memory"}, {"type": "file", "directory": str(tmp_path)}]}}
    turbo = dspy_turbo.load(config).install()
    program = dspy.Predict("question -> answer")
    try:
        with turbo.tagged("pricing"):
            program(question="What does the plan cost?")
        program(question="Who founded the company?")
        assert turbo.invalidate(tag="pricing") == {"memory": 1, "file": 1}
        program(question="What does the plan cost?")
        program(question="Who founded the company?")
        assert lm.engine.calls == 3  # only the tagged answer was asked again
        assert turbo.invalidate(tier="file") == {"file": 2}
        with pytest.raises(ValueError, match="no tier named 'disk'"):
            turbo.invalidate(tier="disk")
    finally:
        turbo.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs: a disk that fills up (needs root, as on CI machines)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_degrades_and_the_program_goes_on(small_disk, lm):
    turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}, {"type": "file", "directory": str(small_disk)}],
                                       "breaker": {"failures": 3, "cooldown": "1h"}}}).install()
    try:
        program = dspy.Predict("question -> answer")
        lm.engine.answers["big"] = {"answer": "y" * 100_000}  # large answers: the disk fills after a few
        answers = [program(question=f"big q{i}").answer for i in range(40)]
        assert all(answers) and lm.engine.calls == 40
        stats = turbo.stats()
        assert stats["stores"]["file"] >= 1  # it worked while there was room
        # writes trip the tier's write breaker; reads go on (what is on disk still serves)
        assert stats["errors"]["file"] == 3 and stats["tiers"]["file"]["write_breaker"] == "open"
        assert stats["tiers"]["file"]["breaker"] == "closed"
        assert [program(question=f"big q{i}").answer for i in range(40)] == answers  # memory still serves
        assert lm.engine.calls == 40
    finally:
        turbo.close()


def test_a_foreign_key_in_the_directory_does_not_stop_invalidation(tmp_path):
    backend = FileBackend(FileOptions(directory=str(tmp_path)))
    backend.set("ns:v1:a", Entry.create({"v": 1}))
    backend.set("ns:v1:b", Entry.create({"v": 2}))
    foreign = diskcache.Cache(str(tmp_path))
    foreign.set(("a", "tuple", "key"), b"written by something else")  # diskcache pickles such a key
    foreign.close()
    assert sorted(backend.keys("ns:")) == ["ns:v1:a", "ns:v1:b"]
    assert backend.clear("ns:") == 2 and backend.get("ns:v1:a") is None
    backend.close()


@pytest.mark.parametrize("tiers", [["file"], ["memory", "file"]])
def test_a_caller_mutating_a_disk_hit_changes_no_later_hit(tmp_path, tiers):
    """A disk hit hands its freshly decoded value over uncopied, unless a tier above keeps it."""
    config = {"cache": {"tiers": [{"type": t, **({"directory": str(tmp_path)} if t == "file" else {})} for t in tiers]}}
    writer = dspy_turbo.load(config)
    writer.store("ns:v1:k", {"answer": "42", "n": [1, 2]})
    writer.close()
    reader = dspy_turbo.load(config)  # a new process's view: an empty memory tier, the same directory
    try:
        for _ in range(3):  # disk hit (promoted when a memory tier is there), then memory hits
            mine = reader.lookup("ns:v1:k")
            assert mine == {"answer": "42", "n": [1, 2]}
            mine["n"].append(3)
    finally:
        reader.close()


@pytest.mark.parametrize("eviction, column", [("lru", "access_time"), ("lfu", "access_count")])
def test_with_lru_or_lfu_every_hit_counts_as_a_use(tmp_path, eviction, column):
    """A read under lru/lfu is bookkeeping for eviction; the hit path must not skip it."""
    backend = FileBackend(FileOptions(directory=str(tmp_path), eviction=eviction))
    backend.set("ns:v1:k", Entry.create({"v": 1}))
    db = sqlite3.connect(tmp_path / "cache.db")
    before = db.execute(f"SELECT {column} FROM Cache WHERE key = 'ns:v1:k'").fetchone()[0]
    for _ in range(3):
        assert backend.get("ns:v1:k").value == {"v": 1}
    after = db.execute(f"SELECT {column} FROM Cache WHERE key = 'ns:v1:k'").fetchone()[0]
    db.close()
    backend.close()
    assert after > before


def test_a_value_in_its_own_file_and_an_expired_one_read_as_they_were_stored(tmp_path):
    backend = FileBackend(FileOptions(directory=str(tmp_path)))
    big = {"text": "x" * 200_000}  # past diskcache's 32 KB threshold: stored in its own file
    backend.set("ns:v1:big", Entry.create(big))
    backend.set("ns:v1:gone", Entry.create({"v": 1}), ttl=0.05)
    assert backend.get("ns:v1:big").value == big
    time.sleep(0.1)
    assert backend.get("ns:v1:gone") is None
    backend.close()
