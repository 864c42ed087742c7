"""Routing benchmark: what ``turbo.router()`` adds to a cached ``dspy.Predict`` call, in one run.

    python bench/bench_routing.py           # full run (~20 s)
    python bench/bench_routing.py --quick   # fewer repeats

Baseline: the same program on the tier's own LM with the same Turbo installed (memory
tier), so both sides are cache hits and differ only by the routing decision (request
features, tokenizer estimate, route event). Both sides alternate (A/B, B/A, ...); each
repeat times ``number`` calls (timeit, GC off); the table shows the median per-call time
and the ratio routed / direct. The decision itself and the context assembler are timed
alone and shown in microseconds (information only: no baseline).
"""

from __future__ import annotations

import argparse
import os
import statistics
import timeit

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402

import dspy_turbo  # noqa: E402
from dspy_turbo.engines.offline import offline_lm  # noqa: E402
from dspy_turbo.routing.context import assemble  # noqa: E402

CONFIG = {"cache": {"tiers": [{"type": "memory"}]}, "routing": {"type": "complexity", "tiers": [
    {"name": "small", "model": "openai/gpt-4o-mini"}, {"name": "large", "model": "openai/gpt-4o"}]}}
QUESTION = "What is the capital of France, and since when has it been the seat of government?"


def per_call(fn, number: int) -> float:
    return timeit.timeit(fn, number=number) / number


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 4 if args.quick else 10

    turbo = dspy_turbo.load(CONFIG).install()
    small = offline_lm("openai/gpt-4o-mini")
    router = turbo.router(lms={"openai/gpt-4o-mini": small, "openai/gpt-4o": offline_lm("openai/gpt-4o")})
    predict = dspy.Predict("question -> answer")

    def direct():
        with dspy.context(lm=small, disable_history=True):
            return predict(question=QUESTION)

    def routed():
        with dspy.context(lm=router, disable_history=True):
            return predict(question=QUESTION)

    assert direct().answer == routed().answer  # warm: both are cache hits on the small model's entry
    calls = small.engine.calls
    number = max(50, int(0.3 / per_call(direct, 20)))
    times = {"direct": [], "routed": []}
    for i in range(repeats):
        order = (("direct", direct), ("routed", routed)) if i % 2 == 0 else (("routed", routed), ("direct", direct))
        for name, fn in order:
            times[name].append(per_call(fn, number))
    assert small.engine.calls == calls, "no timed call may reach the LM"
    d, r = statistics.median(times["direct"]), statistics.median(times["routed"])
    messages = dspy.ChatAdapter().format(dspy.Signature("question -> answer"), demos=[], inputs={"question": QUESTION})
    decide = statistics.median(per_call(lambda: router.decide(messages=messages, emit=False), 2000) for _ in range(5))
    adapter, signature = dspy.ChatAdapter(), dspy.Signature("question -> answer")
    fresh = [adapter.format(signature, demos=[], inputs={"question": f"{QUESTION} ({i})"}) for i in range(5 * 1100)]
    batches = iter(fresh)
    decide_new = statistics.median(per_call(lambda: router.decide(messages=next(batches), emit=False), 1000)
                                   for _ in range(5))
    passages = [f"Passage {i}: " + "the quick brown fox jumps over the lazy dog " * 8 for i in range(20)]
    fit = statistics.median(per_call(lambda: assemble(passages, 600, model="openai/gpt-4o"), 200) for _ in range(5))
    turbo.close()

    print(f"{'row':<44} {'direct µs':>10} {'routed µs':>10} {'ratio':>6}")
    print(f"{'e2e dspy.Predict hit (memory tier)':<44} {d * 1e6:>10.1f} {r * 1e6:>10.1f} {r / d:>5.2f}x")
    print(f"{'decision alone, repeated request (memoised)':<44} {'':>10} {decide * 1e6:>10.1f}")
    print(f"{'decision alone, new request':<44} {'':>10} {decide_new * 1e6:>10.1f}")
    print(f"{'assemble 20 passages into 600 tokens':<44} {'':>10} {fit * 1e6:>10.1f}")
    print(f"({repeats} alternating repeats x {number} calls, medians)")


if __name__ == "__main__":
    main()
