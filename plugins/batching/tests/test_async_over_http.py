"""The ``async`` strategy over real HTTP (``dspy_turbo.openai_server``, DSPy's default engine):
the same answers as plain DSPy's ``acall``, and no thread hand-off per LM call."""

from __future__ import annotations

import asyncio

import dspy
import pytest

from dspy_turbo.openai_server import OpenAIServer


@pytest.fixture
def server():
    with OpenAIServer(latency=0.01) as running:
        yield running


def _lm(server):
    return dspy.LM("openai/gpt-4o-mini", api_base=server.url, api_key="test-not-a-secret", num_retries=0)


def _questions(n):
    return [{"question": f"what is {i} plus {i}?"} for i in range(n)]


def test_an_async_batch_answers_as_plain_acall_does(make_turbo, server):
    program = dspy.ChainOfThought("question -> answer")
    questions = _questions(12)

    async def plain():
        return await asyncio.gather(*(program.acall(**q) for q in questions))

    with dspy.context(lm=_lm(server), disable_history=True):
        expected = asyncio.run(plain())
        with dspy.context(lm=_lm(server)):  # a fresh LM: nothing served from the first run's DSPy cache object
            turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}]}, "batching": {"type": "async", "progress": False}})
            got = turbo.batch(program, questions, strategy="async", item_cache=False)
    assert [type(r) for r in got] == [type(e) for e in expected]
    assert [(r.reasoning, r.answer) for r in got] == [(e.reasoning, e.answer) for e in expected]


def test_an_async_batch_makes_no_thread_hand_off_per_lm_call(make_turbo, server, monkeypatch):
    """DSPy's async path hands capability hints and the native engine's target to a thread
    on every call; with the provider built and the price map loaded both are CPU only, and a
    batch's loop runs them itself (only the first call of the loop's engine builds it)."""
    import dspy_turbo.dspy_integration as integration

    handed: list[str] = []
    original = integration.runs_inline

    def spy(task):
        inline = original(task)
        if not inline:
            handed.append(getattr(getattr(task, "args", (task,))[0], "__name__", repr(task)))
        return inline

    monkeypatch.setattr(integration, "runs_inline", spy)
    turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}]}, "batching": {"type": "async", "progress": False}})
    with dspy.context(lm=_lm(server), disable_history=True):
        turbo.batch(dspy.Predict("question -> answer"), _questions(2), strategy="async")  # price map, first import
        handed.clear()
        results = turbo.batch(dspy.Predict("question -> answer"), _questions(20)[2:], strategy="async",
                              max_concurrency=4)
    assert all(r.answer for r in results)
    assert server.calls == 20
    assert handed.count("_target") <= 1, handed  # the new loop's engine builds its provider once
    assert [name for name in handed if name != "_target" and name != "shutdown"] == []
