"""Adding dspy-turbo to an existing DSPy program: three lines.

    turbo = dspy_turbo.load("examples/turbo.yaml")  # 1. load a config (load() for the default)
    turbo.install()                                  # 2. every dspy.LM call now goes through it
    print(turbo.stats())                             # 3. see what it saved

The program (the demo's ``QAPipeline``: rewrite, retrieve, answer) is not changed at all.
It runs offline by default: the offline LM answers deterministically after a short
delay, priced as gpt-4o-mini, with no key and no network. For a real model, name it and
set its provider's key:

    DSPY_TURBO_MODEL=openai/gpt-4o-mini OPENAI_API_KEY=sk-... python examples/qa_pipeline.py
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # price from DSPy's bundled table, offline

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import dspy  # noqa: E402

import dspy_turbo  # noqa: E402
from dspy_turbo.cli.demo import QAPipeline  # noqa: E402
from dspy_turbo.engines.offline import offline_lm  # noqa: E402

QUESTIONS = [
    "What is the Eiffel Tower best known for?",
    "Why do honeybees matter to farmers?",
    "How would you explain black holes to a ten-year-old?",
    "What is the Eiffel Tower best known for?",  # asked again: answered from the cache
]


def make_lm() -> dspy.LM:
    model = os.environ.get("DSPY_TURBO_MODEL")
    if model:
        return dspy.LM(model)
    return offline_lm("openai/gpt-4o-mini", latency=0.3, jitter=0.25)


def main() -> None:
    dspy.configure(lm=make_lm())
    program = QAPipeline()  # your existing program

    turbo = dspy_turbo.load(Path(__file__).with_name("turbo.yaml"))
    turbo.install()
    try:
        for run in ("first run", "second run (same questions)"):
            started = time.perf_counter()
            answers = [program(question=question).answer for question in QUESTIONS]
            print(f"{run}: {time.perf_counter() - started:.2f} s")
        for question, answer in zip(QUESTIONS, answers, strict=True):
            print(f"  {question}\n    -> {answer}")

        stats = turbo.stats()
        print(f"LM calls: {stats['lm_calls']}, cache hits: {stats['hits_total']}, hit rate: {stats['hit_rate']:.0%}, "
              f"coalesced: {stats['coalesced']}")
        print(f"tokens spent/saved: {stats['tokens']['spent']:,}/{stats['tokens']['saved']:,}, "
              f"dollars spent/saved: ${stats['dollars']['spent']:.5f}/${stats['dollars']['saved']:.5f}")
    finally:
        turbo.close()  # uninstalls: DSPy gets its own cache back


if __name__ == "__main__":
    main()
