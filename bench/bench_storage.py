"""Storage-tier benchmark: the redis and file tiers against the bare clients they wrap,
and the file tier against DSPy's own disk cache, in one run.

    python bench/bench_storage.py            # full run (about a minute)
    python bench/bench_storage.py --quick    # fewer repetitions, a smoke test
    python bench/bench_storage.py --check    # exit 1 when any target fails
    REDIS_URL=redis://host:6379/0 python bench/bench_storage.py

Every figure is a ratio against a baseline measured in the same run, on the same bytes:
a bare redis-py ``GET``/``MGET`` (hiredis), a bare ``diskcache.Cache.get``, DSPy's
``Cache`` with only its disk layer on. The turbo side includes decoding the entry (and,
for DSPy's interface, the key and the caller's own copy). Timing is bench_core's: median
of alternating A/B repeats (see bench/README.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid

import diskcache
import orjson
import redis
from bench_core import IGNORED, Budget, Row, build_fixtures, compare, describe_value, plain, report
from dspy.clients.cache import Cache

import dspy_turbo
from dspy_turbo.cache.entry import Entry
from dspy_turbo.integration.dspy_cache import DSPyCache
from dspy_turbo_file import FileBackend, FileOptions
from dspy_turbo_redis import RedisBackend, RedisOptions

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def bench_redis(entry: Entry, budget: Budget) -> list[Row]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    bare = redis.Redis.from_url(REDIS_URL)
    backend = RedisBackend(RedisOptions(url=REDIS_URL, prefix=prefix, timeout=1.0))
    keys = [f"ns:v1:{i:04d}" for i in range(100)]
    try:
        for key in keys:
            backend.set(key, entry)
        one, full = keys[0], [prefix + k for k in keys]
        assert bare.get(prefix + one) == entry.to_bytes() and backend.get(one).value == entry.value
        hit = compare(plain(lambda: bare.get(prefix + one)), plain(lambda: backend.get(one)), budget)
        bulk = compare(plain(lambda: bare.mget(full)), plain(lambda: backend.get_many(keys)), budget)
        # The floor, and the bulk read's target: the least any client that parses JSON pays, MGET
        # then orjson on each value (no checks, no objects), in this run.
        def parsed():
            return [orjson.loads(blob[3:]) for blob in bare.mget(full)]
        floor = compare(plain(lambda: bare.mget(full)), plain(parsed), budget)
        over = compare(plain(parsed), plain(lambda: backend.get_many(keys)), budget)
    finally:
        backend.clear("")
        backend.close()
        bare.close()
    return [Row("redis hit (get + decode)", *hit, max_ratio=1.3, baseline="redis-py GET"),
            Row("redis bulk 100 keys (+ decode)", *bulk, baseline="redis-py MGET"),
            Row("  MGET + orjson.loads per value", *floor, baseline="redis-py MGET"),
            Row("  redis bulk 100 keys (+ decode)", *over, max_ratio=1.15, baseline="MGET + orjson")]


def bench_file(entry: Entry, budget: Budget) -> list[Row]:
    with tempfile.TemporaryDirectory() as bare_dir, tempfile.TemporaryDirectory() as turbo_dir:
        bare = diskcache.Cache(bare_dir)
        backend = FileBackend(FileOptions(directory=turbo_dir))
        try:
            bare.set("ns:v1:k", entry.to_bytes())
            backend.set("ns:v1:k", entry)
            assert backend.get("ns:v1:k").value == entry.value
            hit = compare(plain(lambda: bare.get("ns:v1:k")), plain(lambda: backend.get("ns:v1:k")), budget)
            floor = compare(plain(lambda: bare.get("ns:v1:k")), plain(lambda: orjson.loads(bare.get("ns:v1:k")[3:])), budget)
        finally:
            bare.close()
            backend.close()
    return [Row("file hit (get + decode)", *hit, max_ratio=1.5, baseline="diskcache get"),
            Row("  diskcache get + orjson.loads", *floor, baseline="diskcache get")]


def bench_file_vs_dspy_disk(fx, label: str, value, budget: Budget) -> list[Row]:
    """Both through DSPy's cache interface (key, read, decode, the caller's copy), disk only."""
    with tempfile.TemporaryDirectory() as dspy_dir, tempfile.TemporaryDirectory() as turbo_dir:
        dspy_disk = Cache(enable_disk_cache=True, enable_memory_cache=False, disk_cache_dir=dspy_dir)
        turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "file", "directory": turbo_dir}]}})
        adapter = DSPyCache(turbo)
        try:
            dspy_disk.put(fx.request, value, IGNORED)
            adapter.put(fx.request, value, IGNORED)
            assert dspy_disk.get(fx.request, IGNORED) is not None and adapter.get(fx.request, IGNORED) is not None
            hit = compare(plain(lambda: dspy_disk.get(fx.request, IGNORED)), plain(lambda: adapter.get(fx.request, IGNORED)),
                          budget)
        finally:
            turbo.close()
    return [Row(f"disk hit via dspy.cache [{label}]", *hit, max_ratio=1.0, baseline="DSPy disk cache")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (noisier)")
    parser.add_argument("--check", action="store_true", help="exit 1 when any target fails")
    args = parser.parse_args(argv)
    budget = Budget(repeats=5, seconds=0.02) if args.quick else Budget(repeats=11, seconds=0.1)

    fx = build_fixtures()
    record = fx.values["DSPy record"]
    entry = Entry.create(record, usage={"prompt_tokens": 260, "completion_tokens": 240, "total_tokens": 500},
                         cost=0.0002, model="openai/gpt-4o-mini")
    print(f"redis-py {redis.__version__} (hiredis: {redis.utils.HIREDIS_AVAILABLE}), diskcache {diskcache.__version__}, "
          f"python {sys.version.split()[0]}; Redis at {REDIS_URL.split('@')[-1]}")
    print(f"entry: {len(entry.to_bytes())} B (a DSPy record, {describe_value(record)})")
    print(f"timing: median of {budget.repeats} alternating repeats, per-call µs, GC off during timing")
    print()
    rows = bench_redis(entry, budget) + bench_file(entry, budget)
    for label, value in fx.values.items():
        rows += bench_file_vs_dspy_disk(fx, label, value, budget)
    return report(rows, args.check)


if __name__ == "__main__":
    sys.exit(main())
