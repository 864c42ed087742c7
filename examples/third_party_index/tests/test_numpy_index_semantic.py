"""The example numpy index behind the semantic cache of a real DSPy program: the real
all-MiniLM-L6-v2 embedder (``sentence-transformers``, from dspy-turbo-faiss), an offline LM.
"""

from __future__ import annotations

import uuid

import dspy
import pytest

# The embedder comes from dspy-turbo-faiss: these tests run where both are installed.
pytestmark = pytest.mark.requires_plugin("faiss", "numpy_index")

QUESTION = "What is the capital city of France?"
PARAPHRASE = "What's the capital of France?"


@pytest.fixture
def semantic_turbo(make_turbo, lm):
    config = {"namespace": f"numpy-index-{uuid.uuid4().hex[:12]}", "cache": {
        "tiers": [{"type": "memory"}],
        "semantic": {"index": {"type": "numpy"}, "embedder": {"type": "sentence-transformers"}, "threshold": 0.9}}}
    return make_turbo(config).install()


def test_the_config_builds_the_numpy_index(semantic_turbo):
    from dspy_turbo_numpy_index import NumpyIndex

    assert isinstance(semantic_turbo.semantic.index, NumpyIndex)


def test_a_paraphrase_is_served_from_the_numpy_index(semantic_turbo, lm):
    program = dspy.Predict("question -> answer")
    first = program(question=QUESTION)
    assert lm.engine.calls == 1
    second = program(question=PARAPHRASE)
    assert lm.engine.calls == 1, "a paraphrase must be answered from the cache"
    assert second.answer == first.answer
    stats = semantic_turbo.stats()
    assert stats["hits"] == {"semantic": 1} and stats["semantic"]["entries"] == 1


def test_a_different_question_and_a_different_number_are_misses(semantic_turbo, lm):
    program = dspy.Predict("question -> answer")
    program(question=QUESTION)
    program(question="What is the capital city of Germany?")
    program(question="Is it safe to take castor oil at 37 weeks pregnant?")
    program(question="Is it safe to take castor oil at 35 weeks pregnant?")
    assert lm.engine.calls == 4, "neither another city nor another number is served a cached answer"
    assert semantic_turbo.stats()["semantic"]["hits"] == 0


def test_clear_empties_the_index(semantic_turbo, lm):
    program = dspy.Predict("question -> answer")
    program(question=QUESTION)
    assert len(semantic_turbo.semantic.index) == 1
    removed = semantic_turbo.clear()
    assert removed["semantic"] == 1 and len(semantic_turbo.semantic.index) == 0
    program(question=PARAPHRASE)
    assert lm.engine.calls == 2
