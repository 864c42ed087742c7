"""The faiss index and the sentence-transformers embedder (both runtimes) pass the SDK's conformance suites."""

import pytest

from dspy_turbo.testing import EmbedderSuite, SimilarityIndexSuite
from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder
from dspy_turbo_faiss.index import FaissIndex


class TestFaissIndexConformance(SimilarityIndexSuite):
    @pytest.fixture
    def index(self):
        index = FaissIndex.from_options(FaissIndex.Options(), None)
        yield index
        index.close()


class TestFaissIndexPersistedConformance(SimilarityIndexSuite):
    """With a directory the index persists its operations; the contract is the same."""

    @pytest.fixture
    def index(self, tmp_path):
        index = FaissIndex.from_options(FaissIndex.Options(directory=str(tmp_path / "index")), None)
        yield index
        index.close()


class TestSentenceTransformerEmbedderConformance(EmbedderSuite):
    @pytest.fixture(scope="class", params=["torch", "onnx"])
    def embedder(self, request, minilm):  # minilm: the session's one load of the model
        return SentenceTransformerEmbedder.from_options(SentenceTransformerEmbedder.Options(runtime=request.param), None)


def test_semantic_events_of_real_calls_conform_to_the_event_table(semantic_turbo, lm, events):
    """Hits, rejections, skips, additions and removals of the semantic cache each fit their row
    of ``dspy_turbo.plugin.events.EVENTS``."""
    import dspy

    from dspy_turbo.plugin.events import problems

    events.attach(semantic_turbo)
    program = dspy.Predict("question -> answer")
    program(question="What is the capital city of France?")
    program(question="What's the capital of France?")  # a semantic hit
    program(question="Is it safe to take castor oil at 37 weeks pregnant?")
    program(question="Is it safe to take castor oil at 35 weeks pregnant?")  # rejected: number
    program(question="   ")  # exact-only: empty
    program(question="How tall is Mount Everest?")  # a semantic miss
    semantic_turbo.clear()  # removes vectors
    semantic_turbo.flush_events()
    kinds = {e.kind for e in events}
    assert {"semantic_add", "semantic_reject", "semantic_skip", "semantic_miss", "hit"} <= kinds, kinds
    assert [p for e in events for p in problems(e)] == []
