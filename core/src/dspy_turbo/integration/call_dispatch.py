"""Each real LM call goes through the call policy of its context (``dspy_turbo.plugin.calls``).

``dspy_cache`` passes every real LM call (the miss path, after the cache and
single-flight) through :func:`execute` / :func:`aexecute`. With a policy set (a batch's
rate limit and retries, from dspy-turbo-batching) the policy makes the call, and what a
successful call spent is counted for the item that made it (``calls.tracking_spent``);
with none, the call goes straight to DSPy. Cache hits never get here.

The rate-limit-and-retry policy itself moved to ``dspy_turbo_batching.policy``; its old
names here keep working for one release (with a ``DeprecationWarning``).
"""

from __future__ import annotations

from typing import Any

from .._moved import moved, moved_to_plugin
from ..plugin import calls
from ..plugin.calls import Spent, tracking_spent  # noqa: F401 (their old path)
from ..routing.costs import usage_cost

_current = calls._POLICY.get


def _count(lm: Any, result: Any) -> None:
    spent = calls.spent()
    if spent is not None:
        spent.add(*usage_cost(lm, result))


def execute(original, lm: Any, call: Any) -> Any:
    policy = _current()
    if policy is None:
        return original(lm, call)
    result = policy.execute(original, lm, call)
    _count(lm, result)
    return result


async def aexecute(original, lm: Any, call: Any) -> Any:
    policy = _current()
    if policy is None:
        return await original(lm, call)
    result = await policy.aexecute(original, lm, call)
    _count(lm, result)
    return result


def current() -> Any:
    return _current()


moved(__name__, {"Spent": "dspy_turbo.plugin.calls", "tracking_spent": "dspy_turbo.plugin.calls"})
__getattr__ = moved_to_plugin(__name__, "dspy_turbo_batching.policy", "dspy-turbo-batching",
                              ("CallPolicy", "RETRY", "RATE_LIMITED"))
