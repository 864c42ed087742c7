"""Which LM errors are retried and how long to wait."""

from __future__ import annotations

import email.utils
import random
import time

import dspy
import pytest

from dspy_turbo.plugin.batch import RetrySettings
from dspy_turbo_batching.retry import RetryPolicy, is_transient, retry_after


class HTTPError(Exception):
    def __init__(self, status, headers=None):
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.headers = headers or {}


@pytest.mark.parametrize("status, transient", [(429, True), (500, True), (503, True), (408, True), (400, False),
                                               (401, False), (404, False)])
def test_http_status_classification(status, transient):
    assert is_transient(HTTPError(status)) is transient


def test_dspy_and_builtin_errors():
    from dspy.utils.exceptions import LMInvalidRequestError, LMRateLimitError

    assert is_transient(LMRateLimitError("slow", model="m"))
    assert not is_transient(LMInvalidRequestError("bad", model="m"))
    assert is_transient(TimeoutError())
    assert not is_transient(ValueError("parse error"))
    assert is_transient(dspy.lm15.RateLimitError("x", status=429))


def test_retry_after_from_attribute_header_and_date():
    assert retry_after(HTTPError(429, {"retry-after": "7"})) == 7.0
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after(HTTPError(429, {"Retry-After": when})) <= 31
    assert retry_after(dspy.lm15.RateLimitError("x", retry_after=2)) == 2.0
    assert retry_after(HTTPError(429)) is None


def test_backoff_grows_with_jitter_and_honours_retry_after():
    policy = RetryPolicy(RetrySettings(initial=1, max_delay=8), rng=random.Random(0))
    delays = [policy.delay(HTTPError(503), attempt) for attempt in range(6)]
    for attempt, delay in enumerate(delays):
        base = min(8, 2 ** attempt)
        assert base / 2 <= delay <= base
    assert len(set(delays)) == len(delays)  # jittered
    assert policy.delay(HTTPError(429, {"retry-after": "20"}), 0) == 20  # longer than max_delay: still honoured
    assert policy.delay(HTTPError(429, {"retry-after": "9999"}), 0) is None  # beyond max_retry_after: raise
    assert policy.delay(HTTPError(400), 0) is None
