"""The in-process coordinator: leases and token buckets (the Redis one is tested with the redis plugin)."""

from dspy_turbo.coordination.coordinator import LocalCoordinator


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_lease_is_exclusive_until_released_or_expired():
    clock = Clock()
    coord = LocalCoordinator(clock)
    token = coord.try_lease("k", ttl=5)
    assert token is not None
    assert coord.try_lease("k", ttl=5) is None
    coord.release("k", "not-the-token")  # a stale holder cannot release someone else's lease
    assert coord.try_lease("k", ttl=5) is None
    coord.release("k", token)
    second = coord.try_lease("k", ttl=5)
    assert second is not None
    clock.now += 5.1  # a crashed holder's lease runs out
    assert coord.try_lease("k", ttl=5) is not None


def test_token_bucket_blocks_at_the_rate():
    clock = Clock()
    coord = LocalCoordinator(clock)
    rate, capacity = 1.0, 3.0  # 60 per minute, bursts of 3
    assert [coord.take("rpm", 1, rate, capacity) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = coord.take("rpm", 1, rate, capacity)
    assert 0.99 < wait <= 1.0
    clock.now += wait
    assert coord.take("rpm", 1, rate, capacity) == 0.0
    assert coord.take("big", 10, rate, capacity) == 0.0  # waits for a full bucket only, never forever
    assert 6.9 < coord.take("big", 1, rate, capacity) <= 8.0  # but it took all 10: 7 in debt, paid at 1/s
    assert coord.take("other", 1, rate, capacity) == 0.0  # buckets are independent


def test_turbo_without_a_shared_tier_coordinates_locally(make_turbo):
    assert make_turbo().coordinator.shared is False
