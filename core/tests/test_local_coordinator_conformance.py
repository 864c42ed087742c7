"""The in-process coordinator passes the SDK's coordinator conformance suite."""

import pytest

from dspy_turbo.plugin.coordination import LocalCoordinator
from dspy_turbo.testing import CoordinatorSuite


class TestLocalCoordinatorConformance(CoordinatorSuite):
    @pytest.fixture
    def coordinator(self):
        return LocalCoordinator()
