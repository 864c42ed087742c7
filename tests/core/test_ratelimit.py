"""Token-bucket rate limits over the coordinator, measured on a fake clock."""

from __future__ import annotations

import pytest

from dspy_turbo.coordination import LocalCoordinator
from dspy_turbo.ratelimit import RateLimiter, RateLimitSettings


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def _limiter(clock, **settings):
    return RateLimiter(RateLimitSettings(**settings), LocalCoordinator(clock=clock), sleep=clock.sleep)


def test_60_requests_per_minute_is_honoured_within_10_percent():
    clock = FakeClock()
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


def test_tokens_per_minute_and_models_are_separate_buckets():
    clock = FakeClock()
    limiter = _limiter(clock, tokens_per_minute=6000, burst=1.0)  # 100 tokens/s
    start = clock.now
    for _ in range(10):
        limiter.acquire("a", tokens=100)
    assert clock.now - start == pytest.approx(9.0, rel=0.01)  # the first second's worth was there
    before = clock.now
    limiter.acquire("b", tokens=100)  # another model: its own full bucket
    assert clock.now == before


def test_per_model_override():
    clock = FakeClock()
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
