"""turbo.stats() says which of its hits and stores were whole batch items (the item cache)
and which were LM calls: ``batch_items`` holds the item-level ones, counted in both."""

from __future__ import annotations

import dspy
import pytest

from dspy_turbo.engines.offline import offline_lm

STRATEGIES = ["thread", "async"]


class QA(dspy.Module):
    """Two LM requests per item."""

    def __init__(self):
        super().__init__()
        self.draft = dspy.Predict("question -> answer")
        self.check = dspy.Predict("question, answer -> verdict: bool")

    def forward(self, question):
        answer = self.draft(question=question).answer
        return dspy.Prediction(answer=answer, verdict=self.check(question=question, answer=answer).verdict)

    async def aforward(self, question):
        answer = (await self.draft.acall(question=question)).answer
        return dspy.Prediction(answer=answer, verdict=(await self.check.acall(question=question, answer=answer)).verdict)


@pytest.fixture
def lm_for_batches():
    model = offline_lm("openai/gpt-4o-mini", latency=0.005)
    with dspy.context(lm=model, adapter=None):
        yield model


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_stats_tell_item_level_hits_and_stores_from_lm_level_ones(make_turbo, lm_for_batches, strategy):
    turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}]}, "batching": {"type": "thread"}})
    examples = [{"question": f"q{i}"} for i in range(10)]
    turbo.batch(QA(), examples, strategy=strategy, item_cache=True)
    first = turbo.stats()
    assert first["stores"] == {"memory": 30}  # 20 LM responses and 10 items, counted together
    assert first["batch_items"] == {"hits": {}, "hits_total": 0, "stores": {"memory": 10}}

    turbo.reset_stats()
    turbo.batch(QA(), examples, strategy=strategy, item_cache=True)
    again = turbo.stats()
    assert again["hits_total"] == 10 and again["batch_items"]["hits"] == {"memory": 10}
    assert again["hits_total"] - again["batch_items"]["hits_total"] == 0, "no LM-level lookup: the items were whole"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_without_the_item_cache_every_count_is_lm_level(make_turbo, lm_for_batches, strategy):
    turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}]}, "batching": {"type": "thread"}})
    examples = [{"question": f"q{i}"} for i in range(10)]
    turbo.batch(QA(), examples, strategy=strategy)
    turbo.batch(QA(), examples, strategy=strategy)
    stats = turbo.stats()
    assert stats["hits_total"] == 20 and stats["stores"] == {"memory": 20}
    assert "batch_items" not in stats
