"""Batching benchmark: turbo.batch (thread and async strategies) against dspy.Parallel, in one run.

    python bench/bench_batching.py            # full run (a few minutes)
    python bench/bench_batching.py --quick    # smaller batches, one repeat (about a minute)
    python bench/bench_batching.py --check    # exit 1 when a target fails
    python bench/bench_batching.py --only fully-cached   # one section

The LM is the offline one, sleeping 200 ms per call (``offline_lm(latency=0.2, jitter=0)``).
Efficiency = ideal / measured wall time, ideal = n x 0.2 s / concurrency. Every row is
measured in this run, alternating the sides, median over repeats. See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import uuid

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before dspy/litellm: no network fetch

import dspy  # noqa: E402

import dspy_turbo  # noqa: E402
from dspy_turbo.engines.offline import offline_lm  # noqa: E402

LATENCY = 0.2
PROGRAM = dspy.Predict("question -> answer")


def _turbo(**batching):
    return dspy_turbo.load({"cache": {"tiers": [{"type": "memory", "max_bytes": "64MB"}]},
                            "batching": {"type": "thread", "progress": False, **batching}})


def _questions(n: int, tag: str | None = None) -> list[dict]:
    tag = tag or uuid.uuid4().hex[:8]  # distinct per run: nothing is cached from an earlier run
    return [{"question": f"{tag} question number {i}"} for i in range(n)]


def run_turbo(strategy: str, n: int, c: int) -> float:
    turbo = _turbo(max_concurrency=c)
    examples = _questions(n)
    try:
        started = time.perf_counter()
        results = turbo.batch(PROGRAM, examples, strategy=strategy)
        wall = time.perf_counter() - started
    finally:
        turbo.close()
    assert all(r is not None for r in results)
    return wall


def run_parallel(n: int, c: int, with_turbo: bool = False) -> float:
    """dspy.Parallel alone (DSPy's memory cache), or with a Turbo installed: the same LM-level
    caching work as turbo.batch does, without the batch layer."""
    examples = [dspy.Example(**e).with_inputs("question") for e in _questions(n)]
    parallel = dspy.Parallel(num_threads=c, disable_progress_bar=True, max_errors=n)
    turbo = _turbo().install() if with_turbo else None
    try:
        started = time.perf_counter()
        results = parallel([(PROGRAM, e) for e in examples])
        wall = time.perf_counter() - started
    finally:
        if turbo is not None:
            turbo.close()
    assert all(r is not None for r in results)
    return wall


def efficiency(sizes, repeats: int, rows: list) -> None:
    print(f"\n== efficiency (ideal / wall), 200 ms LM, median of {repeats} ==")
    print(f"{'n':>6} {'conc':>5} {'ideal s':>8} | {'thread':>7} {'async':>7} {'Parallel':>8} {'Par+turbo':>9} | target")
    for warm in (lambda: run_turbo("thread", 64, 32), lambda: run_turbo("async", 64, 32), lambda: run_parallel(64, 32)):
        warm()  # imports, first threads and DSPy's lazy set-up are paid here, by no timed side
    for n, c in sizes:
        sides = {"thread": lambda n=n, c=c: run_turbo("thread", n, c),
                 "async": lambda n=n, c=c: run_turbo("async", n, c),
                 "parallel": lambda n=n, c=c: run_parallel(n, c),
                 "parallel_turbo": lambda n=n, c=c: run_parallel(n, c, with_turbo=True)}
        walls = {k: [] for k in sides}
        order = list(sides)
        for r in range(repeats):
            for name in (order if r % 2 == 0 else order[::-1]):
                gc.collect()
                walls[name].append(sides[name]())
        ideal = n * LATENCY / c
        eff = {k: ideal / statistics.median(v) for k, v in walls.items()}
        target = {32: 0.97, 128: 0.95, 512: 0.90}.get(c)
        best = max(eff["thread"], eff["async"])
        ok = (target is None or best >= target) and best >= eff["parallel"]
        print(f"{n:>6} {c:>5} {ideal:>8.2f} | {eff['thread']:>7.3f} {eff['async']:>7.3f} {eff['parallel']:>8.3f} "
              f"{eff['parallel_turbo']:>9.3f} | "
              f">= {target} and >= Parallel: {'PASS' if ok else 'FAIL'}")
        rows.append(ok)


def duplicates(n: int, rows: list) -> None:
    lm = offline_lm("openai/gpt-4o-mini", latency=LATENCY)
    half = _questions(n // 2)
    examples = [half[i // 2] for i in range(n)]  # every request twice, the copies side by side
    turbo = _turbo(max_concurrency=128)
    try:
        with dspy.context(lm=lm):
            started = time.perf_counter()
            turbo.batch(PROGRAM, examples)
            wall = time.perf_counter() - started
    finally:
        turbo.close()
    ok = lm.engine.calls == n // 2
    print(f"\n== duplicates == {n} items, {n // 2} distinct: {lm.engine.calls} LM calls in {wall:.2f}s "
          f"(target {n // 2}): {'PASS' if ok else 'FAIL'}")
    rows.append(ok)


class OwnProgram(dspy.Module):
    """A program of its own (a forward DSPy did not write): its batches are served by the
    LM-level cache, since an item-level key cannot see every edit of its code."""

    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question):
        return self.predict(question=question)


def _fully_cached_rates(program, n: int, repeats: int) -> tuple[float, float, dict]:
    fast = offline_lm("openai/gpt-4o-mini")
    examples = _questions(n)
    turbo = _turbo(max_concurrency=64)
    dspy_examples = [dspy.Example(**e).with_inputs("question") for e in examples]
    try:
        with dspy.context(lm=fast):
            turbo.batch(program, examples)  # warm the cache (default options: what a user gets)
            program.batch(dspy_examples, num_threads=16, disable_progress_bar=True)  # warm DSPy's cache
            calls = fast.engine.calls
            turbo_rates, dspy_rates = [], []
            for r in range(repeats):
                for side in (("turbo", "dspy") if r % 2 == 0 else ("dspy", "turbo")):
                    gc.collect()
                    started = time.perf_counter()
                    if side == "turbo":
                        turbo.reset_stats()
                        out = turbo.batch(program, examples)
                        turbo_rates.append(n / (time.perf_counter() - started))
                        batches = turbo.stats()["batches"]
                    else:
                        out = program.batch(dspy_examples, num_threads=16, disable_progress_bar=True)
                        dspy_rates.append(n / (time.perf_counter() - started))
                    assert len(out) == n
            assert fast.engine.calls == calls, "a timed run reached the LM"
    finally:
        turbo.close()
    return statistics.median(turbo_rates), statistics.median(dspy_rates), batches


def fully_cached(n: int, repeats: int, rows: list) -> None:
    """Every answer cached, default batch options. ``dspy.Predict`` is made of DSPy's own code
    only, so its completed results are cached per item (exactly what the LM-level cache
    would give); a program of its own is served by the LM-level cache, running its code."""
    rate, base, batches = _fully_cached_rates(PROGRAM, n, repeats)
    ok = rate >= 3000 and batches["hits"] == n
    print(f"\n== fully cached == {n} items of dspy.Predict: turbo.batch {rate:,.0f} items/s "
          f"({batches['hits']} item hits), DSPy Predict.batch(16 threads) {base:,.0f} items/s "
          f"(target >= 3,000): {'PASS' if ok else 'FAIL'}")
    rows.append(ok)
    rate, base, batches = _fully_cached_rates(OwnProgram(), n, repeats)
    ok = rate >= base and batches["executed"] == n
    print(f"== fully cached == {n} items of a program of its own (LM-level cache, the program runs "
          f"for each item): turbo.batch {rate:,.0f} items/s, DSPy Module.batch(16 threads) {base:,.0f} items/s "
          f"(target >= DSPy): {'PASS' if ok else 'FAIL'}")
    rows.append(ok)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def streaming(n: int, rows: list) -> None:
    """A generator of n examples through batch_iter; RSS sampled every n/10 items."""

    def program(question: str) -> dspy.Prediction:
        return dspy.Prediction(answer=question.upper())

    def examples():
        for i in range(n):
            yield {"question": f"streamed question {i} " + "x" * 200}

    turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "memory", "max_bytes": "16MB"}]},
                             "batching": {"type": "thread", "progress": False, "max_concurrency": 64}})
    samples = []
    started = time.perf_counter()
    try:
        for i, result in enumerate(turbo.batch_iter(program, examples())):
            assert result is not None
            if i % (n // 10) == 0:
                samples.append(_rss_mb())
    finally:
        turbo.close()
    wall = time.perf_counter() - started
    samples.append(_rss_mb())
    growth = max(samples[1:]) - samples[1]  # after the first tenth: window, pools and cache warmed up
    ok = growth <= 50
    print(f"\n== streaming == {n:,} examples from a generator in {wall:.1f}s ({n / wall:,.0f}/s); RSS MB at each tenth: "
          f"{', '.join(f'{s:.0f}' for s in samples)}; growth after the first tenth {growth:.1f} MB "
          f"(target <= 50): {'PASS' if ok else 'FAIL'}")
    rows.append(ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller batches, one repeat")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--only", choices=["efficiency", "duplicates", "fully-cached", "streaming"],
                        help="run one section")
    args = parser.parse_args()
    dspy.configure(lm=offline_lm("openai/gpt-4o-mini", latency=LATENCY), adapter=None)
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)  # dspy.Parallel's side: no disk
    rows: list[bool] = []
    print(f"python {sys.version.split()[0]}, dspy {dspy.__version__}, cpus {os.cpu_count()}, "
          f"{'quick' if args.quick else 'full'} run")
    sizes = [(512, 32), (1024, 128), (2048, 512)] if not args.quick else [(256, 32), (512, 128), (1024, 512)]
    def wanted(section: str) -> bool:
        return args.only in (None, section)

    if wanted("efficiency"):
        efficiency(sizes, 1 if args.quick else 3, rows)
    if wanted("duplicates"):
        duplicates(512, rows)
    if wanted("fully-cached"):
        fully_cached(2_000 if args.quick else 10_000, 1 if args.quick else 3, rows)
    if wanted("streaming"):
        streaming(20_000 if args.quick else 100_000, rows)
    failed = sum(not ok for ok in rows)
    print(f"\n{len(rows) - failed}/{len(rows)} targets met")
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
