"""A help-desk bot whose users ask the same things in their own words.

    python examples/semantic_rephrase.py

With the semantic cache (``examples/semantic.yaml``) a rephrased question is answered
from the cache, while a question that differs in what matters (another number, another
product, a negation) still goes to the LM. Offline by default: the offline LM answers
deterministically after a delay, priced as gpt-4o-mini. For a real model:

    DSPY_TURBO_MODEL=openai/gpt-4o-mini OPENAI_API_KEY=sk-... python examples/semantic_rephrase.py
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the embedding model ships as a package

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import dspy  # noqa: E402

import dspy_turbo  # noqa: E402
from dspy_turbo.engines.offline import offline_lm  # noqa: E402

# (user question, what we expect the cache to do)
CONVERSATIONS = [
    ("How do I reset my password?", "LM call"),
    ("How can I reset my password?", "semantic hit"),
    ("What's the way to reset my password?", "LM call (below the threshold)"),
    ("How do I cancel my subscription?", "LM call"),
    ("How can I cancel my subscription?", "semantic hit"),
    ("Can I get a refund within 30 days?", "LM call"),
    ("Can I get a refund in 30 days?", "semantic hit"),
    ("Can I get a refund within 60 days?", "LM call (another number)"),
    ("Does the Pro plan include phone support?", "LM call"),
    ("Does the Basic plan include phone support?", "LM call (another plan)"),
]


class HelpDesk(dspy.Module):
    def __init__(self):
        super().__init__()
        self.answer = dspy.Predict(dspy.Signature("question -> answer",
                                                  instructions="Answer the customer's question about our product."))

    def forward(self, question):
        return self.answer(question=question)


def make_lm() -> dspy.LM:
    model = os.environ.get("DSPY_TURBO_MODEL")
    return dspy.LM(model) if model else offline_lm("openai/gpt-4o-mini", latency=0.3)


def main(lm: dspy.LM | None = None) -> dict:
    bot = HelpDesk()
    turbo = dspy_turbo.load(Path(__file__).with_name("semantic.yaml"))
    turbo.install()
    try:
        with dspy.context(lm=lm or make_lm()):
            return run(bot, turbo)
    finally:
        turbo.close()


def run(bot: HelpDesk, turbo: dspy_turbo.Turbo) -> dict:
    turbo.clear()
    for question, expected in CONVERSATIONS:
        hits_before = turbo.stats()["hits"].get("semantic", 0)
        started = time.perf_counter()
        bot(question=question)
        elapsed = time.perf_counter() - started
        served = "semantic hit" if turbo.stats()["hits"].get("semantic", 0) > hits_before else "LM call"
        print(f"{elapsed * 1000:7.1f} ms  {served:<13} (expected {expected:<29}) {question}")
    stats = turbo.stats()
    semantic = stats["semantic"]
    print(f"\nLM calls: {stats['lm_calls']}, semantic hits: {semantic['hits']}, guard rejections: "
          f"{semantic['reasons']}, mean hit similarity: {semantic['mean_hit_similarity']}")
    return stats


if __name__ == "__main__":
    main()
