"""The faiss index component: exact and IVF search, removal, replayable operations, persistence."""

import json

import numpy as np
import pytest

import dspy_turbo.plugin
from dspy_turbo_faiss.index import FaissIndex, IndexOptions


def unit(rows):
    rows = np.asarray(rows, dtype="float32")
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def vectors():
    return unit(np.random.default_rng(3).normal(size=(3000, 32)))


def test_search_is_per_scope_and_best_first(vectors):
    index = FaissIndex()
    for i in range(100):
        index.add("a" if i % 2 else "b", i, vectors[i], {"n": i})
    found = index.search("a", vectors[7], 3)
    assert found[0][0] == 7 and found[0][1] == pytest.approx(1.0, abs=1e-5) and found[0][2] == {"n": 7}
    assert all(item % 2 for item, _, _ in found), "only scope a's vectors"
    assert [s for _, s, _ in found] == sorted((s for _, s, _ in found), reverse=True)
    assert index.search("nowhere", vectors[7], 3) == []


def test_remove_replace_and_bound(vectors):
    index = FaissIndex(IndexOptions(max_entries=10))
    for i in range(12):
        index.add("s", i, vectors[i], {})
    assert len(index) == 10 and index.search("s", vectors[0], 1)[0][0] != 0, "the oldest went first"
    assert index.remove(5) and not index.remove(5)
    index.add("s", 6, vectors[100], {"v": 2})  # same id: replaced, not duplicated
    assert index.search("s", vectors[100], 1)[0][:1] == (6,) and len(index) == 9


def test_large_scope_moves_to_ivf_with_high_recall_and_still_removes(vectors):
    index = FaissIndex(IndexOptions(exact_up_to=1000, nprobe=16))
    for i, row in enumerate(vectors):
        index.add("s", i, row, {})
    assert index.is_approximate("s")
    queries = unit(vectors[:300] + np.random.default_rng(4).normal(0, 0.05, (300, 32)))
    exact = (vectors @ queries.T).argmax(axis=0)
    got = np.array([index.search("s", q, 1)[0][0] for q in queries])
    assert (got == exact).mean() >= 0.99
    assert index.remove(0) and all(item != 0 for item, _, _ in index.search("s", vectors[0], 5))


def test_operations_replay_into_an_identical_replica(vectors, tmp_path):
    primary = FaissIndex(IndexOptions(directory=str(tmp_path / "p")))
    for i in range(20):
        primary.add("s", i, vectors[i], {"i": i})
    primary.remove(3)
    replica = FaissIndex()
    with open(tmp_path / "p" / "journal.jsonl") as fh:
        for line in fh:
            replica.apply(json.loads(line))
    assert len(replica) == len(primary) == 19
    assert replica.search("s", vectors[9], 2) == primary.search("s", vectors[9], 2)
    primary.close()


def test_directory_survives_a_crash_and_a_restart(vectors, tmp_path):
    first = FaissIndex(IndexOptions(directory=str(tmp_path)))
    for i in range(5):
        first.add("s", i, vectors[i], {"i": i})
    with pytest.raises(dspy_turbo.plugin.ComponentUnavailable, match="in use by another process"):
        FaissIndex(IndexOptions(directory=str(tmp_path)))
    first._lockfile.close()  # a crash: no snapshot, only the journal (plus a torn last line)
    with open(tmp_path / "journal.jsonl", "a") as fh:
        fh.write('{"op": "add", "sco')
    second = FaissIndex(IndexOptions(directory=str(tmp_path)))
    assert len(second) == 5 and second.search("s", vectors[4], 1)[0][2] == {"i": 4}
    second.remove(0)
    second.close()  # compacts into a snapshot
    assert (tmp_path / "snapshot.npz").exists() and (tmp_path / "journal.jsonl").read_text() == ""
    third = FaissIndex(IndexOptions(directory=str(tmp_path)))
    assert len(third) == 4
    third.close()
