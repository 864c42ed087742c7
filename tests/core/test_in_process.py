"""Which tiers the event loop may call inline (``CacheBackend.in_process``)."""

from __future__ import annotations

import asyncio

import dspy
import pytest

import dspy_turbo
from dspy_turbo.offline import offline_lm


class _Forwarding:
    """A wrapper (as dspy_turbo_wrap_backend may return) that forwards every attribute."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.fixture
def turbo():
    t = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}]}})
    yield t
    t.close()


def test_memory_tiers_are_in_process_and_others_are_not(turbo, tmp_path):
    assert turbo.cache.in_process
    mixed = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}, {"type": "sqlite", "path": str(tmp_path / "c.db")}]}})
    try:
        assert not mixed.cache.in_process
    finally:
        mixed.close()


def test_a_forwarding_wrapper_does_not_inherit_the_claim(turbo):
    turbo.cache.tiers[0].backend = _Forwarding(turbo.cache.tiers[0].backend)
    assert not turbo.cache.in_process


@pytest.mark.parametrize("wrapped", [False, True])
def test_async_calls_hit_and_miss_the_same_either_way(turbo, wrapped):
    if wrapped:  # not in-process: the pre-check goes to a thread, as DSPy does
        turbo.cache.tiers[0].backend = _Forwarding(turbo.cache.tiers[0].backend)
    lm = offline_lm("openai/gpt-4o-mini")
    program = dspy.Predict("question -> answer")

    async def run():
        with dspy.context(lm=lm):
            first = await program.acall(question="what is inline?")
            second = await program.acall(question="what is inline?")
        return first, second

    with turbo:
        first, second = asyncio.run(run())
    assert first.answer == second.answer
    assert lm.engine.calls == 1
    stats = turbo.stats()
    assert (sum(stats["hits"].values()), stats["misses"]) == (1, 1)
