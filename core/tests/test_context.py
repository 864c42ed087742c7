"""The context assembler and demo selection keep prompts within a token budget."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dspy_turbo.routing.context import Tokenizer, assemble, count_tokens, select_demos, tokenizer_for

GPT = tokenizer_for("openai/gpt-4o-mini")
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
words = st.lists(st.sampled_from(["alpha", "béta", "日本語", "the", "\n", "  ", "x=1;", "🙂", "naïve", "token"]),
                 max_size=60).map(" ".join)
passages = st.lists(st.one_of(text, words), max_size=12)
budgets = st.integers(min_value=0, max_value=400)


def test_openai_models_get_their_own_tokenizer_offline():
    assert GPT.exact and GPT.name == "tiktoken:o200k_base"
    assert tokenizer_for("openai/gpt-4").name == "tiktoken:cl100k_base"
    other = tokenizer_for("anthropic/claude-3-5-haiku")
    assert not other.exact, "another vendor's model is an estimate, and says so"
    assert count_tokens("hello world", "openai/gpt-4o") == 2


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(passages=passages, budget=budgets, truncate=st.booleans(),
       tokenizer=st.sampled_from([GPT, tokenizer_for("anthropic/claude-3-haiku"), Tokenizer()]))
def test_assembled_context_never_exceeds_the_budget(passages, budget, truncate, tokenizer):
    ctx = assemble(passages, budget, tokenizer=tokenizer, truncate=truncate)
    assert tokenizer.count(ctx.text) <= budget
    assert ctx.tokens == tokenizer.count(ctx.text)
    # the lowest-ranked go first: what is kept is a prefix of the ranking
    assert ctx.kept == list(range(len(ctx.kept)))
    assert sorted(ctx.kept + ctx.dropped) == list(range(len(passages)))
    whole = ctx.passages[:-1] if ctx.truncated else ctx.passages
    assert whole == passages[: len(whole)], "passages are never cut unless asked"
    if ctx.truncated:
        assert truncate and passages[ctx.kept[-1]].startswith(ctx.passages[-1])
    if not truncate and len(ctx.kept) < len(passages):
        nxt = passages[len(ctx.kept)]
        joined = "\n\n".join([*ctx.passages, nxt]) if ctx.passages else nxt
        assert tokenizer.count(joined) > budget, "a passage is dropped only when it does not fit"


def test_truncation_cuts_at_a_token_boundary_never_inside_a_character():
    ranked = ["first passage " * 5, "日本語のテキスト " * 40]
    whole = assemble(ranked, 40, model="openai/gpt-4o")
    assert whole.kept == [0] and whole.dropped == [1] and not whole.truncated
    cut = assemble(ranked, 40, model="openai/gpt-4o", truncate=True)
    assert cut.kept == [0, 1] and cut.truncated and cut.tokens <= 40
    assert ranked[1].startswith(cut.passages[1]) and "\ufffd" not in cut.text
    tokens = GPT.encoding.encode(cut.passages[1])
    assert GPT.encoding.decode(tokens) == cut.passages[1]


def test_negative_budget_is_an_error():
    with pytest.raises(ValueError, match="budget must be >= 0 tokens"):
        assemble(["x"], -1)


DEMOS = [
    {"question": "What is the capital of France?", "answer": "Paris"},
    {"question": "What is the capital of France, exactly?", "answer": "Paris"},
    {"question": "What is the capital of Spain?", "answer": "Madrid"},
    {"question": "Convert 3 km to miles.", "answer": "1.86 miles"},
    {"question": "Who wrote Hamlet?", "answer": "Shakespeare"},
]


def test_demo_selection_fits_the_budget_and_prefers_diverse_demos():
    cost = [GPT.count(f"question: {d['question']}\nanswer: {d['answer']}") for d in DEMOS]
    picked = select_demos(DEMOS, budget=cost[0] + cost[3] + cost[4], model="openai/gpt-4o-mini")
    assert picked.tokens <= picked.budget and picked.tokens == sum(picked.costs)
    assert picked.indices == [0, 3, 4], "the near-duplicate France demo is the first to go"
    three = select_demos(DEMOS, budget=10_000, model="openai/gpt-4o-mini", max_demos=3)
    assert 1 not in three.indices and len(three.demos) == 3


@settings(max_examples=60, deadline=None, database=None)
@given(demos=st.lists(st.one_of(text, words), max_size=10), budget=budgets)
def test_demo_selection_never_exceeds_the_budget(demos, budget):
    picked = select_demos(demos, budget, tokenizer=GPT)
    assert sum(GPT.count(d) for d in picked.demos) <= budget
    assert picked.indices == sorted(set(picked.indices))


def test_demo_selection_takes_dspy_examples_and_measures_diversity_with_an_embedder():
    import dspy

    demos = [dspy.Example(question="Which city is France's capital?", answer="Paris").with_inputs("question"),
             dspy.Example(question="Name the seat of the French government.", answer="Paris").with_inputs("question"),
             dspy.Example(question="At what temperature does water boil?", answer="100 C").with_inputs("question")]
    # paraphrases 0 and 1 share no content words: only the embedder can tell they say the same
    vectors = {"France": [1.0, 0.0], "French": [0.99, 0.14], "water": [0.0, 1.0]}

    def embed(texts):
        return [next(v for k, v in vectors.items() if k in t) for t in texts]

    picked = select_demos(demos, budget=10_000, model="openai/gpt-4o-mini", embed=embed, max_demos=2)
    assert picked.indices == [0, 2]
    assert picked.demos[0].question.startswith("Which city")
