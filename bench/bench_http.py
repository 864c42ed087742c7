"""Batch throughput over real HTTP: every turbo strategy against dspy.Parallel and Predict.batch, in one run.

    python bench/bench_http.py                      # n/c = 256/32 and 512/128, 3 repeats (a few minutes)
    python bench/bench_http.py --quick              # one size, one repeat
    python bench/bench_http.py --sizes 512/128 --repeats 5 --model openai/my-selfhosted-model
    python bench/bench_http.py --split --strategies thread,process   # beside the same work split over forked processes

The LM is ``dspy.LM(model, api_base=..., api_key=...)`` as a user configures it, with
DSPy's default engine selection, against ``dspy_turbo.engines.openai_server`` running as its own
process on loopback (asyncio, so it is not the bottleneck; it sleeps ``--latency`` per
request and reports its own CPU per request). Every item is a distinct question, so
every item is a miss and makes one HTTP request.

Efficiency = ideal / wall, ideal = ceil(n / c) x latency. Client CPU per call = the CPU
time during the run of this process (all threads) and of its worker processes (the
``process`` strategy's; the "workers" column is their part; the server is left out) / n.
Each turbo side keeps one Turbo for the whole run, as an application does, so what a
strategy starts once per Turbo (worker processes) starts in the untimed warm-up. Sides
alternate (A, B, C, then C, B, A, ...) and the table shows medians over repeats, with the
load average.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before dspy/litellm: no network fetch
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="bench-http-dspy-"))

import dspy  # noqa: E402
from bench_process_bound import Worker  # noqa: E402  (a forked process and its pipe of orders)

import dspy_turbo  # noqa: E402

PROGRAM = dspy.Predict("question -> answer")


class Server:
    """The OpenAI-compatible server in its own process (its CPU is not the client's)."""

    def __init__(self, latency: float):
        self.proc = subprocess.Popen([sys.executable, "-m", "dspy_turbo.engines.openai_server", "--latency", str(latency)],
                                     stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise RuntimeError(f"the server did not start: {self.url!r}")
        self.base = self.url.removesuffix("/v1")

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.base}/stats") as response:
            return json.load(response)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.base}/control", data=b'{"reset": true}',
                                         headers={"content-type": "application/json"})
        urllib.request.urlopen(request).close()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _questions(n: int) -> list[dict]:
    tag = uuid.uuid4().hex[:8]  # distinct per run: nothing is served from an earlier run
    return [{"question": f"{tag} question number {i}: what is {i} plus {i}?"} for i in range(n)]


def _examples(n: int) -> list[dspy.Example]:
    return [dspy.Example(**q).with_inputs("question") for q in _questions(n)]


def _turbo():
    return dspy_turbo.load({"cache": {"tiers": [{"type": "memory", "max_bytes": "256MB"}]},
                            "batching": {"type": "thread", "progress": False}})


def side_parallel(n: int, c: int) -> list:
    parallel = dspy.Parallel(num_threads=c, disable_progress_bar=True, max_errors=n)
    return parallel([(PROGRAM, e) for e in _examples(n)])


def side_predict_batch(n: int, c: int) -> list:
    return PROGRAM.batch(_examples(n), num_threads=c, disable_progress_bar=True, max_errors=n)


class TurboSide:
    """One Turbo for the whole run, as an application keeps one: what a strategy starts once per
    Turbo (the ``process`` strategy's workers) starts in the untimed warm-up, as it would in the
    first batch of a long-lived application."""

    def __init__(self, spec: str):
        # "async" or "async:loops=4": a strategy and options for it (integers), to compare settings side by side
        self.strategy, _, options = spec.partition(":")
        self.options = {k: int(v) for k, v in (pair.split("=") for pair in options.split(";") if pair)}
        self.turbo = None

    def __call__(self, n: int, c: int) -> list:
        if self.turbo is None:
            self.turbo = _turbo()
        return self.turbo.batch(PROGRAM, _questions(n), strategy=self.strategy, max_concurrency=c, **self.options)

    def close(self) -> None:
        if self.turbo is not None:
            self.turbo.close()


class _SplitWorker(Worker):
    """A forked process with a Turbo installed, as a worker process installs its own, running
    the batches it is sent; replies with how many items answered."""

    def setup(self) -> None:
        self.turbo = _turbo().install()

    def run(self, side: str, n: int, c: int) -> int:
        with dspy.context(disable_history=True):
            answers = self.turbo.batch(PROGRAM, _questions(n), strategy=side, max_concurrency=c)
        return sum(1 for a in answers if a is not None and not isinstance(a, BaseException))


class SplitSide:
    """What the ``process`` strategy pays for crossing processes: ``k`` processes forked (the LM
    configured) before anything runs, each with a Turbo installed as a worker installs its
    own, then each sent ``1/k`` of the items at ``1/k`` of the concurrency at the same moment,
    running them as a ``thread`` batch; timed until all are done. The work a worker does per
    item, with no items, results or program crossing a process boundary and no dispatch (and
    a fixed split: the strategy shares one concurrency limit between its workers instead)."""

    def __init__(self, processes: int):
        self.workers = [_SplitWorker() for _ in range(processes)]
        for worker in self.workers:
            if worker.reply() != "ready":
                raise RuntimeError(f"split worker {worker.pid} did not start")

    def __call__(self, n: int, c: int) -> list:
        k = len(self.workers)
        for i, worker in enumerate(self.workers):
            worker.send("thread", n // k + (i < n % k), max(1, c // k))
        done = sum(int(worker.reply()) for worker in self.workers)
        return [True] * done + [None] * (n - done)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


def _cpu_of_descendants(exclude: int) -> float:
    """CPU seconds (user + system) of this process's descendants so far (worker processes, a
    forkserver), the subtree of ``exclude`` (the LM server) left out. Linux (/proc) only; 0 elsewhere."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0.0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0.0, [p for p in children.get(os.getpid(), []) if p != exclude]
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack.extend(p for p in children.get(pid, []) if p != exclude)
    return total


def measure(run, n: int, c: int, server: Server) -> tuple[float, float, float | None, float]:
    """(wall seconds, client CPU seconds, server CPU seconds per request, the part of the client
    CPU spent in worker processes) of one run. The client is this process and its worker
    processes (the ``process`` strategy's), the LM server left out."""
    gc.collect()
    server.reset()
    workers0 = _cpu_of_descendants(server.proc.pid)
    cpu0, started = time.process_time(), time.perf_counter()
    results = run(n, c)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    in_workers = _cpu_of_descendants(server.proc.pid) - workers0
    cpu += in_workers
    failed = sum(1 for r in results if r is None or isinstance(r, BaseException))
    if failed:
        raise RuntimeError(f"{failed} of {n} items failed")
    served = server.stats()
    if served["served"] != n:
        raise RuntimeError(f"the server saw {served['served']} requests for {n} items (a cache hit is not a fair run)")
    return wall, cpu, served["cpu_per_request"], in_workers


def strategies() -> list[str]:
    """Every batch strategy installed (thread, async, and any a plugin adds)."""
    turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}]}})
    try:
        return turbo.registry.names("batch_strategy")
    finally:
        turbo.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256/32,512/128", help="n/concurrency pairs, comma-separated")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per request")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="openai/gpt-4o-mini",
                        help="model name DSPy sees (an unknown one costs DSPy more per call)")
    parser.add_argument("--strategies", default=None,
                        help="turbo strategies to run (default: every installed one); 'async:loops=1' sets options")
    parser.add_argument("--quick", action="store_true", help="256/32, one repeat")
    parser.add_argument("--split", action="store_true",
                        help="add a side that splits a thread batch over one forked process per core, nothing crossing")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats = "256/32", 1
    sizes = [tuple(int(x) for x in pair.split("/")) for pair in args.sizes.split(",")]
    names = args.strategies.split(",") if args.strategies else strategies()
    sides = {"dspy.Parallel": side_parallel, "Predict.batch": side_predict_batch,
             **{f"turbo {s}": TurboSide(s) for s in names}}

    server = Server(args.latency)
    try:
        lm = dspy.LM(args.model, api_base=server.url, api_key="bench-not-a-secret", num_retries=0)
        dspy.configure(lm=lm)
        if args.split:  # forked now, while this process has no threads of its own yet
            processes = os.cpu_count() or 1
            sides[f"split: {processes} processes"] = SplitSide(processes)
        with dspy.context(disable_history=True):
            # imports, first threads, DSPy's lazy set-up, worker pools sized for the largest
            # concurrency (a ray pool is started for its per-worker concurrency): paid by no timed side
            widest = max(c for _, c in sizes)
            for run in sides.values():
                measure(run, widest, widest, server)
            print(f"\nHTTP batch, {args.latency * 1000:.0f} ms per request, model {args.model!r}, "
                  f"median of {args.repeats}; load average before: {os.getloadavg()[0]:.2f}")
            header = (f"{'n/c':>8} {'side':>22} | {'wall s':>7} {'eff':>6} {'vs Par':>7} | {'CPU ms/call':>11} "
                      f"{'workers':>7} {'server':>7}")
            print(header)
            print("-" * len(header))
            for n, c in sizes:
                walls: dict[str, list[float]] = {name: [] for name in sides}
                cpus: dict[str, list[float]] = {name: [] for name in sides}
                server_cpu: dict[str, list[float]] = {name: [] for name in sides}
                worker_cpus: dict[str, list[float]] = {name: [] for name in sides}
                order = list(sides)
                for repeat in range(args.repeats):
                    for name in order if repeat % 2 == 0 else reversed(order):
                        wall, cpu, per_request, in_workers = measure(sides[name], n, c, server)
                        walls[name].append(wall)
                        cpus[name].append(cpu)
                        worker_cpus[name].append(in_workers)
                        if per_request is not None:
                            server_cpu[name].append(per_request)
                ideal = math.ceil(n / c) * args.latency
                base = ideal / statistics.median(walls["dspy.Parallel"])
                for name in sides:
                    eff = ideal / statistics.median(walls[name])
                    cpu_ms = statistics.median(cpus[name]) / n * 1000
                    workers_ms = statistics.median(worker_cpus[name]) / n * 1000
                    srv = statistics.median(server_cpu[name]) * 1000 if server_cpu[name] else float("nan")
                    print(f"{f'{n}/{c}':>8} {name:>22} | {statistics.median(walls[name]):7.2f} {eff:6.3f} "
                          f"{eff / base:6.2f}x | {cpu_ms:11.2f} {workers_ms:7.2f} {srv:6.2f}ms")
            print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        for side in sides.values():
            if isinstance(side, (TurboSide, SplitSide)):
                side.close()
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
