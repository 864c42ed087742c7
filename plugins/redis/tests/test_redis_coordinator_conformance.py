"""The redis tier's coordinator passes the SDK's coordinator conformance suite, on the real server."""

import uuid

import pytest
import redis

from dspy_turbo.testing import CoordinatorSuite
from dspy_turbo_redis.backend import RedisBackend, RedisOptions


class TestRedisCoordinatorConformance(CoordinatorSuite):
    @pytest.fixture
    def coordinator(self, redis_url):
        prefix = f"coord-{uuid.uuid4().hex[:10]}:"  # this test's own keys on the shared server
        backend = RedisBackend(RedisOptions(url=redis_url, prefix=prefix, timeout="2s"))
        coordinator = backend.coordinator()
        yield coordinator
        coordinator.close()
        backend.close()
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.unlink(*keys)
        finally:
            client.close()
