"""The semantic cache through real DSPy programs: real model, real FAISS, offline LM."""

import dspy
import pytest

import dspy_turbo
from dspy_turbo.engines.offline import offline_lm

QUESTION = "What is the capital city of France?"
PARAPHRASE = "What's the capital of France?"


def test_paraphrase_is_served_from_the_cache(semantic_turbo, lm, events):
    events.attach(semantic_turbo)
    program = dspy.Predict("question -> answer")
    first = program(question=QUESTION)
    assert lm.engine.calls == 1
    second = program(question=PARAPHRASE)
    assert lm.engine.calls == 1, "a paraphrase must be answered from the cache"
    assert second.answer == first.answer
    hit = events.of("hit", tier="semantic")
    assert len(hit) == 1 and hit[0].extra["similarity"] >= 0.9
    stats = semantic_turbo.stats()
    assert stats["hits"] == {"semantic": 1} and stats["misses"] == 1, "each request counts once"
    semantic = stats["semantic"]
    assert semantic["hits"] == 1 and semantic["added"] == 1 and semantic["entries"] == 1
    (scope,) = semantic["scopes"].values()
    assert scope["label"] == "question -> answer @ openai/gpt-4o-mini" and scope["hits"] == 1
    assert sum(b.get("hits", 0) for b in semantic["histogram"].values()) == 1
    assert stats["tokens"]["saved"] > 0, "a semantic hit saves the original call's tokens"


def test_different_question_is_a_miss(semantic_turbo, lm):
    program = dspy.Predict("question -> answer")
    first = program(question=QUESTION)
    other = program(question="What is the capital city of Germany?")
    assert lm.engine.calls == 2
    assert other.answer != first.answer
    assert semantic_turbo.stats()["semantic"]["hits"] == 0


def test_number_guard_rejects_37_vs_35_weeks(semantic_turbo, lm, events):
    events.attach(semantic_turbo)
    program = dspy.Predict("question -> answer")
    program(question="Is it safe to take castor oil at 37 weeks pregnant?")
    program(question="Is it safe to take castor oil at 35 weeks pregnant?")
    assert lm.engine.calls == 2, "a different number must never be served the cached answer"
    (rejected,) = events.of("semantic_reject")
    assert rejected.reason == "number" and rejected.extra["similarity"] >= 0.9
    assert semantic_turbo.stats()["semantic"]["reasons"] == {"rejected:number": 1}
    program(question="Is it safe to take castor oil when 37 weeks pregnant?")
    assert lm.engine.calls == 2, "the same number, rephrased, is still a hit"


@pytest.mark.parametrize("change", ["signature", "instructions", "model", "temperature", "demos"])
def test_no_hit_across_scopes(semantic_turbo, lm, change):
    dspy.Predict("question -> answer")(question=QUESTION)
    calls = lm.engine.calls
    if change == "signature":
        dspy.Predict("question -> summary")(question=PARAPHRASE)
    elif change == "instructions":
        dspy.Predict(dspy.Signature("question -> answer", instructions="Answer in French."))(question=PARAPHRASE)
    elif change == "model":
        with dspy.context(lm=offline_lm("openai/gpt-4o")):
            dspy.Predict("question -> answer")(question=PARAPHRASE)
    elif change == "temperature":
        with dspy.context(lm=offline_lm("openai/gpt-4o-mini", temperature=0.7)):
            dspy.Predict("question -> answer")(question=PARAPHRASE)
    else:
        program = dspy.Predict("question -> answer")
        program.demos = [dspy.Example(question="What is 2 + 2?", answer="4")]
        program(question=PARAPHRASE)
    stats = semantic_turbo.stats()["semantic"]
    assert stats["hits"] == 0
    if change in ("signature", "instructions", "demos"):
        assert lm.engine.calls == calls + 1
    assert len(stats["scopes"]) == 2


def test_non_embedded_field_must_match_exactly(make_turbo, semantic_config, minilm, lm):
    make_turbo(semantic_config(fields=["question"])).install()
    program = dspy.Predict("context, question -> answer")
    program(context="Paris guide, 2024 edition", question=QUESTION)
    program(context="Berlin guide, 2024 edition", question=PARAPHRASE)
    assert lm.engine.calls == 2, "context is not embedded, so it is part of the scope"
    program(context="Paris guide, 2024 edition", question=PARAPHRASE)
    assert lm.engine.calls == 2


def test_json_adapter_and_plain_prompts_hit(semantic_turbo, lm):
    with dspy.context(adapter=dspy.JSONAdapter()):
        program = dspy.Predict("question -> answer")
        first = program(question=QUESTION)
        assert program(question=PARAPHRASE).answer == first.answer
    assert lm.engine.calls == 1
    first = lm("How do I reverse a list in Python?")
    assert lm("How can I reverse a list in Python?") == first
    assert lm.engine.calls == 2


@pytest.mark.parametrize("kind", ["empty", "long", "non_text"])
def test_inputs_that_cannot_be_matched_are_exact_only(semantic_turbo, lm, events, kind):
    events.attach(semantic_turbo)
    if kind == "empty":
        program, inputs = dspy.Predict("question -> answer"), {"question": ""}
    elif kind == "long":  # past the model's 256 tokens: the model would only read the start
        program, inputs = dspy.Predict("question -> answer"), {"question": "Why is the sky blue? " * 80}
    else:
        program, inputs = dspy.Predict("questions: list[str] -> answer"), {"questions": ["What is 2 + 2?", "Who are you?"]}
    program(**inputs)
    program(**inputs)
    assert lm.engine.calls == 1, "the exact cache still serves the repeat"
    reasons = {e.reason for e in events.of("semantic_skip")}
    assert reasons == {"too_long" if kind == "long" else kind}
    assert semantic_turbo.stats()["semantic"]["entries"] == 0


def test_per_signature_threshold_override(make_turbo, semantic_config, minilm, lm):
    make_turbo(semantic_config(signatures={"question -> answer": {"threshold": 0.999}})).install()
    dspy.Predict("question -> answer")(question=QUESTION)
    dspy.Predict("question -> answer")(question=PARAPHRASE)
    assert lm.engine.calls == 2, "the stricter per-signature threshold keeps the paraphrase out"
    dspy.Predict("question -> summary")(question=QUESTION)
    dspy.Predict("question -> summary")(question=PARAPHRASE)
    assert lm.engine.calls == 3, "other signatures keep the default threshold"


def test_ttl_expiry_and_clear_remove_vectors(make_turbo, semantic_config, minilm, lm, events, monkeypatch):
    import time

    turbo = make_turbo({**semantic_config(), "cache": {**semantic_config()["cache"], "ttl": "60s"}}).install()
    events.attach(turbo)
    dspy.Predict("question -> answer")(question=QUESTION)
    assert len(turbo.semantic.index) == 1
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 120)
    dspy.Predict("question -> answer")(question=PARAPHRASE)
    assert lm.engine.calls == 2, "an expired entry is never served"
    assert [e.reason for e in events.of("semantic_remove")] == ["expired"]
    monkeypatch.undo()
    assert len(turbo.semantic.index) == 1  # the new answer's vector
    turbo.clear()
    assert len(turbo.semantic.index) == 0
    dspy.Predict("question -> answer")(question=QUESTION)
    turbo.invalidate()
    assert len(turbo.semantic.index) == 0, "invalidating the namespace removes its vectors"


def test_invalidated_tag_is_never_served_semantically(semantic_turbo, lm):
    with semantic_turbo.tagged("pricing"):
        dspy.Predict("question -> answer")(question=QUESTION)
    semantic_turbo.invalidate(tag="pricing")
    dspy.Predict("question -> answer")(question=PARAPHRASE)
    assert lm.engine.calls == 2
    assert semantic_turbo.stats()["semantic"]["reasons"].get("removed:gone") == 1


@pytest.mark.requires_plugin("file")
def test_index_directory_persists_across_restarts(make_turbo, semantic_config, minilm, lm, tmp_path):
    """With the file tier and an index directory next to it, a restarted program gets
    semantic hits for what the previous run answered."""
    config = semantic_config(tiers=[{"type": "memory"}, {"type": "file", "directory": str(tmp_path / "cache")}])
    config["cache"]["semantic"]["index"]["directory"] = str(tmp_path / "semantic-index")
    first = make_turbo(config).install()
    answer = dspy.Predict("question -> answer")(question=QUESTION).answer
    first.close()
    second = make_turbo(config).install()
    assert len(second.semantic.index) == 1
    assert dspy.Predict("question -> answer")(question=PARAPHRASE).answer == answer
    assert lm.engine.calls == 1


@pytest.mark.requires_plugin("file")
def test_vectors_of_another_embedder_are_never_compared(make_turbo, semantic_config, minilm, lm, tmp_path):
    """A restart with the model's int8 form (same dimension, other vectors) does not match
    new queries against the fp32 vectors the index kept: the scope names the vector space."""
    config = semantic_config(tiers=[{"type": "memory"}, {"type": "file", "directory": str(tmp_path / "cache")}])
    config["cache"]["semantic"]["index"]["directory"] = str(tmp_path / "semantic-index")
    first = make_turbo(config).install()
    assert first.semantic.embedder.vector_space == "sentence-transformers/all-minilm-l6-v2|fp32"
    dspy.Predict("question -> answer")(question=QUESTION)
    first.close()
    config["cache"]["semantic"]["embedder"]["quantize"] = True
    second = make_turbo(config).install()
    assert second.semantic.embedder.vector_space == "sentence-transformers/all-minilm-l6-v2|int8-onnx-7bit"
    assert len(second.semantic.index) == 1, "the old vector is still there"
    dspy.Predict("question -> answer")(question=PARAPHRASE)
    assert lm.engine.calls == 2, "but it is not searched with the int8 model's query vector"
    dspy.Predict("question -> answer")(question=QUESTION)
    assert lm.engine.calls == 2, "exact hits are the same"


def test_concurrent_lookups_share_embedding_passes(semantic_turbo, lm, run_threads):
    import threading

    import numpy as np

    batcher = semantic_turbo.semantic.batcher
    batcher.window = 0.02  # a generous window so that the threads surely meet on a busy machine
    texts = [f"How many people live in city number {i}?" for i in range(16)]
    out, lock = {}, threading.Lock()
    it = iter(texts)

    def worker():
        with lock:
            text = next(it)
        vector = batcher.embed(text)
        with lock:
            out[text] = vector

    run_threads(worker, 16)
    assert batcher.batches < 16, "concurrent texts are embedded together"
    alone = semantic_turbo.semantic.embedder.embed(texts)
    assert np.allclose(np.vstack([out[t] for t in texts]), alone, atol=1e-5), "batching never changes a vector"
    before = batcher.embedded
    batcher.embed(texts[0])
    assert batcher.embedded == before, "a text is never embedded twice"


async def test_async_program_gets_semantic_hits(semantic_turbo, lm):
    program = dspy.Predict("question -> answer")
    first = await program.acall(question=QUESTION)
    second = await program.acall(question=PARAPHRASE)
    assert second.answer == first.answer and lm.engine.calls == 1


def test_eviction_from_the_last_tier_removes_the_vector(make_turbo, semantic_config, minilm, lm):
    turbo = make_turbo(semantic_config(tiers=[{"type": "memory", "max_entries": 1}])).install()
    program = dspy.Predict("question -> answer")
    program(question=QUESTION)
    program(question="How tall is Mount Everest?")
    assert len(turbo.semantic.index) == 1, "the evicted answer's vector went with it"
    assert turbo.stats()["semantic"]["reasons"] == {"removed:evicted": 1}
    program(question=PARAPHRASE)
    assert lm.engine.calls == 3


def test_a_failing_embedder_never_breaks_the_program(semantic_turbo, lm, monkeypatch):
    def broken(texts):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(semantic_turbo.semantic.batcher, "_embed", broken)
    program = dspy.Predict("question -> answer")
    first = program(question=QUESTION)
    assert program(question=QUESTION).answer == first.answer, "the exact cache still works"
    assert lm.engine.calls == 1
    assert semantic_turbo.stats()["errors"].get("semantic", 0) >= 2, "lookup and add failures are error events"


def test_signature_overrides_match_by_fields(make_turbo, semantic_config, minilm, lm, caplog):
    """A key written with other spacing, order or types still finds its signature; one that
    matches nothing is a warning naming the signatures seen."""
    import logging

    turbo = make_turbo(semantic_config(signatures={"question: str->answer": {"threshold": 0.999},
                                                   "question -> answr": {"threshold": 0.5}})).install()
    dspy.Predict("question -> answer")(question=QUESTION)
    dspy.Predict("question -> answer")(question=PARAPHRASE)
    assert lm.engine.calls == 2, "'question: str->answer' is the signature question -> answer"
    with caplog.at_level(logging.WARNING, "dspy_turbo.semantic"):
        turbo.close()
    (unused,) = [r.getMessage() for r in caplog.records if "matched none" in r.getMessage()]
    assert "'question -> answr'" in unused and "question -> answer" in unused


def test_a_signature_override_key_that_is_no_signature_is_a_config_error(semantic_config):
    with pytest.raises(dspy_turbo.ConfigError, match="'qa' is not a signature"):
        dspy_turbo.load(semantic_config(signatures={"qa": {"threshold": 0.99}}))


def test_a_corrupt_neighbour_is_removed_like_a_corrupt_exact_entry(semantic_turbo, lm, events):
    """A neighbour whose stored value DSPy cannot use is not served: it is removed from the
    tiers and the index (an error event), and the paraphrase is a miss, counted once."""
    from dspy_turbo.cache.entry import Entry

    events.attach(semantic_turbo)
    program = dspy.Predict("question -> answer")
    program(question=QUESTION)
    (key,) = semantic_turbo.cache.tiers[0].backend.keys()
    semantic_turbo.cache.put(key, Entry.create(42))  # a foreign writer's value under the neighbour's key
    semantic_turbo.reset_stats()
    answer = program(question=PARAPHRASE)
    assert answer.answer and lm.engine.calls == 2
    assert [e.key for e in events.of("error") if e.reason == "corrupt"] == [key]
    assert [e.reason for e in events.of("semantic_remove")] == ["corrupt"]
    assert semantic_turbo.cache.get(key, count=False) is None or semantic_turbo.cache.get(key, count=False).value != 42
    stats = semantic_turbo.stats()
    assert stats["hits_total"] == 0 and stats["misses"] == 1
