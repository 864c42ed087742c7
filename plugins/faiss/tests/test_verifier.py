"""The verifier on real all-MiniLM-L6-v2 outputs: questions that differ in what they ask are
rejected, true paraphrases still hit; its YAML option; its place in a lookup."""

import dspy
import pytest

import dspy_turbo
from dspy_turbo_faiss.feature import SemanticVerifier
from dspy_turbo_faiss.semantic import rejection
from dspy_turbo_faiss.verifier import Verifier


@pytest.fixture(scope="module")
def embedder():
    from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture
def verifier(embedder):
    return Verifier(SemanticVerifier(), embedder)


def cosine(embedder, a, b):
    va, vb = embedder.embed([a, b])
    return float(va @ vb)


# Close in cosine, asking a different thing: a rare word of one has no counterpart in the other.
DIFFERENT = [
    ("How do I cook salmon in the oven?", "How do I cook chicken in the oven?"),
    ("How do I learn Python quickly?", "How do I learn Java quickly?"),
    ("What is the best laptop for programming?", "What is the best laptop for gaming?"),
    ("Is castor oil safe to induce labor?", "Is olive oil safe to induce labor?"),
]
# Paraphrases: every rare word is kept, or said with a close word.
SAME = [
    ("What is the capital of France?", "What's the capital of France?"),
    ("How can I lose weight fast?", "How do I lose weight fast?"),
    ("How can I lose weight fast?", "What is the fastest way to lose weight?"),
    ("How do I cook salmon in the oven?", "How can I cook salmon in the oven?"),
    ("Is it safe to take castor oil at 37 weeks pregnant?", "Is it safe to take castor oil when 37 weeks pregnant?"),
]


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_verifier_rejects_a_different_question(verifier, a, b):
    assert verifier.alignment(a, b) < SemanticVerifier().min_alignment
    assert verifier.reason(a, b) == "verifier"
    assert verifier.reason(b, a) == "verifier", "the check is symmetric"


@pytest.mark.parametrize(("a", "b"), SAME)
def test_verifier_passes_true_paraphrases(verifier, a, b):
    assert verifier.reason(a, b) is None, verifier.alignment(a, b)


def test_number_swap_is_the_guards_and_the_verifier_runs_after_them(verifier):
    a, b = "Is it safe to take castor oil at 37 weeks pregnant?", "Is it safe to take castor oil at 35 weeks pregnant?"
    assert rejection(a, b, None, verifier) == "number"
    assert verifier.calls == 0, "a pair the guards reject costs no verifier check"
    assert rejection(*DIFFERENT[0], None, verifier) == "verifier"
    assert verifier.calls == 1


def test_words_of_a_text_embedded_elsewhere_are_recomputed(embedder):
    """A cached question added by another process (or before a restart) comes with its text
    only: the verifier runs it through the model and decides the same."""
    a, b = DIFFERENT[0]
    first = Verifier(SemanticVerifier(), embedder)
    expected = first.alignment(a, b)
    embedder._tokens.clear()
    again = Verifier(SemanticVerifier(), embedder)
    assert again.alignment(a, b) == pytest.approx(expected, abs=1e-3)


LOW = 0.65  # a threshold low enough for the cosine alone to serve DIFFERENT[0] (0.68)


def test_a_lookup_rejects_with_the_verifier_as_reason(make_turbo, semantic_config, minilm, lm, events):
    a, b = DIFFERENT[0]
    turbo = make_turbo(semantic_config(threshold=LOW, verifier={"enabled": True})).install()
    assert cosine(turbo.semantic.embedder, a, b) >= LOW, "the cosine alone would serve it"
    events.attach(turbo)
    program = dspy.Predict("question -> answer")
    program(question=a)
    program(question=b)
    assert lm.engine.calls == 2, "a different question must not be served the cached answer"
    (rejected,) = events.of("semantic_reject")
    assert rejected.reason == "verifier" and rejected.extra["similarity"] >= LOW
    semantic = turbo.stats()["semantic"]
    assert semantic["reasons"] == {"rejected:verifier": 1}
    assert semantic["verifier"]["checks"] >= 1 and semantic["verifier"]["mean_ms"] > 0
    program(question="How can I cook salmon in the oven?")
    assert lm.engine.calls == 2, "a paraphrase of the first question still hits"


def test_verifier_is_off_by_default(make_turbo, semantic_config, minilm, lm):
    a, b = DIFFERENT[0]
    turbo = make_turbo(semantic_config(threshold=LOW)).install()
    assert turbo.semantic.verifier is None and turbo.stats()["semantic"]["verifier"] is None
    program = dspy.Predict("question -> answer")
    program(question=a)
    program(question=b)
    assert lm.engine.calls == 1, "without the verifier, the cosine and the guards alone decide"


def test_verifier_settings_from_yaml(make_turbo, semantic_config, minilm):
    turbo = make_turbo(semantic_config(verifier={"enabled": True, "rare_below": 4.0, "min_alignment": 0.6}))
    assert (turbo.semantic.verifier.rare_below, turbo.semantic.verifier.min_alignment) == (4.0, 0.6)


@pytest.mark.parametrize(("verifier", "path", "words"), [
    ({"min_alignment": 1.5}, "cache.semantic.verifier.min_alignment", "less than or equal to 1"),
    ({"rare_below": -1}, "cache.semantic.verifier.rare_below", "greater than or equal to 0"),
    ({"enabeld": True}, "cache.semantic.verifier.enabeld", "did you mean 'enabled'"),
    ({"enabled": "sometimes"}, "cache.semantic.verifier.enabled", "true or false"),
])
def test_bad_verifier_settings_name_the_path(semantic_config, verifier, path, words):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load(semantic_config(verifier=verifier))
    (issue,) = info.value.issues
    assert issue.path == path and words in issue.message


def test_missing_wordfreq_is_a_load_error_naming_the_package(monkeypatch, semantic_config, minilm):
    import sys

    monkeypatch.setitem(sys.modules, "wordfreq", None)
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load(semantic_config(verifier={"enabled": True}))
    (issue,) = info.value.issues
    assert issue.path == "cache.semantic.verifier" and "dspy-turbo-faiss[verifier]" in issue.message
    assert "enabled: false" in issue.message
    dspy_turbo.load(semantic_config()).close()  # off, nothing to import
