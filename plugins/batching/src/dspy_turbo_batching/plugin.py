"""Registers the ``thread``, ``async`` and ``process`` batch strategies and the batch runner (the machinery)."""

from __future__ import annotations

import sys

import dspy_turbo


@dspy_turbo.hookimpl
def dspy_turbo_batch_strategies():
    from .asynchronous import AsyncStrategy
    from .process import ProcessStrategy
    from .thread import ThreadStrategy

    return [ThreadStrategy, AsyncStrategy, ProcessStrategy]


@dspy_turbo.hookimpl
def dspy_turbo_batch_runner(host):
    from .runner import BatchRunner

    return BatchRunner(host)


@dspy_turbo.hookimpl
def dspy_turbo_shutdown(turbo):
    pools = sys.modules.get("dspy_turbo_batching.processes")  # no process batch ran: no worker to stop
    if pools is not None:
        pools.close_all(turbo)
