"""Retries of one LM call: which errors are worth another attempt, and how long to wait.

Transient errors (rate limits, timeouts, 5xx, dropped connections) are retried with
exponential backoff and jitter; a provider's ``Retry-After`` is honoured as the least
wait. Anything else (a bad request, an auth error, a parse error) fails at once.

DSPy's own ``execute`` already retries ``lm.num_retries`` times (without jitter and
without the rate limiter). Inside a batch dspy-turbo owns the retries instead: the LM
is called with ``num_retries=0`` and this policy makes ``num_retries + 1`` attempts by
default, each one through the rate limiter, so retries are never multiplied.
"""

from __future__ import annotations

import email.utils
import random
import time
from typing import Any

from dspy_turbo.plugin.batch import RetrySettings

# HTTP statuses that say "try again later": request timeout, conflict, too early, rate limit, 5xx.
TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
# LiteLLM / OpenAI SDK exception names that are transient (matched by name, so neither is imported).
_TRANSIENT_NAMES = frozenset({
    "RateLimitError", "Timeout", "APITimeoutError", "APIConnectionError", "InternalServerError",
    "ServiceUnavailableError", "BadGatewayError",
})


def _status(exc: BaseException) -> int | None:
    for holder in (exc, getattr(exc, "response", None)):
        for name in ("status_code", "status"):
            value = getattr(holder, name, None)
            if isinstance(value, int):
                return value
    return None


def is_transient(exc: BaseException) -> bool:
    """Is this LM error worth another attempt?"""
    try:
        from dspy.utils.exceptions import is_retryable_lm_error

        if is_retryable_lm_error(exc):
            return True
    except ImportError:  # an older DSPy: fall back to the generic checks below
        pass
    status = _status(exc)
    if status is not None:
        return status in TRANSIENT_STATUS
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


def _parse_retry_after(value: Any, now: float | None = None) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:  # an HTTP date
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError):
                return None
            seconds = when.timestamp() - (now if now is not None else time.time())
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (``retry_after`` attribute or ``Retry-After`` header)."""
    seconds = _parse_retry_after(getattr(exc, "retry_after", None))
    if seconds is not None:
        return seconds
    for holder in (exc, getattr(exc, "response", None), getattr(exc, "__cause__", None)):
        headers = getattr(holder, "headers", None)
        if headers is None:
            continue
        try:
            value = headers.get("retry-after") or headers.get("Retry-After")
        except Exception:
            continue
        seconds = _parse_retry_after(value)
        if seconds is not None:
            return seconds
    cause = exc.__cause__
    if cause is not None and cause is not exc:
        return _parse_retry_after(getattr(cause, "retry_after", None))
    return None


class RetryPolicy:
    """The delays between attempts. ``rng`` is injectable for tests."""

    def __init__(self, settings: RetrySettings | None = None, rng: random.Random | None = None):
        self.settings = settings or RetrySettings()
        self.rng = rng or random.Random()

    def attempts_for(self, lm: Any) -> int:
        if self.settings.attempts is not None:
            return self.settings.attempts
        return max(0, int(getattr(lm, "num_retries", 0) or 0)) + 1

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (0 = the first attempt)."""
        s = self.settings
        base = min(s.max_delay, s.initial * s.multiplier ** attempt)
        return self.rng.uniform(base / 2, base) if s.jitter else base

    def delay(self, exc: BaseException, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` when ``exc`` must be raised."""
        if not is_transient(exc):
            return None
        wait = self.backoff(attempt)
        hint = retry_after(exc)
        if hint is not None:
            if hint > self.settings.max_retry_after:
                return None
            wait = max(wait, hint)
        return wait
