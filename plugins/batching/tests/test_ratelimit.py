"""Token-bucket rate limits over the coordinator, measured on a fake clock."""

from __future__ import annotations

import pytest

from dspy_turbo.plugin.batch import RateLimitSettings
from dspy_turbo.plugin.coordination import LocalCoordinator
from dspy_turbo_batching.ratelimit import RateLimiter


def _limiter(clock, **settings):
    return RateLimiter(RateLimitSettings(**settings), LocalCoordinator(clock=clock), sleep=clock.sleep)


def test_60_requests_per_minute_is_honoured_within_10_percent(fake_clock):
    clock = fake_clock
    limiter = _limiter(clock, requests_per_minute=60)
    start = clock.now
    admitted = 0
    while True:
        limiter.acquire("openai/gpt-4o-mini")  # blocks (advances the clock) instead of failing
        if clock.now - start >= 300:
            break
        admitted += 1
    per_minute = admitted / 5
    assert 54 <= per_minute <= 66, per_minute


def test_tokens_per_minute_and_models_are_separate_buckets(fake_clock):
    clock = fake_clock
    limiter = _limiter(clock, tokens_per_minute=6000, burst=1.0)  # 100 tokens/s
    start = clock.now
    for _ in range(10):
        limiter.acquire("a", tokens=100)
    assert clock.now - start == pytest.approx(9.0, rel=0.01)  # the first second's worth was there
    before = clock.now
    limiter.acquire("b", tokens=100)  # another model: its own full bucket
    assert clock.now == before


def test_per_model_override(fake_clock):
    clock = fake_clock
    limiter = _limiter(clock, requests_per_minute=6000, per_model={"slow": {"requests_per_minute": 60}})
    start = clock.now
    for _ in range(3):
        limiter.acquire("slow")
    assert clock.now - start == pytest.approx(2.0)
    start = clock.now
    for _ in range(50):
        limiter.acquire("fast")
    assert clock.now - start == pytest.approx(0.0)


def test_a_failing_coordinator_falls_back_to_a_local_bucket():
    class Down(LocalCoordinator):
        def take(self, *args):
            raise ConnectionError("redis is down")

    waits = []
    limiter = RateLimiter(RateLimitSettings(requests_per_minute=60), Down(), sleep=waits.append)
    limiter.acquire("m")
    assert waits == []  # the local bucket starts full: the call goes, nothing raised


class Sharing(LocalCoordinator):
    """A shared coordinator stand-in: ``processes`` draw from it until it goes ``down``."""

    shared = True

    def __init__(self, clock, processes: int):
        super().__init__(clock=clock)
        self.processes, self.down, self.counted = processes, False, 0

    def take(self, *args):
        if self.down:
            raise ConnectionError("redis is down")
        return super().take(*args)

    def members(self, group, member, ttl):
        self.counted += 1
        return self.processes


def test_while_the_shared_coordinator_is_down_each_process_keeps_to_its_share(fake_clock):
    clock = fake_clock
    coordinator = Sharing(clock, processes=4)
    limiter = RateLimiter(RateLimitSettings(requests_per_minute=60), coordinator, sleep=clock.sleep, clock=clock)
    for _ in range(30):  # 30 s at the shared rate: this process is counted every few seconds, not per call
        limiter.acquire("m")
    assert 1 <= coordinator.counted <= 30 / 5 + 1
    coordinator.down = True
    later = RateLimiter(RateLimitSettings(requests_per_minute=60), coordinator, sleep=clock.sleep, clock=clock)
    start, admitted = clock.now, 0  # a batch started during the outage still knows the count
    while True:
        later.acquire("m")
        if clock.now - start >= 300:
            break
        admitted += 1
    assert 13.5 <= admitted / 5 <= 16.5, admitted / 5  # 60/min shared by 4: 15/min each, within 10 %


def test_a_coordinator_that_counts_no_processes_leaves_the_whole_limit_to_the_fallback(fake_clock):
    clock = fake_clock

    class Plain(Sharing):
        members = LocalCoordinator.members  # the contract's default: 1, no count kept

    coordinator = Plain(clock, processes=4)
    limiter = RateLimiter(RateLimitSettings(requests_per_minute=60), coordinator, sleep=clock.sleep, clock=clock)
    limiter.acquire("m")
    coordinator.down = True
    start, admitted = clock.now, 0
    while clock.now - start < 60:
        limiter.acquire("m")
        admitted += 1
    assert 54 <= admitted <= 66, admitted
