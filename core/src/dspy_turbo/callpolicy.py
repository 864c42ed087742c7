"""What happens around each LM call a batch makes: the rate limit, then retries.

A batch sets a :class:`CallPolicy` in a context variable for the items it runs; the
DSPy integration (``dspy_integration``) passes every real LM call (the miss path, after
the cache and single-flight) through :func:`execute` / :func:`aexecute`. Outside a batch
the policy is unset and calls go straight to DSPy. Cache hits never take a rate-limit
token: only requests that reach the provider count against its limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import time
from typing import TYPE_CHECKING, Any

from .costs import usage_cost
from .events import Event, describe_error
from .ratelimit import RateLimiter
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .turbo import Turbo

_POLICY: contextvars.ContextVar[CallPolicy | None] = contextvars.ContextVar("dspy_turbo_call_policy", default=None)
# What the real LM calls of the running batch item used: stored with its result, so a hit on
# the item reports the tokens and dollars it saved.
_SPENT: contextvars.ContextVar[Spent | None] = contextvars.ContextVar("dspy_turbo_item_spent", default=None)


class Spent:
    __slots__ = ("prompt_tokens", "completion_tokens", "cost")

    def __init__(self):
        self.prompt_tokens = self.completion_tokens = 0
        self.cost: float | None = None

    def add(self, usage: dict, cost: float | None) -> None:
        self.prompt_tokens += int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost

    def usage(self) -> dict[str, int]:
        total = self.prompt_tokens + self.completion_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": total} if total else {}


def tracking_spent() -> Spent:
    """Start counting what this item's LM calls use (in the current context)."""
    spent = Spent()
    _SPENT.set(spent)
    return spent

RETRY, RATE_LIMITED = "retry", "rate_limited"


class CallPolicy:
    def __init__(self, turbo: Turbo | None, limiter: RateLimiter | None, retry: RetryPolicy, *,
                 sleep=time.sleep, asleep=asyncio.sleep):
        self.turbo = turbo
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
        token = _POLICY.set(self)
        try:
            yield self
        finally:
            _POLICY.reset(token)

    def _emit(self, kind: str, model: str | None, latency: float, error: str | None = None) -> None:
        if self.turbo is not None:
            self.turbo.bus.emit(Event(kind, model=model, latency=latency, error=error, namespace=self.turbo.namespace))

    def _acquire_args(self, lm: Any, call: Any) -> tuple[str | None, float, int]:
        """(model, tokens, requests) one execute will send: ``n`` candidates are ``n`` requests."""
        model = getattr(lm, "model", None)
        n = _candidates(lm, call)
        return model, (self.limiter.estimate(model, _prompt_chars(call)) * n if self.limiter else 0.0), n

    def _observe(self, lm: Any, model: str | None, result: Any) -> None:
        spent = _SPENT.get()
        if spent is not None:
            spent.add(*usage_cost(lm, result))
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


def execute(original, lm: Any, call: Any) -> Any:
    policy = _POLICY.get()
    if policy is None:
        return original(lm, call)
    attempts = policy.retry.attempts_for(lm)
    once = policy.one_attempt(lm)
    model, tokens, requests = policy._acquire_args(lm, call)
    for attempt in range(attempts):
        if policy.limiter is not None:
            waited = policy.limiter.acquire(model, tokens, requests)
            if waited:
                policy._emit(RATE_LIMITED, model, waited)
        try:
            result = original(once, call)
        except Exception as exc:
            delay = policy._failed(model, exc, attempt, attempts)
            if delay is None:
                raise
            policy.sleep(delay)
            continue
        policy._observe(lm, model, result)
        return result
    raise AssertionError("unreachable: the last attempt returns or raises")


async def aexecute(original, lm: Any, call: Any) -> Any:
    policy = _POLICY.get()
    if policy is None:
        return await original(lm, call)
    attempts = policy.retry.attempts_for(lm)
    once = policy.one_attempt(lm)
    model, tokens, requests = policy._acquire_args(lm, call)
    for attempt in range(attempts):
        if policy.limiter is not None:
            waited = await policy.limiter.aacquire(model, tokens, requests)
            if waited:
                policy._emit(RATE_LIMITED, model, waited)
        try:
            result = await original(once, call)
        except Exception as exc:
            delay = policy._failed(model, exc, attempt, attempts)
            if delay is None:
                raise
            await policy.asleep(delay)
            continue
        policy._observe(lm, model, result)
        return result
    raise AssertionError("unreachable: the last attempt returns or raises")


def _candidates(lm: Any, call: Any) -> int:
    for source in (getattr(call, "kwargs", None), getattr(lm, "kwargs", None)):
        n = (source or {}).get("n") or (source or {}).get("num_generations")
        if isinstance(n, int) and n > 1:
            return n
    return 1


def current() -> CallPolicy | None:
    return _POLICY.get()

