"""CPU per item of a batch: turbo.batch (thread and async) against dspy.Parallel, in one run.

    python bench/bench_batch_cpu.py                       # concurrency 32 and 128, LM latency 0
    python bench/bench_batch_cpu.py --latency 0.2 --n 1024 --concurrency 128

At high concurrency a batch of DSPy calls is bound by CPU under the GIL, not by waiting,
so the CPU each item costs decides how close a batch gets to ideal throughput. With
latency 0 the figure is the pure cost of the code path (DSPy's formatting and parsing,
the cache, the batch layer, thread switches); process CPU time (all threads) divided by
items, the median and the minimum of alternating repeats. See bench/README.md.
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

PROGRAM = dspy.Predict("question -> answer")


def _turbo(c: int):
    return dspy_turbo.load({"cache": {"tiers": [{"type": "memory", "max_bytes": "64MB"}]},
                            "batching": {"type": "thread", "progress": False, "max_concurrency": c}})


def _questions(n: int) -> list[dict]:
    tag = uuid.uuid4().hex[:8]  # distinct per run: every item is a miss
    return [{"question": f"{tag} question number {i}"} for i in range(n)]


def run(side: str, n: int, c: int) -> float:
    """Process CPU seconds of one batch of n fresh items."""
    examples = _questions(n)
    if side in ("thread", "async"):
        turbo = _turbo(c)
        try:
            started = time.process_time()
            results = turbo.batch(PROGRAM, examples, strategy=side)
            cpu = time.process_time() - started
        finally:
            turbo.close()
    else:
        items = [(PROGRAM, dspy.Example(**e).with_inputs("question")) for e in examples]
        turbo = _turbo(c).install() if side == "parallel_turbo" else None
        try:
            started = time.process_time()
            results = dspy.Parallel(num_threads=c, disable_progress_bar=True, max_errors=n)(items)
            cpu = time.process_time() - started
        finally:
            if turbo is not None:
                turbo.close()
    assert all(r is not None for r in results)
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the offline LM sleeps per call")
    parser.add_argument("--n", type=int, default=2000, help="items per batch")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    dspy.configure(lm=offline_lm("openai/gpt-4o-mini", latency=args.latency, jitter=0), adapter=None)
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)  # dspy.Parallel's side: no disk
    sides = ["thread", "async", "parallel", "parallel_turbo"]
    print(f"python {sys.version.split()[0]}, dspy {dspy.__version__}, cpus {os.cpu_count()}; "
          f"LM latency {args.latency}s, {args.n} items, {args.repeats} alternating repeats")
    print(f"{'conc':>5} | " + " ".join(f"{s:>22}" for s in sides) + "   (CPU us per item: median / min)")
    for side in sides:
        run(side, 64, 8)  # imports and DSPy's lazy set-up are paid here, by no measured side
    for c in args.concurrency:
        cpu: dict[str, list[float]] = {s: [] for s in sides}
        for r in range(args.repeats):
            for side in (sides if r % 2 == 0 else sides[::-1]):
                gc.collect()
                cpu[side].append(run(side, args.n, c) / args.n * 1e6)
        print(f"{c:>5} | " + " ".join(f"{statistics.median(cpu[s]):>14.0f} / {min(cpu[s]):>5.0f}" for s in sides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
