"""The thread and async strategies pass the SDK's batch strategy conformance suite."""

import pytest

from dspy_turbo.testing import BatchStrategySuite
from dspy_turbo_batching import AsyncStrategy, ThreadStrategy


class TestThreadStrategyConformance(BatchStrategySuite):
    @pytest.fixture
    def strategy(self):
        return ThreadStrategy


class TestAsyncStrategyConformance(BatchStrategySuite):
    @pytest.fixture
    def strategy(self):
        return AsyncStrategy
