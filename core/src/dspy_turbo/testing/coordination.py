"""Conformance suite of coordinators (``dspy_turbo.plugin.coordination``).

    import pytest
    from dspy_turbo.testing import CoordinatorSuite

    class TestMyCoordinator(CoordinatorSuite):
        @pytest.fixture
        def coordinator(self):
            c = MyBackend(MyBackend.Options(...)).coordinator()
            yield c
            c.close()

Names are unique per test run, so a coordinator on a shared server can be tested in place.
Optional methods (``renew``, ``holder``, logs) are tested when the coordinator has them.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from ..plugin.coordination import Coordinator


def _name(what: str) -> str:
    return f"suite-{what}-{uuid.uuid4().hex[:10]}"


class CoordinatorSuite:
    """The contract of :class:`dspy_turbo.plugin.coordination.Coordinator`."""

    @pytest.fixture
    def coordinator(self) -> Coordinator:  # pragma: no cover - subclasses provide it
        raise NotImplementedError("provide a `coordinator` fixture")

    def test_is_a_coordinator(self, coordinator):
        assert isinstance(coordinator, Coordinator)
        assert isinstance(coordinator.shared, bool)

    def test_a_lease_has_one_holder_at_a_time(self, coordinator):
        name = _name("lease")
        token = coordinator.try_lease(name, 5.0)
        assert token, "a free lease is taken"
        assert coordinator.try_lease(name, 5.0) is None, "a held lease is not given twice"
        coordinator.release(name, "not-the-token")
        assert coordinator.try_lease(name, 5.0) is None, "release with another token changes nothing"
        coordinator.release(name, token)
        again = coordinator.try_lease(name, 5.0)
        assert again and again != token, "a released lease is free, with a new token"
        coordinator.release(name, again)

    def test_one_of_many_concurrent_callers_gets_the_lease(self, coordinator):
        name, tokens = _name("race"), []
        barrier = threading.Barrier(8)

        def take() -> None:
            barrier.wait()
            tokens.append(coordinator.try_lease(name, 5.0))

        threads = [threading.Thread(target=take) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [t for t in tokens if t]
        assert len(won) == 1, f"{len(won)} callers hold one lease"
        coordinator.release(name, won[0])

    def test_a_lease_expires_after_its_ttl(self, coordinator):
        name = _name("ttl")
        token = coordinator.try_lease(name, 0.3)
        assert token
        time.sleep(0.5)
        taker = coordinator.try_lease(name, 5.0)
        assert taker, "a crashed holder's lease is free once its ttl ran out"
        coordinator.release(name, token)  # the old holder's late release must not free the new one
        assert coordinator.try_lease(name, 5.0) is None
        coordinator.release(name, taker)

    def test_renew_keeps_a_lease_past_its_ttl_and_only_for_its_holder(self, coordinator):
        name = _name("renew")
        token = coordinator.try_lease(name, 0.4)
        if not coordinator.renew(name, token, 2.0):
            pytest.skip("this coordinator cannot renew (optional)")
        assert coordinator.renew(name, "not-the-token", 2.0) is False
        time.sleep(0.6)
        assert coordinator.try_lease(name, 1.0) is None, "a renewed lease is still held"
        coordinator.release(name, token)
        assert coordinator.renew(name, token, 2.0) is False, "a released lease cannot be renewed"

    def test_holder_names_the_token_holding_a_lease(self, coordinator):
        name = _name("holder")
        token = coordinator.try_lease(name, 5.0)
        holder = coordinator.holder(name)
        if holder is None:
            pytest.skip("this coordinator does not tell holders (optional)")
        assert holder == token
        coordinator.release(name, token)
        assert coordinator.holder(name) is None

    def test_a_bucket_gives_its_capacity_then_asks_to_wait(self, coordinator):
        bucket = _name("bucket")
        assert coordinator.take(bucket, 1, 2.0, 3) == 0.0
        assert coordinator.take(bucket, 2, 2.0, 3) == 0.0, "a new bucket is full"
        wait = coordinator.take(bucket, 1, 2.0, 3)
        assert 0.0 < wait <= 0.6, f"an empty bucket refilling at 2/s asks to wait about 0.5 s, not {wait}"
        time.sleep(wait + 0.05)
        assert coordinator.take(bucket, 1, 2.0, 3) == 0.0, "after the wait the tokens are there"

    def test_members_counts_this_member(self, coordinator):
        assert coordinator.members(_name("group"), "me", 5.0) >= 1

    def test_a_shared_log_reads_back_in_order(self, coordinator):
        if not coordinator.supports_logs:
            pytest.skip("this coordinator has no shared logs (optional)")
        log = _name("log")
        for i in range(5):
            coordinator.append(log, f"record {i}".encode())
        records = coordinator.read(log, "0", 100)
        assert [r for _, r in records] == [f"record {i}".encode() for i in range(5)]
        after = coordinator.read(log, records[1][0], 2)
        assert [r for _, r in after] == [b"record 2", b"record 3"]
