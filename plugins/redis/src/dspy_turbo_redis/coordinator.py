"""Leases, token buckets and logs on Redis: single-flight, rate limits and the semantic
index shared across processes.

All are single-key operations (``SET NX PX``, Lua scripts on one key, a stream per log),
so they work the same on a standalone server and on a Cluster. Time comes from the
server (``TIME``, stream ids), so the clocks of the client hosts do not matter. Each call
is bounded by the tier's ``timeout`` as a deadline, as the tier's own calls are.
"""

from __future__ import annotations

import uuid

from dspy_turbo.plugin.coordination import Coordinator

from .deadline import bounded

# Delete the lease only if we still hold it: an expired lease may belong to another process.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Extend the lease only if we still hold it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# A token bucket in one hash: level and the server time it was computed at. Returns the
# seconds to wait as a string (Lua numbers would be truncated to integers in the reply).
# As LocalCoordinator.take: an oversized request waits for a full bucket, then takes its
# whole amount (the level goes negative: debt the rate pays off).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local amount, rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local need = math.min(amount, capacity)
local state = redis.call('HMGET', KEYS[1], 'level', 'ts')
local level = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
level = math.min(capacity, level + math.max(0, now - ts) * rate)
local wait = 0
if level >= need then level = level - amount else wait = (need - level) / rate end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - level) / rate * 1000) + 1000)  -- until refilled, debt included
return tostring(wait)
"""

# Who is alive in a group: a sorted set of members scored by when they stop counting
# (server time), the expired ones dropped on each call. One key, so it works on a Cluster.
_MEMBERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')  -- the key lives as long as its longest member
redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(last[2]) - now) * 1000) + 1000)
return redis.call('ZCARD', KEYS[1])
"""


class RedisCoordinator(Coordinator):
    shared = True
    supports_logs = True

    def __init__(self, client_factory, prefix: str, log_max: int = 100_000, timeout: float | None = None):
        """``client_factory()`` returns the backend's client (built lazily, shared pool)."""
        self._client = client_factory
        self.prefix = prefix
        self.log_max = log_max
        self._timeout = timeout
        self._release = self._take = self._members = self._renew = None

    def _scripts(self):
        if self._take is None:
            client = self._client()
            self._release, self._take = client.register_script(_RELEASE), client.register_script(_TAKE)
            self._members, self._renew = client.register_script(_MEMBERS), client.register_script(_RENEW)
        return self._release, self._take

    @bounded
    def try_lease(self, name: str, ttl: float) -> str | None:
        token = uuid.uuid4().hex
        taken = self._client().set(f"{self.prefix}lease:{name}", token, nx=True, px=max(1, int(ttl * 1000)))
        return token if taken else None

    @bounded
    def release(self, name: str, token: str) -> None:
        release, _ = self._scripts()
        release(keys=[f"{self.prefix}lease:{name}"], args=[token])

    @bounded
    def renew(self, name: str, token: str, ttl: float) -> bool:
        self._scripts()
        return bool(self._renew(keys=[f"{self.prefix}lease:{name}"], args=[token, max(1, int(ttl * 1000))]))

    @bounded
    def holder(self, name: str) -> str | None:
        token = self._client().get(f"{self.prefix}lease:{name}")
        return token.decode() if isinstance(token, bytes) else token

    @bounded
    def take(self, bucket: str, amount: float, rate: float, capacity: float) -> float:
        if rate <= 0:
            raise ValueError("rate must be positive")
        _, take = self._scripts()
        wait = take(keys=[f"{self.prefix}bucket:{bucket}"], args=[repr(float(amount)), repr(rate), repr(capacity)])
        return float(wait)

    @bounded
    def members(self, group: str, member: str, ttl: float) -> int:
        self._scripts()
        return int(self._members(keys=[f"{self.prefix}members:{group}"], args=[member, repr(float(ttl))]))

    @bounded
    def append(self, log: str, record: bytes) -> None:
        self._client().xadd(f"{self.prefix}log:{log}", {"d": record}, maxlen=self.log_max, approximate=True)

    @bounded
    def read(self, log: str, after: str, count: int) -> list[tuple[str, bytes]]:
        rows = self._client().xrange(f"{self.prefix}log:{log}", min=f"({after}", max="+", count=count)
        return [(rid.decode() if isinstance(rid, bytes) else rid, fields.get(b"d", b"")) for rid, fields in rows]
