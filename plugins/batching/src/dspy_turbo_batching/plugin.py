"""Registers the ``thread`` and ``async`` batch strategies and the batch runner (the machinery)."""

from __future__ import annotations

import dspy_turbo


@dspy_turbo.hookimpl
def dspy_turbo_batch_strategies():
    from .asynchronous import AsyncStrategy
    from .thread import ThreadStrategy

    return [ThreadStrategy, AsyncStrategy]


@dspy_turbo.hookimpl
def dspy_turbo_batch_runner(host):
    from .runner import BatchRunner

    return BatchRunner(host)
