"""The redis tier on a real three-master Redis Cluster (made with `redis-cli --cluster create`)."""

from __future__ import annotations

import dspy
import pytest
import redis

import dspy_turbo
from dspy_turbo.testing import CacheBackendSuite
from dspy_turbo_redis import RedisBackend, RedisOptions


class TestRedisClusterConformance(CacheBackendSuite):
    @pytest.fixture
    def backend(self, redis_cluster):
        # A generous deadline: the contract is under test here, not a loaded machine's scheduler
        backend = RedisBackend(RedisOptions(startup_nodes=redis_cluster, timeout="2s"))
        yield backend
        backend.clear("")
        backend.close()

    @pytest.fixture
    def corrupt(self):
        def damage(backend, key):
            backend._client().set(key, b"\x80\x04not an entry")
        return damage


def test_dspy_program_on_the_cluster_spreads_keys_and_shares_entries(redis_cluster, namespace, lm):
    config = {"namespace": namespace, "cache": {"tiers": [{"type": "memory"}, {"type": "redis", "url": f"redis://{redis_cluster[0]}",
                                                                              "cluster": True}]}}
    first = dspy_turbo.load(config).install()
    program = dspy.Predict("question -> answer")
    questions = [f"Name a landmark in city {i}." for i in range(40)]
    try:
        answers = [program(question=q).answer for q in questions]
    finally:
        first.close()
    # entries landed on every master (keys hash to slots all over the cluster)
    per_node = [redis.Redis(host=n.split(":")[0], port=int(n.split(":")[1])).dbsize() for n in redis_cluster]
    assert all(count > 0 for count in per_node) and sum(per_node) >= 40

    second = dspy_turbo.load(config).install()  # a new Turbo: empty memory tier
    try:
        assert [program(question=q).answer for q in questions] == answers
        assert lm.engine.calls == 40 and second.stats()["hits"] == {"redis": 40}
        keys = [second.key({"k": i}) for i in range(3)]
        assert second.cache.get_many(keys) == {}  # bulk read across slots (MGET per slot group)
        assert second.coordinator.shared and second.coordinator.try_lease("x", 5) is not None
        assert second.invalidate() == {"memory": 40, "redis": 40}  # SCAN on every master
    finally:
        second.close()
