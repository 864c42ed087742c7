"""One rate limit shared by two worker processes through real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from dspy_turbo.host.plugin_manager import build_registry, make_plugin_manager

WORKER = textwrap.dedent("""
    import json, sys, time
    import dspy, dspy_turbo
    from dspy_turbo.engines.offline import offline_lm

    url, namespace, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    turbo = dspy_turbo.load({"namespace": namespace,
                             "cache": {"tiers": [{"type": "memory"}, {"type": "redis", "url": url}]},
                             "batching": {"type": "thread", "max_concurrency": 16,
                                          "rate_limit": {"requests_per_minute": 600, "burst": 0.5}}})
    stamps = []
    turbo.bus.add("stamps", lambda e: stamps.append(time.time()) if e.kind == "lm_call" else None)
    dspy.configure(lm=offline_lm("openai/gpt-4o-mini"))
    results = turbo.batch(dspy.Predict("question -> answer"), [{"question": f"{tag} {i}"} for i in range(n)])
    assert all(r is not None for r in results)
    print(json.dumps({"shared": turbo.coordinator.shared, "stamps": stamps}))
    turbo.close()
""")


def _redis_registered() -> bool:
    return build_registry(make_plugin_manager()).get("cache_backend", "redis") is not None


@pytest.mark.slow
def test_two_processes_share_one_rate_limit(redis_url, namespace, tmp_path):
    if not _redis_registered():
        pytest.skip("the redis tier (dspy-turbo-redis) is not installed: no shared coordinator to test")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    try:
        procs = [subprocess.Popen([sys.executable, str(script), redis_url, namespace, tag, "30"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env) for tag in ("a", "b")]
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-2000:]
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        _delete_namespace(redis_url, namespace)
    assert all(o["shared"] for o in outputs)
    stamps = sorted(s for o in outputs for s in o["stamps"])
    assert len(stamps) == 60
    # 600/min = 10/s with a burst of 5: 60 calls need about (60 - 5) / 10 = 5.5 s together. Each process
    # alone would take 2.5 s for its 30, so a per-process limit would finish both in about that.
    span = stamps[-1] - stamps[0]
    assert span >= 5.5 * 0.9, span


def _delete_namespace(url: str, namespace: str) -> None:
    """Only this test's keys (SCAN by its unique namespace), never FLUSHDB."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"*{namespace}*", count=500):
            client.delete(key)
    finally:
        client.close()


def test_redis_counts_the_processes_sharing_a_limit_and_each_keeps_its_share_when_redis_dies(
        redis_server, namespace, fake_clock):
    if not _redis_registered():
        pytest.skip("the redis tier (dspy-turbo-redis) is not installed: no shared coordinator to test")
    import time

    import dspy_turbo
    from dspy_turbo.plugin.batch import RateLimitSettings
    from dspy_turbo_batching.ratelimit import RateLimiter

    server = redis_server()
    turbo = dspy_turbo.load({"namespace": namespace, "cache": {"tiers": [
        {"type": "memory"}, {"type": "redis", "url": server.url, "timeout": 0.2}]}})
    try:
        coordinator = turbo.coordinator
        assert coordinator.shared
        # the contract on a real server: members expire by server time
        assert coordinator.members("group", "a", 0.3) == 1
        assert coordinator.members("group", "b", 30) == 2
        assert coordinator.members("group", "a", 0.3) == 2  # a short member does not cut the long one's time
        time.sleep(1.5)
        assert coordinator.members("group", "c", 30) == 2, "a expired; b is still counted"
        # a second process draws from the same limit; this one is counted on its first call
        coordinator.members("ratelimit", "another-process", 60)
        clock = fake_clock
        limiter = RateLimiter(RateLimitSettings(requests_per_minute=60), coordinator, sleep=clock.sleep, clock=clock)
        limiter.acquire("openai/gpt-4o-mini")
        server.stop()  # killed: every take now fails, fast
        start, admitted = clock.now, 0
        while True:
            limiter.acquire("openai/gpt-4o-mini")  # never raises
            if clock.now - start >= 300:
                break
            admitted += 1
        assert 27 <= admitted / 5 <= 33, admitted / 5  # 60/min shared by 2 processes: 30/min each
    finally:
        turbo.close()
