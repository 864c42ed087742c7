"""Where a batch item's time goes over HTTP: before the request is sent, in flight, after.

    python bench/bench_http_timeline.py                               # thread and async, 256/32 and 512/128
    python bench/bench_http_timeline.py --strategies thread,async --sizes 512/128 --repeats 5

The same sides and server as ``bench_http.py``. Each item records when it starts, when
its HTTP request is written (lm15's transport, sync or async), when the response head is
read and when it ends; the table shows per-item means (``send``: start to request,
``pool``: the part of ``send`` spent waiting for one of the transport's connection slots,
``http``: request to head, ``after``: head to end) and, per slot, the time between items
(``gap``), with wall efficiency and client CPU per call. A side may carry options, as in
``bench_http.py``: ``--strategies thread,async:loops=1``. Diagnosis only: it patches the
transport and the batch's ``Item``, so its walls are not ``bench_http.py``'s.
"""

from __future__ import annotations

import argparse
import contextvars
import gc
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_http  # noqa: E402  (sets LITELLM_LOCAL_MODEL_COST_MAP before dspy is imported)
import dspy  # noqa: E402
from dspy._vendor.lm15.transports import _async, _sync  # noqa: E402

_ITEM: contextvars.ContextVar[dict | None] = contextvars.ContextVar("bench_item", default=None)
_ITEMS: list[dict] = []


def _mark(name: str) -> None:
    record = _ITEM.get()
    if record is not None:
        record[name] = time.perf_counter()


def _patch() -> None:
    from dspy_turbo_batching import item

    call, acall = item.Item._call, item.Item.acall

    def timed_call(self):
        record = {"start": time.perf_counter()}
        _ITEM.set(record)
        _ITEMS.append(record)
        try:
            return call(self)
        finally:
            record["end"] = time.perf_counter()

    async def timed_acall(self):
        record = {"start": time.perf_counter()}
        _ITEM.set(record)
        _ITEMS.append(record)
        try:
            return await acall(self)
        finally:
            record["end"] = time.perf_counter()

    item.Item._call, item.Item.acall = timed_call, timed_acall
    send, head = _sync.StdlibTransport._send_request, _sync.StdlibTransport._read_head
    asend, ahead = _async.StdlibAsyncTransport._send_request, _async.StdlibAsyncTransport._read_head

    def timed_send(self, *args, **kwargs):
        _mark("send")
        return send(self, *args, **kwargs)

    def timed_head(self, *args, **kwargs):
        result = head(self, *args, **kwargs)
        _mark("head")
        return result

    async def atimed_send(self, *args, **kwargs):
        _mark("send")
        return await asend(self, *args, **kwargs)

    async def atimed_head(self, *args, **kwargs):
        result = await ahead(self, *args, **kwargs)
        _mark("head")
        return result

    slot, aslot = _sync._ConnectionPool.acquire_slot, _async._AsyncConnectionPool.acquire_slot

    def timed_slot(self, *args, **kwargs):
        _mark("slot0")
        try:
            return slot(self, *args, **kwargs)
        finally:
            _mark("slot")

    async def atimed_slot(self, *args, **kwargs):
        _mark("slot0")
        try:
            return await aslot(self, *args, **kwargs)
        finally:
            _mark("slot")

    _sync._ConnectionPool.acquire_slot, _async._AsyncConnectionPool.acquire_slot = timed_slot, atimed_slot
    _sync.StdlibTransport._send_request, _sync.StdlibTransport._read_head = timed_send, timed_head
    _async.StdlibAsyncTransport._send_request, _async.StdlibAsyncTransport._read_head = atimed_send, atimed_head


def _run(side, n: int, c: int, server: bench_http.Server) -> tuple[float, ...]:
    _ITEMS.clear()
    gc.collect()
    server.reset()
    cpu0, started = time.process_time(), time.perf_counter()
    results = side(n, c)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    if any(r is None for r in results):
        raise RuntimeError("an item failed")
    done = [r for r in _ITEMS if {"slot0", "slot", "send", "head", "end"} <= r.keys()]
    mean = lambda f: statistics.mean(f(r) for r in done) * 1000  # noqa: E731
    busy = sum(r["end"] - r["start"] for r in done)
    return (wall, cpu / n * 1000, mean(lambda r: r["send"] - r["start"]), mean(lambda r: r["slot"] - r["slot0"]),
            mean(lambda r: r["head"] - r["send"]), mean(lambda r: r["end"] - r["head"]), (wall * c - busy) / n * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256/32,512/128")
    parser.add_argument("--strategies", default="thread,async")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    _patch()
    sides = {s: bench_http.TurboSide(s) for s in args.strategies.split(",")}
    server = bench_http.Server(args.latency)
    try:
        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=server.url, api_key="bench-not-a-secret", num_retries=0))
        with dspy.context(disable_history=True):
            for side in sides.values():
                _run(side, 32, 16, server)
            print(f"load average before: {os.getloadavg()[0]:.2f}; medians of {args.repeats}, ms per item")
            print(f"{'n/c':>8} {'side':>14} | {'eff':>6} {'CPU/call':>8} | {'send':>6} {'pool':>6} {'http':>6} {'after':>6} {'gap':>6}")
            for pair in args.sizes.split(","):
                n, c = (int(x) for x in pair.split("/"))
                runs: dict[str, list[tuple[float, ...]]] = {name: [] for name in sides}
                order = list(sides)
                for repeat in range(args.repeats):
                    for name in order if repeat % 2 == 0 else reversed(order):
                        runs[name].append(_run(sides[name], n, c, server))
                ideal = math.ceil(n / c) * args.latency
                for name, measured in runs.items():
                    wall, cpu, send, pool, http, after, gap = (statistics.median(m[i] for m in measured) for i in range(7))
                    print(f"{pair:>8} {name:>14} | {ideal / wall:6.3f} {cpu:8.2f} | {send:6.1f} {pool:6.1f} {http:6.1f} {after:6.1f} {gap:6.1f}")
            print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
