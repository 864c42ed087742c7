"""invalidate() and `dspy-turbo clear` reach the memory tiers of other processes through
the namespace's log on Redis (dspy_turbo.coordination.invalidation)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis
import yaml

import dspy_turbo

ANSWER = {"answer": "Paris"}


def shared(redis_url, namespace):
    # sync_interval 0: every read first applies what the others appended (no timing in tests)
    return {"namespace": namespace, "cache": {"sync_interval": 0, "tiers": [{"type": "memory"},
                                                                           {"type": "redis", "url": redis_url}]}}


@pytest.fixture
def pair(redis_url, namespace):
    """Two workers of one namespace, each with its own memory tier in front of Redis."""
    a, b = dspy_turbo.load(shared(redis_url, namespace)), dspy_turbo.load(shared(redis_url, namespace))
    yield a, b
    a.close()
    b.close()
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


def memory_has(turbo, key) -> bool:
    return turbo.cache.tiers[0].backend.get(key) is not None


def test_invalidating_a_namespace_empties_the_other_workers_memory(pair):
    a, b = pair
    key = a.key({"model": "m", "messages": [{"role": "user", "content": "capital of France?"}]})
    a.store(key, ANSWER)
    assert b.lookup(key) == ANSWER and memory_has(b, key)  # b keeps its own copy in memory
    a.invalidate()
    assert memory_has(b, key)  # nothing reaches b until it reads again
    assert b.lookup(key) is None and not memory_has(b, key)
    assert b.stats()["invalidations"]["applied"] == 1 and a.stats()["invalidations"]["published"] == 1


def test_invalidating_a_tag_leaves_the_other_entries(pair):
    a, b = pair
    with a.tagged("faq"):
        a.store(a.keys.prefix + "faq", ANSWER)
    a.store(a.keys.prefix + "other", ANSWER)
    assert b.lookup(a.keys.prefix + "faq") == ANSWER and b.lookup(a.keys.prefix + "other") == ANSWER
    a.invalidate(tag="faq")
    assert b.lookup(a.keys.prefix + "faq") is None
    assert b.lookup(a.keys.prefix + "other") == ANSWER


def test_a_worker_started_later_does_not_replay_old_invalidations(pair, redis_url, namespace):
    a, _ = pair
    a.store(a.keys.prefix + "k", ANSWER)
    a.invalidate()
    late = dspy_turbo.load(shared(redis_url, namespace))
    try:
        late.store(late.keys.prefix + "fresh", ANSWER)
        assert late.lookup(late.keys.prefix + "fresh") == ANSWER
        assert late.stats()["invalidations"]["applied"] == 0
    finally:
        late.close()


def test_a_damaged_record_is_skipped_and_counted(pair, redis_url, namespace):
    a, b = pair
    client = redis.Redis.from_url(redis_url)
    for record in (b"\x80\x04 not json", b'{"p": 7}', b'{"p": "", "o": "x"}'):
        client.xadd(f"{namespace}:log:invalidate", {"d": record})
    client.close()
    b.store(b.keys.prefix + "k", ANSWER)
    assert b.lookup(b.keys.prefix + "k") == ANSWER  # nothing was cleared by the damaged records
    assert b.stats()["invalidations"]["bad_records"] == 3


def test_the_clear_command_reaches_a_running_worker(pair, redis_url, namespace, tmp_path):
    _, b = pair
    with b.tagged("eval"):
        b.store(b.keys.prefix + "k", ANSWER)
    assert b.lookup(b.keys.prefix + "k") == ANSWER and memory_has(b, b.keys.prefix + "k")
    path = tmp_path / "turbo.yaml"
    path.write_text(yaml.safe_dump(shared(redis_url, namespace)))
    done = subprocess.run([sys.executable, "-m", "dspy_turbo.cli", "clear", "--config", str(path), "--tag", "eval"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert b.lookup(b.keys.prefix + "k") is None


def test_with_redis_down_reads_go_on_from_memory(redis_server):
    server = redis_server()
    config = {"namespace": "down", "cache": {"sync_interval": 0, "tiers": [
        {"type": "memory"}, {"type": "redis", "url": server.url, "timeout": 0.2}]}}
    worker = dspy_turbo.load(config)
    try:
        worker.store(worker.keys.prefix + "k", ANSWER)
        server.stop()
        for _ in range(3):
            assert worker.lookup(worker.keys.prefix + "k") == ANSWER
        assert worker.stats()["invalidations"]["failed"] >= 1
    finally:
        worker.close()
