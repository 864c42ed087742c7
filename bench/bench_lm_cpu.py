"""CPU per LM call of serial ``dspy.Predict`` calls: an installed Turbo against DSPy's memory cache.

    python bench/bench_lm_cpu.py turbo miss 3000     # 3000 distinct questions, each a miss
    python bench/bench_lm_cpu.py dspy hit 3000       # 3000 hits cycling over 50 cached questions

One side and one mode per process, so each side starts equally cold. The LM is the offline
one with latency 0: the figure is DSPy's own formatting and parsing plus what the cache
layer adds. It prints process CPU per call; on a shared machine that moves by 10-20 %
between runs, so to compare two versions of the code count instructions instead, which
do not depend on the load: run the same command under ``valgrind --tool=callgrind`` with
N=0 and N=1000 and divide the difference of the "Collected" totals by 1000 (imports and
warm-up cancel out). See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import uuid

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before dspy/litellm: no network fetch

import dspy  # noqa: E402
from dspy.clients.cache import Cache  # noqa: E402

import dspy_turbo  # noqa: E402
from dspy_turbo.engines.offline import offline_lm  # noqa: E402

WARM = 200  # calls before timing: DSPy's lazy set-up, the price table, the adapter's caches
CYCLE = 50  # distinct questions a hit run cycles over


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("side", choices=["turbo", "dspy"])
    parser.add_argument("mode", choices=["miss", "hit"])
    parser.add_argument("n", type=int, help="timed calls (0: only imports and warm-up, for callgrind)")
    args = parser.parse_args()
    dspy.configure(lm=offline_lm("openai/gpt-4o-mini", latency=0, jitter=0), adapter=None)
    predict = dspy.Predict("question -> answer")
    turbo = None
    if args.side == "turbo":
        turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "memory", "max_bytes": "256MB"}]}}).install()
    else:
        dspy.cache = Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None)
    try:
        with dspy.context(disable_history=True):
            for i in range(WARM):
                predict(question=f"warm-up question {i}")
            tag = uuid.uuid4().hex[:8]  # distinct per run: a miss is a miss
            questions = [f"{tag} question number {i}" for i in range(args.n)]
            if args.mode == "hit":  # cached before timing, whatever n is, so n=0 does the same set-up
                cached = [f"{tag} cached question {i}" for i in range(CYCLE)]
                for question in cached:
                    predict(question=question)
                questions = [cached[i % CYCLE] for i in range(args.n)]
            gc.collect()
            started = time.process_time()
            for question in questions:
                predict(question=question)
            cpu = time.process_time() - started
    finally:
        if turbo is not None:
            turbo.close()
    print(f"{args.side} {args.mode}: {cpu / max(args.n, 1) * 1e6:.1f} µs of CPU per call ({args.n} calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
