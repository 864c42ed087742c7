"""The most a batch split over two worker processes could reach, against one process, in one run.

    python bench/bench_process_bound.py            # n/c = 512/32, 1024/128, 2048/512, median of 3 (~3 min)
    python bench/bench_process_bound.py --quick    # 256/32, 512/128, 1024/512, one repeat

Same LM and program as bench_batching.py (200 ms per call, ``dspy.Predict``). Three worker
processes are forked before any batch runs and warmed up; they then wait for orders on a
pipe. "1 process" sends a whole batch to one of them. "2 processes" sends each of the other
two half the items at half the concurrency, at the same moment, and times until both are
done. That is a process pool with nothing to pay: no start-up, no program or result
crossing a process boundary, no shared cache to fill. A real pool scores below it, so when
this row misses a target, no process strategy meets it on this machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before dspy/litellm: no network fetch

import dspy  # noqa: E402
from bench_batching import LATENCY, run_parallel, run_turbo  # noqa: E402

from dspy_turbo.engines.offline import offline_lm  # noqa: E402

SIDES = {"async": lambda n, c: run_turbo("async", n, c), "thread": lambda n, c: run_turbo("thread", n, c),
         "parallel": run_parallel}


class Worker:
    """A forked process running the batches it is sent; replies with each wall time."""

    def __init__(self):
        orders_r, self._orders = os.pipe()
        self._replies, replies_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the worker: nothing of the parent's but the imported modules
            os.close(self._orders)
            os.close(self._replies)
            self._serve(os.fdopen(orders_r, "r"), os.fdopen(replies_w, "w"))
        os.close(orders_r)
        os.close(replies_w)
        self._out = os.fdopen(self._orders, "w")
        self._in = os.fdopen(self._replies, "r")

    def _serve(self, orders, replies) -> None:
        code = 0
        try:
            self.setup()
            replies.write("ready\n")
            replies.flush()
            for line in orders:
                if line == "stop\n":
                    break
                side, n, c = line.split()
                gc.collect()
                replies.write(f"{self.run(side, int(n), int(c))}\n")
                replies.flush()
        except BaseException:
            code = 1
        finally:
            os._exit(code)

    def setup(self) -> None:
        """In the worker, before it says ready."""
        run_turbo("async", 64, 32), run_turbo("thread", 64, 32), run_parallel(64, 32)  # warm-up

    def run(self, side: str, n: int, c: int) -> object:
        """In the worker: one order; what it returns is the reply."""
        return SIDES[side](n, c)

    def send(self, side: str, n: int, c: int) -> None:
        self._out.write(f"{side} {n} {c}\n")
        self._out.flush()

    def reply(self) -> str:
        line = self._in.readline()
        if not line:
            raise RuntimeError(f"worker {self.pid} died")
        return line.strip()

    def close(self) -> None:
        # An order, not EOF: workers forked later hold copies of this pipe's write end.
        self._out.write("stop\n")
        self._out.close()
        os.waitpid(self.pid, 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller batches, one repeat")
    args = parser.parse_args()
    dspy.configure(lm=offline_lm("openai/gpt-4o-mini", latency=LATENCY), adapter=None)
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    sizes = [(256, 32), (512, 128), (1024, 512)] if args.quick else [(512, 32), (1024, 128), (2048, 512)]
    repeats = 1 if args.quick else 3
    whole, halves = Worker(), [Worker(), Worker()]
    workers = [whole, *halves]
    try:
        for w in workers:
            assert w.reply() == "ready"
        print(f"python {sys.version.split()[0]}, dspy {dspy.__version__}, cpus {os.cpu_count()}; "
              f"efficiency = ideal / wall, median of {repeats}")
        print(f"{'n':>6} {'conc':>5} | {'1 process: async':>16} {'thread':>7} {'Parallel':>8} | "
              f"{'2 processes: async':>18} {'thread':>7}")
        for n, c in sizes:
            walls: dict[str, list[float]] = {k: [] for k in ("async", "thread", "parallel", "2 async", "2 thread")}
            for _ in range(repeats):
                for side in ("async", "thread", "parallel"):
                    whole.send(side, n, c)
                    walls[side].append(float(whole.reply()))
                for side in ("async", "thread"):
                    started = time.perf_counter()
                    for w in halves:
                        w.send(side, n // 2, c // 2)
                    for w in halves:
                        w.reply()
                    walls[f"2 {side}"].append(time.perf_counter() - started)
            ideal = n * LATENCY / c
            eff = {k: ideal / statistics.median(v) for k, v in walls.items()}
            print(f"{n:>6} {c:>5} | {eff['async']:>16.3f} {eff['thread']:>7.3f} {eff['parallel']:>8.3f} | "
                  f"{eff['2 async']:>18.3f} {eff['2 thread']:>7.3f}", flush=True)
    finally:
        for w in workers:
            w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
