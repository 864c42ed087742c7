"""The redis tier's coordinator passes the SDK's coordinator conformance suite, on the real server."""

import pytest

from dspy_turbo.testing import CoordinatorSuite


class TestRedisCoordinatorConformance(CoordinatorSuite):
    @pytest.fixture
    def coordinator(self, own_backend):
        coordinator = own_backend("coord").coordinator()
        yield coordinator
        coordinator.close()
