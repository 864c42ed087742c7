"""Conformance suites of the similarity index and the embedder (``dspy_turbo.plugin.similarity``).

    import pytest
    from dspy_turbo.testing import EmbedderSuite, SimilarityIndexSuite

    class TestMyIndex(SimilarityIndexSuite):
        @pytest.fixture
        def index(self, tmp_path):
            index = MyIndex.from_options(MyIndex.Options(), None)
            yield index
            index.close()

    class TestMyEmbedder(EmbedderSuite):
        @pytest.fixture(scope="class")
        def embedder(self):
            return MyEmbedder.from_options(MyEmbedder.Options(model="..."), None)

Optional: ``dimension`` (the vectors' size the index suite uses, default 32).
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from ..plugin.components import Component
from ..plugin.similarity import Embedder, SimilarityIndex


def _unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype="float32")
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def _kind_and_name(component, kind: str) -> None:
    if isinstance(component, Component):
        assert component.kind == kind, f"a {kind} component's kind is {kind!r}"
        assert component.name and component.name == component.name.lower()


class SimilarityIndexSuite:
    """The contract of :class:`dspy_turbo.plugin.similarity.SimilarityIndex`."""

    @pytest.fixture
    def index(self):  # pragma: no cover - subclasses provide it
        raise NotImplementedError("provide an `index` fixture that builds your similarity index")

    @pytest.fixture
    def dimension(self) -> int:
        return 32

    @pytest.fixture
    def vectors(self, dimension) -> np.ndarray:
        return _unit(np.random.default_rng(7).normal(size=(400, dimension)))

    def test_is_a_similarity_index(self, index):
        assert isinstance(index, SimilarityIndex)
        _kind_and_name(index, "similarity_index")

    def test_an_empty_index_finds_nothing(self, index, vectors):
        assert len(index) == 0
        assert list(index.search("scope", vectors[0], 5)) == []

    def test_an_added_vector_is_found_with_cosine_one_and_its_meta(self, index, vectors):
        """``search`` returns ``(item_id, cosine, meta)``; the meta given to ``add`` comes back."""
        meta = {"key": "ns:v2:abc", "n": [1, 2], "text": "naïve ✓"}
        index.add("scope", 11, vectors[0], meta)
        found = index.search("scope", vectors[0], 1)
        assert len(found) == 1
        item, score, got = found[0]
        assert item == 11 and score == pytest.approx(1.0, abs=1e-4)
        assert got == meta and json.loads(json.dumps(got)) == meta

    def test_search_is_best_first_at_most_k_and_exact_for_a_small_index(self, index, vectors):
        """The results are the ``k`` nearest by cosine, best first (a small index is searched exactly)."""
        for i in range(60):
            index.add("scope", i, vectors[i], {"i": i})
        query = _unit(vectors[5] + 0.3 * vectors[9])
        found = index.search("scope", query, 5)
        assert len(found) == 5
        scores = [s for _, s, _ in found]
        assert scores == sorted(scores, reverse=True)
        expected = np.argsort(-(vectors[:60] @ query))[:5]
        assert [item for item, _, _ in found] == [int(i) for i in expected]
        assert scores == pytest.approx([float(vectors[i] @ query) for i in expected], abs=1e-4)
        assert len(index.search("scope", query, 100)) == 60

    def test_scopes_never_mix(self, index, vectors):
        """A vector is found only in the scope it was added to."""
        for i in range(20):
            index.add("even" if i % 2 == 0 else "odd", i, vectors[i], {"i": i})
        assert all(item % 2 == 0 for item, _, _ in index.search("even", vectors[1], 20))
        assert all(item % 2 == 1 for item, _, _ in index.search("odd", vectors[0], 20))
        assert list(index.search("elsewhere", vectors[0], 5)) == []

    def test_adding_an_id_again_replaces_it(self, index, vectors):
        index.add("scope", 1, vectors[0], {"v": 1})
        index.add("scope", 1, vectors[1], {"v": 2})
        assert len(index) == 1
        item, score, meta = index.search("scope", vectors[1], 1)[0]
        assert (item, meta) == (1, {"v": 2}) and score == pytest.approx(1.0, abs=1e-4)

    def test_remove_takes_one_vector_out(self, index, vectors):
        for i in range(5):
            index.add("scope", i, vectors[i], {})
        assert index.remove(3) is True
        assert index.remove(3) is False, "removing an id that is not there is False"
        assert index.remove(999) is False
        assert len(index) == 4
        assert 3 not in [item for item, _, _ in index.search("scope", vectors[3], 5)]

    def test_clear_removes_everything_and_says_how_many(self, index, vectors):
        for i in range(7):
            index.add("a" if i < 4 else "b", i, vectors[i], {})
        assert index.clear() == 7
        assert len(index) == 0 and list(index.search("a", vectors[0], 3)) == []
        index.add("a", 1, vectors[1], {})
        assert [item for item, _, _ in index.search("a", vectors[1], 3)] == [1], "usable after clear"

    def test_concurrent_adds_and_searches(self, index, vectors):
        """Several threads add and search at once; nothing raises and every vector is there after."""
        errors = []

        def work(worker: int) -> None:
            try:
                for i in range(worker * 40, worker * 40 + 40):
                    index.add(f"s{worker % 2}", i, vectors[i], {"i": i})
                    found = index.search(f"s{worker % 2}", vectors[i], 1)
                    assert found and found[0][0] == i
            except Exception as exc:  # collected: a failed assert in a thread does not fail the test
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(index) == 240


class EmbedderSuite:
    """The contract of :class:`dspy_turbo.plugin.similarity.Embedder`."""

    @pytest.fixture
    def embedder(self):  # pragma: no cover - subclasses provide it
        raise NotImplementedError("provide an `embedder` fixture that builds your embedder")

    def test_is_an_embedder(self, embedder):
        assert isinstance(embedder, Embedder)
        _kind_and_name(embedder, "embedder")
        assert isinstance(embedder.dimension, int) and embedder.dimension > 0
        assert isinstance(embedder.max_tokens, int) and embedder.max_tokens > 0
        assert isinstance(getattr(embedder, "vector_space", ""), str)

    def test_rows_are_float32_unit_vectors_of_the_dimension(self, embedder):
        texts = ["How do I reset my password?", "What is the capital of France?", "naïve café ✓ 日本語"]
        rows = embedder.embed(texts)
        assert isinstance(rows, np.ndarray) and rows.dtype == np.float32
        assert rows.shape == (3, embedder.dimension)
        assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-3), "rows are L2-normalised"

    def test_a_text_gets_the_same_vector_alone_and_in_a_batch(self, embedder):
        """A vector depends on its text only: not on the batch it came in or its position."""
        texts = ["first question here", "a second, longer question about the weather in Paris", "third"]
        batch = embedder.embed(texts)
        for i, text in enumerate(texts):
            assert float(embedder.embed([text])[0] @ batch[i]) == pytest.approx(1.0, abs=1e-3)
        again = embedder.embed(list(reversed(texts)))
        assert float(again[0] @ batch[2]) == pytest.approx(1.0, abs=1e-3)

    def test_a_paraphrase_is_closer_than_an_unrelated_question(self, embedder):
        a, b, c = embedder.embed(["How do I reset my password?", "How can I change my password?",
                                  "What is the boiling point of water?"])
        assert float(a @ b) > float(a @ c) + 0.1

    def test_count_tokens_grows_with_the_text(self, embedder):
        short, long = embedder.count_tokens("hello"), embedder.count_tokens("hello " * 50)
        assert isinstance(short, int) and 0 < short < long

    def test_concurrent_calls_give_the_same_vectors(self, embedder):
        texts = [f"question number {i} about topic {i % 3}" for i in range(12)]
        expected = embedder.embed(texts)
        results, errors = {}, []

        def work(i: int) -> None:
            try:
                results[i] = embedder.embed([texts[i]])[0]
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert all(float(results[i] @ expected[i]) == pytest.approx(1.0, abs=1e-3) for i in range(len(texts)))
