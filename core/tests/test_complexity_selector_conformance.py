"""The built-in ``complexity`` model selector passes the SDK's model selector conformance suite."""

import pytest

from dspy_turbo.routing.model_selection import ComplexitySelector
from dspy_turbo.testing import ModelSelectorSuite

TIERS = [{"name": "small", "model": "openai/gpt-4o-mini", "max_score": 0.3},
         {"name": "medium", "model": "openai/gpt-4.1-mini", "max_score": 0.6},
         {"name": "large", "model": "openai/gpt-4o"}]


@pytest.mark.parametrize("priority", ["speed", "balanced", "quality"])
class TestComplexitySelectorConformance(ModelSelectorSuite):
    @pytest.fixture
    def selector(self, priority):
        return ComplexitySelector.from_options(ComplexitySelector.Options(tiers=TIERS, priority=priority), None)


def test_the_suites_requests_reach_more_than_one_tier():
    """The suite's default requests are varied enough to exercise a selector's ranges."""
    selector = ComplexitySelector(ComplexitySelector.Options(tiers=TIERS))
    from dspy_turbo.testing.selector import dspy_requests

    assert len({selector.select(r).tier for r in dspy_requests()}) >= 2
