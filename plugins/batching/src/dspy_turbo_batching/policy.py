"""What happens around each LM call a batch makes: the rate limit, then retries.

A batch sets a :class:`CallPolicy` as the call policy of the items it runs
(``dspy_turbo.plugin.calls``); the DSPy integration passes every real LM call (the miss
path, after the cache and single-flight) through it. Outside a batch no policy is set and
calls go straight to DSPy. Cache hits never take a rate-limit token: only requests that
reach the provider count against its limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from typing import Any

from dspy_turbo.plugin import calls
from dspy_turbo.plugin.events import Event, describe_error
from dspy_turbo.plugin.host import Host

from .ratelimit import RateLimiter
from .retry import RetryPolicy

RETRY, RATE_LIMITED = "retry", "rate_limited"


class CallPolicy:
    """The rate limit and retries of one batch (a :class:`dspy_turbo.plugin.calls.CallPolicy`).
    ``host`` receives its ``retry`` and ``rate_limited`` events (``None``: none are emitted)."""

    def __init__(self, host: Host | None, limiter: RateLimiter | None, retry: RetryPolicy, *,
                 sleep=time.sleep, asleep=asyncio.sleep):
        self.host = host
        self.limiter = limiter
        self.retry = retry
        self.sleep = sleep
        self.asleep = asleep
        self.retries = 0
        self._single: dict[int, tuple[Any, Any]] = {}  # id(lm) -> (lm, its one-attempt copy), for this batch

    def one_attempt(self, lm: Any) -> Any:
        """The LM as DSPy's execute sees it, with DSPy's own retries off (this policy retries)."""
        if not getattr(lm, "num_retries", 0):
            return lm
        held = self._single.get(id(lm))
        if held is None or held[0] is not lm:
            clone = copy.copy(lm)  # shallow: shares the engine, history and kwargs with the user's LM
            clone.num_retries = 0
            held = self._single[id(lm)] = (lm, clone)
        return held[1]

    @contextlib.contextmanager
    def active(self):
        with calls.active(self):
            yield self

    def _emit(self, kind: str, model: str | None, latency: float, error: str | None = None) -> None:
        if self.host is not None:
            self.host.bus.emit(Event(kind, model=model, latency=latency, error=error, namespace=self.host.namespace))

    def _acquire_args(self, lm: Any, call: Any) -> tuple[str | None, float, int]:
        """(model, tokens, requests) one execute will send: ``n`` candidates are ``n`` requests."""
        model = getattr(lm, "model", None)
        n = _candidates(lm, call)
        return model, (self.limiter.estimate(model, _prompt_chars(call)) * n if self.limiter else 0.0), n

    def _observe(self, model: str | None, result: Any) -> None:
        # (what the call spent is counted for its item by the core, which made the call)
        if self.limiter is not None:
            usage = getattr(result, "usage", None) or {}
            self.limiter.observe(model, int(usage.get("completion_tokens") or usage.get("output_tokens") or 0))

    def _failed(self, model: str | None, exc: BaseException, attempt: int, attempts: int) -> float | None:
        if attempt + 1 >= attempts:
            return None
        delay = self.retry.delay(exc, attempt)
        if delay is not None:
            self.retries += 1
            self._emit(RETRY, model, delay, describe_error(exc))
        return delay

    def execute(self, original, lm: Any, call: Any) -> Any:
        attempts = self.retry.attempts_for(lm)
        once = self.one_attempt(lm)
        model, tokens, requests = self._acquire_args(lm, call)
        for attempt in range(attempts):
            if self.limiter is not None:
                waited = self.limiter.acquire(model, tokens, requests)
                if waited:
                    self._emit(RATE_LIMITED, model, waited)
            try:
                result = original(once, call)
            except Exception as exc:
                delay = self._failed(model, exc, attempt, attempts)
                if delay is None:
                    raise
                self.sleep(delay)
                continue
            self._observe(model, result)
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def aexecute(self, original, lm: Any, call: Any) -> Any:
        attempts = self.retry.attempts_for(lm)
        once = self.one_attempt(lm)
        model, tokens, requests = self._acquire_args(lm, call)
        for attempt in range(attempts):
            if self.limiter is not None:
                waited = await self.limiter.aacquire(model, tokens, requests)
                if waited:
                    self._emit(RATE_LIMITED, model, waited)
            try:
                result = await original(once, call)
            except Exception as exc:
                delay = self._failed(model, exc, attempt, attempts)
                if delay is None:
                    raise
                await self.asleep(delay)
                continue
            self._observe(model, result)
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")


def worker_document(options: Any) -> dict[str, Any]:
    """A batch's rate limit and retries as JSON, for the workers of another process or host
    (the ``process`` and ``ray`` strategies): read back there by :func:`for_worker`."""
    return {"rate_limit": options.rate_limit.model_dump(mode="json") if options.rate_limit else None,
            "retry": options.retry.model_dump(mode="json")}


def for_worker(host: Any, document: dict[str, Any], workers: int) -> CallPolicy:
    """The :class:`CallPolicy` one of ``workers`` workers applies to its share of a batch.

    With a shared coordinator (a Redis tier) every worker takes from the one bucket per
    model; without one each worker has its own bucket, so each gets 1/workers of the limit
    and together they keep to it."""
    from dspy_turbo.plugin.batch import RateLimitSettings, RetrySettings

    limiter = None
    if document.get("rate_limit") is not None:
        limit = RateLimitSettings.model_validate(document["rate_limit"])
        if not host.coordinator.shared:
            limit = share_of_limit(limit, workers)
        limiter = RateLimiter(limit, host.coordinator)
    return CallPolicy(host, limiter, RetryPolicy(RetrySettings.model_validate(document["retry"])))


def share_of_limit(settings: Any, workers: int) -> Any:
    """``settings`` (a ``RateLimitSettings``) with every limit, per model too, divided by ``workers``."""
    if workers <= 1:
        return settings

    def part(limit: Any) -> dict[str, Any]:
        return {name: getattr(limit, name) / workers for name in ("requests_per_minute", "tokens_per_minute")
                if getattr(limit, name) is not None}

    return settings.model_copy(update={**part(settings), "per_model": {
        model: limit.model_copy(update=part(limit)) for model, limit in settings.per_model.items()}})


def _prompt_chars(call: Any) -> int:
    messages = getattr(call, "messages", None) or (getattr(call, "legacy", None) or {}).get("messages") or []
    total = len(getattr(call, "prompt", None) or "")
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(part.get("text") or "") for part in content if isinstance(part, dict))
    return total


def _candidates(lm: Any, call: Any) -> int:
    for source in (getattr(call, "kwargs", None), getattr(lm, "kwargs", None)):
        n = (source or {}).get("n") or (source or {}).get("num_generations")
        if isinstance(n, int) and n > 1:
            return n
    return 1

