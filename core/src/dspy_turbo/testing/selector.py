"""Conformance suite of model selectors (``dspy_turbo.plugin.selector``).

    import pytest
    from dspy_turbo.testing import ModelSelectorSuite

    class TestMySelector(ModelSelectorSuite):
        @pytest.fixture
        def selector(self):
            return MySelector(MySelector.Options(tiers=[{"name": "small", "model": "openai/gpt-4o-mini"},
                                                        {"name": "large", "model": "openai/gpt-4o"}]))

Optional: ``requests`` (the requests to decide; default: DSPy ChatAdapter prompts of a few
kinds, a plain prompt and some odd shapes).
"""

from __future__ import annotations

import threading

import pytest

from ..plugin.selector import Decision, ModelSelector, SelectorOptions


def dspy_requests() -> list[dict]:
    """LM requests as DSPy sends them: ChatAdapter-formatted signatures with their inputs."""
    import dspy

    adapter = dspy.ChatAdapter()
    cases = [
        ("question -> answer", {"question": "What is the capital of France?"}),
        ("question -> answer", {"question": "Briefly: yes or no, is water wet?"}),
        ("code, task -> fixed_code", {"code": "def f(x):\n    return x +\n", "task": "Fix the syntax error and explain why it failed."}),
        ("problem -> reasoning, answer", {"problem": "Prove that the sum of two odd integers is even, step by step."}),
        ("document -> summary, keywords, sentiment", {"document": "The committee reviewed the quarterly figures. " * 200}),
    ]
    requests = []
    for signature, inputs in cases:
        messages = adapter.format(dspy.Signature(signature), demos=[], inputs=inputs)
        requests.append({"model": "dspy-turbo/router", "messages": messages, "temperature": 0.0})
    return requests


ODD_REQUESTS = [
    {},
    {"messages": []},
    {"prompt": "Just a plain prompt."},
    {"messages": [{"role": "user", "content": None}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}, {"type": "image_url", "image_url": {"url": "x"}}]}]},
    {"messages": [{"role": "user", "content": "naïve café ✓ 日本語 " * 500}]},
]


class ModelSelectorSuite:
    """The contract of :class:`dspy_turbo.plugin.selector.ModelSelector`."""

    @pytest.fixture
    def selector(self) -> ModelSelector:  # pragma: no cover - subclasses provide it
        raise NotImplementedError("provide a `selector` fixture that builds your model selector")

    @pytest.fixture
    def requests(self) -> list[dict]:
        return dspy_requests()

    def _check(self, selector: ModelSelector, decision: Decision) -> None:
        assert isinstance(decision, Decision)
        tier = selector.tier_named(decision.tier)
        assert tier is not None, f"decision names tier {decision.tier!r}, not one of {[t.name for t in selector.tiers]}"
        assert decision.model == tier.model, "the decision's model is its tier's"
        assert decision.score is None or 0.0 <= decision.score <= 1.0
        assert isinstance(decision.source, str) and decision.source

    def test_is_a_model_selector_component(self, selector):
        assert isinstance(selector, ModelSelector) and selector.kind == "model_selector"
        assert selector.name and selector.name == selector.name.lower()
        assert isinstance(selector.options, SelectorOptions) and selector.tiers

    def test_every_request_gets_a_decision_for_one_of_its_tiers(self, selector, requests):
        for request in requests:
            self._check(selector, selector.select(request))

    def test_odd_requests_get_a_decision_too(self, selector):
        """No messages, a plain prompt, non-text parts, ``None`` content, very long text: a
        selector decides (usually the cheapest tier), it never raises."""
        for request in ODD_REQUESTS:
            self._check(selector, selector.select(request))

    def test_the_same_request_gets_the_same_decision(self, selector, requests):
        first = [selector.select(r) for r in requests]
        again = [selector.select(r) for r in requests]
        assert [(d.tier, d.model, d.score) for d in again] == [(d.tier, d.model, d.score) for d in first]

    def test_a_scored_decision_takes_the_tier_of_its_score(self, selector, requests):
        """When a decision has a score, its tier is ``tier_for_score(score)``: the tiers' ranges decide."""
        for request in requests:
            decision = selector.select(request)
            if decision.score is not None and decision.source == "selector":
                assert decision.tier == selector.tier_for_score(decision.score).name

    def test_with_one_tier_every_request_goes_to_it(self, selector, requests):
        only = selector.options.tiers[-1].model_copy(update={"max_score": None})
        single = type(selector).from_options(selector.options.model_copy(update={"tiers": [only]}), None)
        for request in [*requests, *ODD_REQUESTS]:
            decision = single.select(request)
            assert (decision.tier, decision.model) == (only.name, only.model)

    def test_concurrent_calls_decide_as_sequential_ones(self, selector, requests):
        expected = [(d.tier, d.score) for d in (selector.select(r) for r in requests)]
        results, errors = [], []

        def work() -> None:
            try:
                results.append([(d.tier, d.score) for d in (selector.select(r) for r in requests)])
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and all(r == expected for r in results)
