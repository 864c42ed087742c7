"""What is embedded, what must match, and the guards: pure functions, no model needed."""

import dspy
import pytest

from dspy_turbo_faiss.semantic import extract, features, guard_reason


def request_for(signature, adapter=None, **inputs):
    messages = (adapter or dspy.ChatAdapter()).format(dspy.Signature(signature), demos=[], inputs=inputs)
    return {"model": "openai/gpt-4o-mini", "messages": messages, "temperature": 0.0,
            "_fn_identifier": "dspy.clients.lm.litellm_completion"}


@pytest.mark.parametrize("adapter", [dspy.ChatAdapter(), dspy.JSONAdapter()], ids=["ChatAdapter", "JSONAdapter"])
def test_only_the_input_fields_are_embedded(adapter):
    query, masked = extract(request_for("context, question -> answer", adapter, context="A guide to Paris.",
                                        question="What is the capital of France?"))
    assert query.signature == "context, question -> answer"
    assert query.text == "context: A guide to Paris.\nquestion: What is the capital of France?"
    rendered = masked["messages"][-1]["content"]
    assert "Paris" not in rendered and "capital" not in rendered, "embedded values are not part of the scope"
    assert "Respond with" in rendered, "the adapter's own text stays in the scope"


def test_chosen_fields_leave_the_others_in_the_scope():
    query, masked = extract(request_for("context, question -> answer", context="A guide to Paris.", question="Capital?"),
                            lambda signature: ["question"])
    assert query.text == "Capital?" and query.fields == ("question",)
    assert "A guide to Paris." in masked["messages"][-1]["content"]


def test_plain_prompt_and_skips():
    query, _ = extract({"model": "m", "messages": [{"role": "user", "content": "hello there"}]})
    assert (query.signature, query.text) == ("prompt", "hello there")
    assert extract({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})[0].skip == "non_text"
    assert extract(request_for("question -> answer", question="   "))[0].skip == "empty"
    assert extract(request_for("image: dspy.Image -> answer", image=dspy.Image("https://example.com/a.png")))[0].skip == "non_text"
    assert extract({"model": "m"})[0].skip == "unparsed"


@pytest.mark.parametrize(("a", "b", "reason"), [
    ("Can I take castor oil at 37 weeks pregnant?", "Can I take castor oil at 35 weeks pregnant?", "number"),
    ("What is 2 + 3?", "What is two plus two?", "number"),
    ("Book a table for three people", "Book a table for four people", "number"),
    ("What happened in Paris in May?", "What happened in Paris in June?", "date"),
    ("Is coffee good for you?", "Is coffee not good for you?", "negation"),
    ("Why doesn't my code compile?", "Why does my code compile?", "negation"),
    ("What is the capital of France?", "What is the capital of Spain?", "entity"),
    ("How do I install Django on Ubuntu?", "How do I install Django on Windows?", "entity"),
])
def test_guards_reject(a, b, reason):
    assert guard_reason(features(a), features(b)) == reason


@pytest.mark.parametrize(("a", "b"), [
    ("What is the capital of France?", "what's the capital city of france"),
    ("Can I take castor oil at 37 weeks pregnant?", "Is castor oil safe when 37 weeks pregnant?"),
    ("How do I learn Python fast?", "What is the fastest way to learn python?"),
    ("What is 2 + 2?", "What is two plus two?"),
    ("Which Australian cities are worth visiting?", "What cities in Australia should I visit?"),
    ("Why isn't my code compiling?", "Why does my code not compile?"),
])
def test_guards_pass_true_paraphrases(a, b):
    assert guard_reason(features(a), features(b)) is None


def test_guards_can_be_switched_off():
    from dspy_turbo_faiss.feature import SemanticGuards

    a, b = features("Is coffee good for you?"), features("Is coffee not good for you?")
    assert guard_reason(a, b, SemanticGuards(negations=False)) is None


def test_pick_serves_only_a_clear_winner():
    from dspy_turbo_faiss.semantic import pick

    def never(i):
        return None

    assert pick([0.97, 0.80], 0.9, 0.01, never) == (0, [])
    assert pick([0.97, 0.965], 0.9, 0.01, never) == (None, [(0, "ambiguous"), (1, "ambiguous")]), "two near-equal questions"
    assert pick([0.97, 0.93], 0.9, 0.01, lambda i: "number" if i == 0 else None) == (None, [(0, "number"), (1, "ambiguous")])
    assert pick([0.89], 0.9, 0.01, never) == (None, [])
    assert pick([0.97, 0.965], 0.9, 0.0, never) == (0, [])
