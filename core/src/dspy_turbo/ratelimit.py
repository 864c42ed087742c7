"""Moved: the rate limiter is batch machinery, in dspy-turbo-batching (``dspy_turbo_batching.ratelimit``);
its settings are the SDK's (``dspy_turbo.plugin.batch``). The old names warn for one release."""

from __future__ import annotations

from ._moved import moved, moved_to_plugin
from .plugin.batch import Limit, RateLimitSettings  # noqa: F401 (their old path)

moved(__name__, {"Limit": "dspy_turbo.plugin.batch", "RateLimitSettings": "dspy_turbo.plugin.batch"})
__getattr__ = moved_to_plugin(__name__, "dspy_turbo_batching.ratelimit", "dspy-turbo-batching", ("RateLimiter",))
