"""Core benchmark: dspy-turbo's memory tier against DSPy's own memory cache, in one run.

    python bench/bench_core.py            # full run (well under two minutes)
    python bench/bench_core.py --quick    # fewer repetitions, a smoke test
    python bench/bench_core.py --check    # exit 1 when any target fails

Machines are noisy, so nothing here is an absolute number: every turbo timing is a ratio
against DSPy measured in the same run, on the same request dict and the same value
objects. Each comparison alternates the two sides (A/B, then B/A, ...) for several
repeats; a repeat times ``number`` calls in a row (timeit, GC off) and the reported
per-call time is the MEDIAN over repeats. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import timeit
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before dspy/litellm: no network fetch

import dspy  # noqa: E402
import litellm  # noqa: E402
import orjson  # noqa: E402
from dspy.clients.cache import Cache  # noqa: E402

import dspy_turbo  # noqa: E402
from dspy_turbo.engines.offline import offline_lm, render_fields  # noqa: E402
from dspy_turbo.integration.dspy_cache import DSPyCache  # noqa: E402

IGNORED = ["api_key", "api_base", "base_url"]
MEMORY_ONLY = {"cache": {"tiers": [{"type": "memory"}]}}

# A ~600-character instruction makes DSPy's rendered system message ~1 KB, as in real programs.
INSTRUCTIONS = (
    "You are a careful research assistant answering questions about European geography and history. "
    "Answer with a short, factual paragraph. Prefer primary facts over speculation, name the relevant "
    "country, region and century when they matter, and never invent citations. If the question is "
    "ambiguous, answer the most common reading and say which reading you chose. Keep units metric, "
    "dates in ISO format, and proper names in their usual English spelling. Do not repeat the question, "
    "do not add greetings, and do not mention that you are an AI model. When several answers are "
    "plausible, give the best supported one first and the alternatives after it in one sentence."
)
QUESTION = "What is the capital of France, and since when has it been the seat of government?"
OTHER_QUESTION = "What is the capital of Portugal, and since when has it been the seat of government?"
ANSWER = (
    "Paris is the capital of France. It has been the seat of the French government for most of the time "
    "since the late 10th century, when Hugh Capet made it the centre of royal power; the court moved to "
    "Versailles between 1682 and 1789, and the government sat in Vichy from 1940 to 1944. Paris lies on "
    "the Seine in the Ile-de-France region, and it has also been the country's largest city and its "
    "economic and cultural centre throughout that time."
)


# -- fixtures ------------------------------------------------------------------------------------


@dataclass
class Fixtures:
    request: dict[str, Any]
    other_request: dict[str, Any]
    values: dict[str, Any]  # label -> value, in table order


def memory_cache() -> Cache:
    return Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None)


@contextmanager
def dspy_cache_as(cache: Cache) -> Iterator[Cache]:
    """Make ``cache`` dspy.cache for the block; restore what was there (reading ``dspy.cache``
    would build DSPy's default disk cache, so look in the module dict instead)."""
    missing = object()
    previous = dspy.__dict__.get("cache", missing)
    dspy.cache = cache
    try:
        yield cache
    finally:
        if previous is missing:
            dspy.__dict__.pop("cache", None)
        else:
            dspy.cache = previous


def capture_request_and_record() -> tuple[dict[str, Any], Any]:
    """Run one real ``dspy.Predict`` on the offline LM; return what DSPy passed to ``dspy.cache.put``."""
    captured = []

    class Recorder(Cache):
        def put(self, request, value, ignored_args_for_cache_key=None, enable_memory_cache=True):
            captured.append((request, value))
            super().put(request, value, ignored_args_for_cache_key, enable_memory_cache)

    lm = offline_lm(answers={QUESTION: {"answer": ANSWER}})
    signature = dspy.Signature("question -> answer", instructions=INSTRUCTIONS)
    with dspy_cache_as(Recorder(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None)):
        with dspy.context(lm=lm):
            dspy.Predict(signature)(question=QUESTION)
    assert len(captured) == 1, f"expected one cache write, saw {len(captured)}"
    return captured[0]


def model_response() -> litellm.ModelResponse:
    content = render_fields({
        "reasoning": "The question asks for the capital of France and how long it has been the seat of "
                     "government. Paris became the centre of royal power under the Capetians; two interruptions "
                     "(Versailles 1682-1789, Vichy 1940-1944) do not change the answer. The seat of government "
                     "means where the executive and the legislature sit, not only where the head of state lives; "
                     "by that reading Paris qualifies for almost the whole period since Hugh Capet, and the "
                     "exceptions are short compared with the total, so the answer names both and moves on.",
        "answer": ANSWER,
    }, "", "")
    return litellm.ModelResponse(
        id="chatcmpl-bench-0001", model="gpt-4o-mini", created=1_700_000_000,
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        usage={"prompt_tokens": 260, "completion_tokens": 240, "total_tokens": 500},
    )


def build_fixtures() -> Fixtures:
    request, record = capture_request_and_record()
    system, user = request["messages"]
    other_user = {**user, "content": user["content"].replace(QUESTION, OTHER_QUESTION)}
    other_request = {**request, "messages": [system, other_user]}
    assert request["_fn_identifier"] == "dspy.clients.lm.litellm_completion", request["_fn_identifier"]
    assert record.get("_dspy_format") == "dspy-lm15-result-v1", record.get("_dspy_format")
    return Fixtures(request, other_request, {"DSPy record": record, "ModelResponse": model_response()})


def describe_value(value: Any) -> str:
    if isinstance(value, dict):
        return f"{len(orjson.dumps(value))} B as JSON"
    return f"{len(value.model_dump_json())} B as JSON, content {len(value.choices[0].message.content)} chars"


# -- timing --------------------------------------------------------------------------------------

Side = Callable[[], AbstractContextManager[Callable[[], Any]]]
"""A side of a comparison: entering it sets it up and yields the zero-argument call to time."""


@dataclass(frozen=True)
class Budget:
    repeats: int  # timed repeats per side (alternating sides)
    seconds: float  # target wall time of one repeat; sets how many calls a repeat makes


def plain(fn: Callable[[], Any]) -> Side:
    return lambda: nullcontext(fn)


def calls_per_repeat(fn: Callable[[], Any], seconds: float) -> int:
    timer = timeit.Timer(fn)
    timer.timeit(20)  # warm up
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= seconds / 10 or number >= 10**6:
            return max(1, int(number * seconds / max(elapsed, 1e-9)))
        number *= 10


def compare(baseline: Side, candidate: Side, budget: Budget) -> tuple[float, float]:
    """Median per-call microseconds of (baseline, candidate), timed alternately with equal call counts."""
    with baseline() as fn:
        number = calls_per_repeat(fn, budget.seconds)
    samples: dict[int, list[float]] = {0: [], 1: []}
    sides = (baseline, candidate)
    for rep in range(budget.repeats):
        for index in ((0, 1) if rep % 2 == 0 else (1, 0)):
            with sides[index]() as fn:
                samples[index].append(timeit.Timer(fn).timeit(number) / number * 1e6)
    return statistics.median(samples[0]), statistics.median(samples[1])


# -- results -------------------------------------------------------------------------------------


@dataclass
class Row:
    operation: str
    dspy_us: float  # the baseline's time: DSPy's cache, unless `baseline` names another
    turbo_us: float
    max_ratio: float | None = None  # None: reported, no target
    baseline: str | None = None  # e.g. "redis-py GET" (bench_storage.py)

    @property
    def ratio(self) -> float:
        return self.turbo_us / self.dspy_us

    @property
    def verdict(self) -> str:
        if self.max_ratio is None:
            return "info"
        return "PASS" if self.ratio <= self.max_ratio else "FAIL"


def print_table(rows: list[Row]) -> None:
    named = any(r.baseline for r in rows)  # a baseline column when they are not all DSPy's cache
    header = ("operation", *(("baseline",) if named else ()), "baseline µs" if named else "DSPy µs",
              "turbo µs", "ratio", "target", "verdict")
    cells = [header] + [
        (r.operation, *((r.baseline or "DSPy",) if named else ()), f"{r.dspy_us:.2f}", f"{r.turbo_us:.2f}",
         f"{r.ratio:.2f}x", f"<= {r.max_ratio:.2f}x" if r.max_ratio is not None else "-", r.verdict)
        for r in rows
    ]
    left = 2 if named else 1  # text columns are left-aligned, numbers right-aligned
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def report(rows: list[Row], check: bool) -> int:
    """Print the table and the verdict; the exit code (1 only with ``check`` and a failed target)."""
    print_table(rows)
    failed = [r.operation for r in rows if r.verdict == "FAIL"]
    print()
    print(f"{len(failed)} target(s) failed: {', '.join(failed)}" if failed else "all targets met")
    return 1 if check and failed else 0


# -- measurements --------------------------------------------------------------------------------


def bench_key(fx: Fixtures, budget: Budget) -> list[Row]:
    cache = memory_cache()
    turbo = dspy_turbo.load(MEMORY_ONLY)
    try:
        dspy_us, turbo_us = compare(plain(lambda: cache.cache_key(fx.request, IGNORED)),
                                    plain(lambda: turbo.key(fx.request, IGNORED)), budget)
    finally:
        turbo.close()
    return [Row("key", dspy_us, turbo_us)]


def bench_memory_tier(fx: Fixtures, label: str, value: Any, budget: Budget) -> list[Row]:
    """Hit and miss of both caches holding the same value under the same request."""
    cache = memory_cache()
    turbo = dspy_turbo.load(MEMORY_ONLY)
    adapter = DSPyCache(turbo)
    try:
        cache.put(fx.request, value, IGNORED)
        adapter.put(fx.request, value, IGNORED)
        for c in (cache, adapter):  # both must really hit, with an equal value, and really miss
            got = c.get(fx.request, IGNORED)
            assert got is not None and got is not value, f"{type(c).__name__}: no hit for {label}"
            assert c.get(fx.other_request, IGNORED) is None, f"{type(c).__name__}: unexpected hit for {label}"
        assert _comparable(adapter.get(fx.request, IGNORED)) == _comparable(cache.get(fx.request, IGNORED))
        hit = compare(plain(lambda: cache.get(fx.request, IGNORED)),
                      plain(lambda: adapter.get(fx.request, IGNORED)), budget)
        miss = compare(plain(lambda: cache.get(fx.other_request, IGNORED)),
                       plain(lambda: adapter.get(fx.other_request, IGNORED)), budget)
    finally:
        turbo.close()
    return [Row(f"hit  [{label}]", *hit, max_ratio=0.5), Row(f"miss [{label}]", *miss)]


def _comparable(value: Any) -> Any:
    # DSPy clears usage on a ModelResponse hit; the completion itself must be identical.
    return value if isinstance(value, dict) else value.choices[0].message.content


def bench_predict_hit(budget: Budget) -> list[Row]:
    """End-to-end ``dspy.Predict`` cache hit: DSPy's memory cache vs an installed Turbo."""
    lm = offline_lm(latency=0.0)
    predict = dspy.Predict("question -> answer")
    baseline_cache = memory_cache()
    turbo = dspy_turbo.load(MEMORY_ONLY)

    def call() -> Any:
        return predict(question=QUESTION)

    @contextmanager
    def dspy_side() -> Iterator[Callable[[], Any]]:
        assert dspy.__dict__.get("cache") is baseline_cache  # turbo.uninstall() gives it back
        call()  # warm (a miss only on the first round)
        yield call

    @contextmanager
    def turbo_side() -> Iterator[Callable[[], Any]]:
        turbo.install()
        try:
            call()
            yield call
        finally:
            turbo.uninstall()

    try:
        with dspy_cache_as(baseline_cache), dspy.context(lm=lm, disable_history=True):
            with dspy_side():
                expected = call().answer
            with turbo_side():
                assert call().answer == expected
            calls_before = lm.engine.calls
            dspy_us, turbo_us = compare(dspy_side, turbo_side, budget)
            assert lm.engine.calls == calls_before, "a timed call reached the LM: not a cache hit"
            assert not lm.history, "history grew: the two sides would not do equal work"
    finally:
        turbo.close()
    return [Row("e2e dspy.Predict hit", dspy_us, turbo_us, max_ratio=1.10)]


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (noisier)")
    parser.add_argument("--check", action="store_true", help="exit 1 when any target fails")
    args = parser.parse_args(argv)

    micro = Budget(repeats=5, seconds=0.02) if args.quick else Budget(repeats=11, seconds=0.1)
    e2e = Budget(repeats=4, seconds=0.05) if args.quick else Budget(repeats=10, seconds=0.3)

    fx = build_fixtures()
    print(f"dspy {dspy.__version__}, dspy-turbo {dspy_turbo.__version__}, python {sys.version.split()[0]}")
    print(f"request: {len(orjson.dumps(fx.request))} B as JSON "
          f"(system message {len(fx.request['messages'][0]['content'])} chars)")
    for label, value in fx.values.items():
        print(f"value [{label}]: {describe_value(value)}")
    print(f"timing: median of {micro.repeats} (micro) / {e2e.repeats} (e2e) alternating repeats, "
          f"per-call µs, GC off during timing")
    print()

    rows = bench_key(fx, micro)
    for label, value in fx.values.items():
        rows += bench_memory_tier(fx, label, value, micro)
    rows += bench_predict_hit(e2e)
    return report(rows, args.check)


if __name__ == "__main__":
    sys.exit(main())
