"""A semantic hit's span says how similar the cached question was (needs dspy-turbo-faiss)."""

import uuid

import dspy
import pytest

QUESTION = "What is the capital city of France?"
PARAPHRASE = "What's the capital of France?"


@pytest.mark.requires_plugin("faiss")
def test_a_semantic_hit_carries_its_similarity(make_turbo, lm, spans, user_tracer):
    turbo = make_turbo({"namespace": f"sem-{uuid.uuid4().hex[:12]}", "cache": {
        "tiers": [{"type": "memory"}],
        "semantic": {"index": {"type": "faiss"}, "embedder": {"type": "sentence-transformers"}, "threshold": 0.9}},
        "metrics": {"sinks": [{"type": "otel"}]}}).install()
    program = dspy.Predict("question -> answer")
    with user_tracer.start_as_current_span("ask") as outer:
        first = program(question=QUESTION)
        second = program(question=PARAPHRASE)
    assert second.answer == first.answer and lm.engine.calls == 1
    assert turbo.flush_events(5)
    lookups = [s for s in spans() if s.name == "dspy_turbo.cache.lookup"]
    assert [s.attributes["dspy_turbo.cache.result"] for s in lookups] == ["miss", "hit"]
    hit = lookups[1]
    assert hit.attributes["dspy_turbo.cache.tier"] == "semantic"
    assert 0.9 <= hit.attributes["dspy_turbo.semantic.similarity"] <= 1.0
    assert hit.attributes["gen_ai.request.model"] == "openai/gpt-4o-mini"
    assert hit.parent.span_id == outer.get_span_context().span_id
    assert "dspy_turbo.semantic.similarity" not in lookups[0].attributes
    text = " ".join(str(v) for s in spans() for v in (s.attributes or {}).values())
    assert "France" not in text, "no question text, neither the new one nor the cached one"
