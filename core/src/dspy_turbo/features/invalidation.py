"""The invalidation feed as a feature: other processes' ``invalidate()`` reaching this
process's memory tier (``dspy_turbo.coordination.invalidation``), and its ``invalidations`` block of ``stats()``.

Built at start-up when the coordinator keeps logs (a redis tier) and a tier is in-process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..coordination.invalidation import InvalidationFeed
from ..coordination.shared_log import supports_logs
from ..plugin.hookspecs import hookimpl

if TYPE_CHECKING:
    from ..host.turbo import Turbo


@hookimpl(tryfirst=True)
def dspy_turbo_startup(turbo: Turbo) -> None:
    feed = None
    if supports_logs(turbo.coordinator) and any(t.backend_in_process for t in turbo.cache.tiers):
        feed = InvalidationFeed(turbo.coordinator, turbo.cache, turbo.settings.cache.sync_interval)
        turbo.cache.before_read = feed.sync
    turbo.publish("invalidations", feed)


@hookimpl
def dspy_turbo_stats(turbo: Turbo) -> dict[str, Any] | None:
    feed = turbo.features.get("invalidations")
    return None if feed is None else {"invalidations": feed.snapshot()}


@hookimpl
def dspy_turbo_invalidate(turbo: Turbo, prefix: str, namespace: str | None, tag: str | None, tier: str | None) -> None:
    feed = turbo.features.get("invalidations")
    if feed is not None and namespace in (None, turbo.namespace):
        # Called after the shared tiers are cleared: a process dropping its copy now cannot
        # read the stale entry back from them.
        feed.published_invalidation(prefix, tag, tier)
