"""Near-duplicate questions that must never share an answer: affix negation, opposite words,
swapped arguments. Real MiniLM, real FAISS, real DSPy programs, at the default threshold."""

import json
from pathlib import Path

import dspy
import numpy as np
import pytest

from dspy_turbo_faiss.guards import features, guard_reason, table
from dspy_turbo_faiss.semantic import rejection

CORPUS = Path(__file__).resolve().parents[3] / "bench" / "data" / "near_duplicates.json"

# The pairs of each class that MiniLM puts at or above 0.95: today's default serves them.
AFFIX = [
    ("Is it possible to travel faster than light?", "Is it impossible to travel faster than light?"),
    ("Why am I able to sleep after drinking coffee?", "Why am I unable to sleep after drinking coffee?"),
    ("Is this plant toxic to cats?", "Is this plant non-toxic to cats?"),
]
ANTONYM = [
    ("What is the maximum dose of ibuprofen for adults?", "What is the minimum dose of ibuprofen for adults?"),
    ("Why do I feel more tired after sleeping?", "Why do I feel less tired after sleeping?"),
    ("What happens to water above freezing point?", "What happens to water below freezing point?"),
    ("Why is chess so easy to learn?", "Why is chess so hard to learn?"),
]
ORDER = [
    ("How do I convert 5 miles to km?", "How do I convert 5 km to miles?"),
    ("How do I translate a sentence from English to French?", "How do I translate a sentence from French to English?"),
    ("Did Germany invade France in World War 1?", "Did France invade Germany in World War 1?"),
    ("Is Python faster than Java?", "Is Java faster than Python?"),
]


@pytest.mark.parametrize(("a", "b", "reason"), [
    *((a, b, "negation") for a, b in AFFIX),
    ("What should I do if the patient is responsive?", "What should I do if the patient is unresponsive?", "negation"),
    ("Is it legal to record a call?", "Is it illegal to record a call?", "negation"),
    ("Which foods contain gluten?", "Which foods are gluten-free?", "negation"),
    ("Is a root canal painful?", "Is a root canal painless?", "antonym"),
    *((a, b, "antonym") for a, b in ANTONYM),
    ("What should I eat before surgery?", "What should I eat after surgery?", "antonym"),
    ("How do I increase my blood pressure?", "How do I decrease my blood pressure?", "antonym"),
    ("Which was the earliest Beatles album?", "Which was the latest Beatles album?", "antonym"),
    ("Who was the first person to walk on the moon?", "Who was the last person to walk on the moon?", "number"),
    ("Why do people overestimate their abilities?", "Why do people underestimate their abilities?", "antonym"),
    ("What does the employer pay for health insurance?", "What does the employee pay for health insurance?", "antonym"),
    ("How do I turn on Bluetooth on my iPhone?", "How do I turn off Bluetooth on my iPhone?", "antonym"),
    ("Is a big dog good for a small flat?", "Is a small dog good for a small flat?", "antonym"),
    *((a, b, "order") for a, b in ORDER),
    ("How much is 100 dollars in euros?", "How much is 100 euros in dollars?", "order"),
    ("How many cups are in a liter?", "How many liters are in a cup?", "order"),
    ("Is a square a rectangle?", "Is a rectangle a square?", "order"),
    ("What is the cheapest way to ship from Canada to the US?", "What is the cheapest way to ship from the US to Canada?", "order"),
    ("What happened to Bitcoin last week?", "What happened to Bitcoin last month?", "date"),
])
def test_guard_names_the_difference(a, b, reason):
    assert guard_reason(features(a), features(b)) == reason
    assert guard_reason(features(b), features(a)) == reason, "a guard is symmetric"


@pytest.mark.parametrize(("a", "b"), [
    ("What is the difference between Python and Java?", "What is the difference between Java and Python?"),
    ("Who is older, Tom Hanks or Meryl Streep?", "Who is older, Meryl Streep or Tom Hanks?"),
    ("What are the pros and cons of remote work?", "What are the cons and pros of remote work?"),
    ("Compare the iPhone with the Pixel", "Compare the Pixel with the iPhone"),
    ("How do I convert 5 miles to km?", "How can I convert 5 miles into km?"),
    ("How do I get to London from Paris?", "How do I get from Paris to London?"),
    ("Did Germany invade France?", "Was France invaded by Germany?"),
    ("How do I sort a list in descending order in Python?", "How to sort a Python list in descending order?"),
    ("Is it impossible to travel faster than light?", "Is travelling faster than light impossible?"),
    ("What is the maximum dose of ibuprofen?", "What's the max dose of ibuprofen?"),
    ("How do I lower my blood pressure?", "How can I reduce my blood pressure?"),
    ("What are the benefits of a standing desk?", "What are the advantages of a standing desk?"),
    ("How do I inform my landlord?", "How do I tell my landlord? What form do I use?"),
])
def test_guards_pass_paraphrases(a, b):
    assert guard_reason(features(a), features(b)) is None


def test_the_word_table_ships_with_the_package():
    """The table is package data, read through importlib.resources (not a path next to the source)."""
    from importlib import resources

    raw = json.loads(resources.files("dspy_turbo_faiss").joinpath("data/antonyms.json").read_text(encoding="utf-8"))
    assert len(raw["opposites"]) >= 100
    forms = table().forms
    assert {side for _, side in forms["maximum"]} == {0} and {side for _, side in forms["minimum"]} == {1}
    assert forms["turn on"] and forms["turn off"]


def test_each_guard_can_be_switched_off():
    from dspy_turbo_faiss.feature import SemanticGuards

    for (a, b), flag in ((AFFIX[0], "negations"), (ANTONYM[0], "antonyms"), (ORDER[0], "order")):
        assert guard_reason(features(a), features(b)) is not None
        assert guard_reason(features(a), features(b), SemanticGuards(**{flag: False})) is None, flag


# -- through a real DSPy program at the default threshold --------------------------------------


@pytest.fixture
def default_turbo(make_turbo, semantic_config, minilm, lm):
    """The default semantic decision (threshold 0.95, guards on), installed, fronting the offline LM."""
    return make_turbo(semantic_config(threshold=0.95)).install()


@pytest.mark.parametrize(("asked_first", "asked_then", "reason"),
                         [(a, b, "negation") for a, b in AFFIX[:3]] + [(a, b, "antonym") for a, b in ANTONYM[:2]]
                         + [(a, b, "order") for a, b in ORDER[:3]],
                         ids=lambda v: v[:28] if isinstance(v, str) and len(v) > 12 else v)
def test_near_duplicate_gets_its_own_answer(default_turbo, lm, events, asked_first, asked_then, reason):
    events.attach(default_turbo)
    program = dspy.Predict("question -> answer")
    first = program(question=asked_first)
    second = program(question=asked_then)
    assert lm.engine.calls == 2, "a near-duplicate that asks something else must reach the LM"
    assert second.answer != first.answer
    rejected = events.of("semantic_reject")
    assert [e.reason for e in rejected] == [reason] and rejected[0].extra["similarity"] >= 0.95, \
        "MiniLM puts the pair above the threshold: the guard, not the cosine, turned it away"
    assert default_turbo.stats()["semantic"]["reasons"] == {f"rejected:{reason}": 1}
    program(question=asked_then)
    assert lm.engine.calls == 2, "asked again, the question gets its own cached answer"


def test_paraphrase_still_served_at_the_default(default_turbo, lm, events):
    events.attach(default_turbo)
    program = dspy.Predict("question -> answer")
    first = program(question="How do I convert 5 miles to km?")
    second = program(question="How can I convert 5 miles into km?")
    assert lm.engine.calls == 1 and second.answer == first.answer
    assert len(events.of("hit", tier="semantic")) == 1


def test_over_http_the_swapped_conversion_reaches_the_server(make_turbo, semantic_config, minilm, http_lm,
                                                             openai_server):
    make_turbo(semantic_config(threshold=0.95)).install()
    program = dspy.Predict("question -> answer")
    program(question=ORDER[0][0])
    program(question=ORDER[0][1])
    assert openai_server.calls == 2
    program(question="How can I convert 5 miles into km?")
    assert openai_server.calls == 2, "the paraphrase is served from the cache"


def test_the_verifier_does_not_change_the_guards(make_turbo, semantic_config, minilm, lm, events):
    turbo = events.attach(make_turbo(semantic_config(threshold=0.95, verifier={"enabled": True})).install())
    program = dspy.Predict("question -> answer")
    for a, b in (AFFIX[0], ANTONYM[0], ORDER[0]):
        program(question=a)
        program(question=b)
    assert lm.engine.calls == 6
    assert [e.reason for e in events.of("semantic_reject")] == ["negation", "antonym", "order"]
    assert turbo.stats()["semantic"]["verifier"]["checks"] == 0, "the cheap guards decide before the verifier"


# -- the corpus ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_corpus_near_duplicates_are_not_served(minilm):
    """The held-out pairs of the corpus (never used to tune the guards), each pair alone both
    ways, with the real model: at most 1 % of near-duplicates served, and the paraphrases are."""
    from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder

    pairs = json.loads(CORPUS.read_text(encoding="utf-8"))["pairs"]
    held = [p for p in pairs if p["split"] == "held_out"]
    assert len(pairs) >= 300 and len(held) >= len(pairs) // 3
    embedder = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options())
    texts = sorted({t for p in held for t in (p["a"], p["b"])})
    vectors = dict(zip(texts, embedder.embed(texts), strict=True))

    def served(p):
        close = float(np.dot(vectors[p["a"]], vectors[p["b"]])) >= 0.95
        return close and any(rejection(q, c) is None for q, c in ((p["a"], p["b"]), (p["b"], p["a"])))

    negatives = [p for p in held if not p["label"]]
    wrong = [(p["a"], p["b"]) for p in negatives if served(p)]
    assert len(wrong) <= 0.01 * len(negatives), wrong
    paraphrases = [p for p in held if p["label"]]
    close = [p for p in paraphrases if float(np.dot(vectors[p["a"]], vectors[p["b"]])) >= 0.95]
    assert sum(served(p) for p in close) >= 0.9 * len(close), "the guards still serve paraphrases"
