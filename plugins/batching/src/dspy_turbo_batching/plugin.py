"""Registers the ``thread`` and ``async`` batch strategies."""

from __future__ import annotations

import dspy_turbo


@dspy_turbo.hookimpl
def dspy_turbo_batch_strategies():
    from .asynchronous import AsyncStrategy
    from .thread import ThreadStrategy

    return [ThreadStrategy, AsyncStrategy]
