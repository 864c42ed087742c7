"""The semantic cache's judge (off by default): a scripted judge LM, real MiniLM and FAISS,
real DSPy programs; and a judge built from the config against the loopback HTTP server."""

import dspy
import pytest

from dspy_turbo.engines.offline import offline_lm
from dspy_turbo.host.config import ConfigError

ASKED = "Why is the sky blue?"
SAME = "What makes the sky blue?"  # MiniLM: 0.92, under the default threshold, in the gray zone
CLOSE = ("What is the capital city of France?", "What's the capital of France?")  # 0.956: over it, still in the zone


@pytest.fixture
def judged(make_turbo, semantic_config, minilm, lm, events):
    """``judged(answers, **judge)``: an installed Turbo whose judge is an offline LM answering
    ``answers`` (``{substring of the judge's question: reply}``); returns (turbo, judge LM)."""

    def make(answers, **judge):
        turbo = make_turbo(semantic_config(threshold=0.95, judge={"enabled": True, "model": "openai/gpt-4o-mini",
                                                                  **judge})).install()
        events.attach(turbo)
        turbo.semantic.judge.lm = offline_lm("openai/gpt-4o-mini", answers=answers, cache=False)
        return turbo, turbo.semantic.judge.lm

    return make


def test_off_by_default(make_turbo, semantic_config, minilm, lm):
    turbo = make_turbo(semantic_config(threshold=0.95)).install()
    program = dspy.Predict("question -> answer")
    program(question=ASKED)
    program(question=SAME)
    assert lm.engine.calls == 2, "0.92 is under the threshold: a miss without a judge"
    assert turbo.stats()["semantic"]["judge"] is None


def test_same_verdict_serves_a_gray_zone_candidate(judged, lm, events):
    turbo, judge = judged({f"Question B: {SAME}": "same"})
    program = dspy.Predict("question -> answer")
    first = program(question=ASKED)
    second = program(question=SAME)
    assert lm.engine.calls == 1 and second.answer == first.answer
    assert judge.engine.calls == 1
    (verdict,) = events.of("semantic_judge")
    assert verdict.reason == "same" and verdict.extra["cached"] is False and 0.90 <= verdict.extra["similarity"] < 0.95
    assert len(events.of("hit", tier="semantic")) == 1
    snap = turbo.stats()["semantic"]
    assert snap["judge"]["verdicts"]["same"] == 1 and snap["reasons"] == {"judged:same": 1}


def test_verdicts_are_cached_in_the_tiers(judged, lm, events):
    turbo, judge = judged({f"Question B: {SAME}": "same"})
    program = dspy.Predict("question -> answer")
    program(question=ASKED)
    program(question=SAME)
    turbo.semantic.judge.lm = offline_lm("openai/gpt-4o-mini", answers={"Question": "different"}, cache=False)
    program(question=SAME)
    assert lm.engine.calls == 1, "the cached verdict serves the pair again"
    assert turbo.semantic.judge.lm.engine.calls == 0, "without asking the judge again"
    assert [e.extra["cached"] for e in events.of("semantic_judge")] == [False, True]


def test_different_verdict_is_a_miss_even_above_the_threshold(judged, lm, events):
    turbo, judge = judged({"Question B": "different"})
    program = dspy.Predict("question -> answer")
    program(question=CLOSE[0])
    program(question=CLOSE[1])
    assert lm.engine.calls == 2, "in the zone, only the judge's 'same' serves, whatever the threshold"
    assert [e.reason for e in events.of("semantic_judge")] == ["different"]
    assert [e.reason for e in events.of("semantic_reject")] == ["judge"]


def test_guards_decide_before_the_judge(judged, lm, events):
    turbo, judge = judged({"Question B": "same"})
    program = dspy.Predict("question -> answer")
    program(question="Is it possible to learn Japanese in a year?")
    program(question="Is it impossible to learn Japanese in a year?")
    assert lm.engine.calls == 2 and judge.engine.calls == 0
    assert [e.reason for e in events.of("semantic_reject")] == ["negation"]


@pytest.mark.parametrize(("reply", "expected"), [("Same.", "same"), ("yes", "same"), ("maybe", "unsure"), ("", "unsure")])
def test_the_reply_is_read_strictly(judged, lm, events, reply, expected):
    turbo, judge = judged({"Question B": reply} if reply else {"Question B": " "})
    program = dspy.Predict("question -> answer")
    program(question=ASKED)
    program(question=SAME)
    assert [e.reason for e in events.of("semantic_judge")] == [expected]
    assert lm.engine.calls == (1 if expected == "same" else 2)


def test_budget_spent_means_a_miss_without_a_call(judged, lm, events):
    turbo, judge = judged({"Question B": "same"}, budget=0)
    program = dspy.Predict("question -> answer")
    program(question=ASKED)
    program(question=SAME)
    assert lm.engine.calls == 2 and judge.engine.calls == 0
    assert [e.reason for e in events.of("semantic_judge")] == ["budget"]


def test_a_failing_judge_is_a_miss_never_an_exception(judged, lm, events):
    turbo, _ = judged({})
    judge = turbo.semantic.judge.lm = offline_lm("openai/gpt-4o-mini", answers={"Question B": "same"}, cache=False,
                                                 num_retries=0)
    judge.engine.fail_next = 1
    program = dspy.Predict("question -> answer")
    program(question=ASKED)
    second = program(question=SAME)
    assert second.answer and lm.engine.calls == 2
    assert [e.reason for e in events.of("semantic_judge")] == ["error"]


def test_judge_from_config_over_http(make_turbo, semantic_config, minilm, lm, openai_server, events, monkeypatch):
    """The judge LM built from the YAML (model, api_base): a real request to the loopback
    server; a server error is an ``error`` verdict and a miss."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    turbo = events.attach(make_turbo(semantic_config(threshold=0.95, judge={
        "enabled": True, "model": "openai/gpt-4o-mini", "api_base": openai_server.url})).install())
    program = dspy.Predict("question -> answer")
    program(question=ASKED)
    openai_server.fail_next(1, 500)
    program(question=SAME)
    assert openai_server.calls == 1, "the judge asked the server once (no retries)"
    assert lm.engine.calls == 2
    assert [e.reason for e in events.of("semantic_judge")] == ["error"]
    program(question="How do I learn Python quickly?")
    program(question="What is the quickest way to learn Python?")
    assert openai_server.calls == 2
    (_, second) = events.of("semantic_judge")
    assert second.reason in ("same", "different", "unsure"), "the server's reply was read"
    assert turbo.stats()["semantic"]["judge"]["spent_this_hour"] == 2


@pytest.mark.parametrize(("judge", "message"), [
    ({"enabled": True}, "needs a model"),
    ({"gray_zone": [0.97, 0.9]}, "gray_zone"),
])
def test_bad_judge_config_names_the_path(make_turbo, semantic_config, judge, message):
    with pytest.raises(ConfigError, match=message) as info:
        make_turbo(semantic_config(judge=judge))
    assert "cache.semantic.judge" in str(info.value)
