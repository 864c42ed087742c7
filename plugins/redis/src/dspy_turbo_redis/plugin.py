"""Entry point module: registers ``type: redis`` under ``cache.tiers``."""

from __future__ import annotations

import dspy_turbo


@dspy_turbo.hookimpl
def dspy_turbo_cache_backends():
    from .backend import RedisBackend  # redis-py is imported only when the plugin is used

    return [RedisBackend]
