"""The rate limit and retries a batch sends to its worker processes (the ``process`` and ``ray``
strategies): what each worker applies, read back from the JSON the batch sent."""

from __future__ import annotations

import orjson
import pytest

import dspy_turbo
from dspy_turbo.plugin.batch import BatchOptions
from dspy_turbo_batching.policy import for_worker, worker_document


@pytest.fixture
def turbo():
    with dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}]}}) as turbo:
        yield turbo


def _options(**data):
    return BatchOptions.model_validate(data)


def test_without_a_shared_coordinator_the_workers_split_the_limit(turbo):
    options = _options(rate_limit={"requests_per_minute": 600, "tokens_per_minute": 90_000,
                                   "per_model": {"openai/gpt-4o": {"requests_per_minute": 60}}},
                       retry={"attempts": 4, "initial": 0.5})
    document = orjson.loads(orjson.dumps(worker_document(options)))  # as it crosses to the worker
    policy = for_worker(turbo, document, workers=3)
    limit = policy.limiter.settings
    # three workers, each with its own bucket, keep to the batch's limit together
    assert (limit.requests_per_minute, limit.tokens_per_minute) == (200, 30_000)
    assert limit.per_model["openai/gpt-4o"].requests_per_minute == 20
    assert limit.per_model["openai/gpt-4o"].tokens_per_minute is None
    assert (policy.retry.settings.attempts, policy.retry.settings.initial) == (4, 0.5)


def test_one_worker_keeps_the_whole_limit_and_no_limit_means_no_limiter(turbo):
    document = worker_document(_options(rate_limit={"requests_per_minute": 600}))
    assert for_worker(turbo, document, workers=1).limiter.settings.requests_per_minute == 600
    assert for_worker(turbo, worker_document(_options()), workers=4).limiter is None


@pytest.mark.requires_plugin("redis")
def test_with_a_shared_coordinator_every_worker_draws_from_the_one_limit(redis_url, namespace):
    config = {"namespace": namespace, "cache": {"tiers": [{"type": "memory"}, {"type": "redis", "url": redis_url}]}}
    with dspy_turbo.load(config) as shared:
        assert shared.coordinator.shared
        document = worker_document(_options(rate_limit={"requests_per_minute": 600}))
        assert for_worker(shared, document, workers=4).limiter.settings.requests_per_minute == 600
