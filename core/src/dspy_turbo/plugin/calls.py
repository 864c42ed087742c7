"""The per-call policy hook: what runs around each real LM call, and what those calls spent.

The DSPy integration sends every LM call that reaches the provider (the miss path, after
the cache and single-flight; a hit never gets here) through the :class:`CallPolicy` set in
the current context, if any: ``policy.execute(original, lm, call)``, or
``await policy.aexecute(original, lm, call)`` on DSPy's async path, where
``original(lm, call)`` is DSPy's own call (the policy may call it several times: retries,
or with another ``lm``). Outside such a context calls go straight to DSPy.
dspy-turbo-batching sets its rate limit and retries this way for the items of a batch; a
strategy that runs items in workers of its own (Ray) sets it there.

:func:`tracking_spent` starts counting, in the current context, the tokens and dollars of
the LM calls that succeed under a policy: what a batch stores with an item's result, so
that a later hit on it reports what it saved.

Context variables, so each thread and each asyncio task sees its own policy: set one with
``with active(policy):`` (or :func:`set_policy` for the rest of a task's own context).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, runtime_checkable

__all__ = ["CallPolicy", "Spent", "active", "current", "set_policy", "spent", "tracking_spent"]


@runtime_checkable
class CallPolicy(Protocol):
    """What wraps each real LM call made in its context."""

    def execute(self, original: Callable[[Any, Any], Any], lm: Any, call: Any) -> Any:
        """Make the call (``original(lm, call)``, DSPy's) and return its result, or raise."""

    async def aexecute(self, original: Callable[[Any, Any], Awaitable[Any]], lm: Any, call: Any) -> Any:
        """The async form: ``await original(lm, call)``."""


_POLICY: contextvars.ContextVar[CallPolicy | None] = contextvars.ContextVar("dspy_turbo_call_policy", default=None)
_SPENT: contextvars.ContextVar[Spent | None] = contextvars.ContextVar("dspy_turbo_item_spent", default=None)


class Spent:
    """Tokens and dollars of the LM calls made in one context (one batch item)."""

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


def current() -> CallPolicy | None:
    """The policy of the current context, or ``None``."""
    return _POLICY.get()


def set_policy(policy: CallPolicy | None) -> contextvars.Token:
    """Set the policy for the rest of the current context (an asyncio task's own)."""
    return _POLICY.set(policy)


@contextlib.contextmanager
def active(policy: CallPolicy | None) -> Iterator[CallPolicy | None]:
    """``policy`` wraps the LM calls made inside the ``with`` block."""
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def tracking_spent() -> Spent:
    """Start counting what this context's LM calls use; returns the counter."""
    counter = Spent()
    _SPENT.set(counter)
    return counter


def spent() -> Spent | None:
    """The counter :func:`tracking_spent` started in this context, or ``None``."""
    return _SPENT.get()
