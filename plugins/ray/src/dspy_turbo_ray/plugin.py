"""Registers the ``ray`` batch strategy (Ray itself is imported only when a batch starts)."""

from __future__ import annotations

import sys

import dspy_turbo


@dspy_turbo.hookimpl
def dspy_turbo_batch_strategies():
    from .strategy import RayStrategy

    return [RayStrategy]


@dspy_turbo.hookimpl
def dspy_turbo_shutdown(turbo):
    pools = sys.modules.get("dspy_turbo_ray.pools")  # no batch ran: nothing to close, Ray never imported
    if pools is not None:
        pools.close_all(turbo)
