"""Timings of user code as a feature: ``turbo.timings``, the ``timed`` block of ``stats()``.

``turbo.timed(name)`` and ``turbo.profile()`` (``dspy_turbo.events.profiling``) record into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..events.profiling import Timings
from ..plugin.hookspecs import hookimpl

if TYPE_CHECKING:
    from ..host.turbo import Turbo


@hookimpl(tryfirst=True)
def dspy_turbo_startup(turbo: Turbo) -> None:
    turbo.publish("timings", Timings())


@hookimpl
def dspy_turbo_stats(turbo: Turbo) -> dict[str, Any] | None:
    timings = turbo.features.get("timings")
    return {"timed": timings.snapshot()} if timings else None  # nothing timed yet: no block


@hookimpl
def dspy_turbo_reset_stats(turbo: Turbo) -> None:
    turbo.publish("timings", Timings())
