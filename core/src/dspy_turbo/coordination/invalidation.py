"""Invalidation that reaches the in-process tiers of every process.

``turbo.invalidate`` removes entries from the shared tiers (Redis, a shared disk) for
everyone, but each process's memory tier is its own: without this, another worker would
go on serving an invalidated answer from memory until its TTL. With a coordinator that
keeps logs (a redis tier), each invalidation is appended to the namespace's
``invalidate`` log, and every process applies what the others appended to its own
in-process tiers before a cache read, at most every ``interval`` seconds. An invalidated
answer is then served elsewhere for at most ``interval`` plus one read.

A process starting up skips what the log already holds (its memory tier is empty).
Records are JSON, never pickles; a damaged record is skipped and counted. When the log
cannot be reached, reads go on and memory tiers keep what they have: a stale answer at
worst for the tier's TTL, as without a shared tier, never an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .coordinator import Coordinator
from .shared_log import SharedLog

if TYPE_CHECKING:
    from ..cache.tiered import TieredCache


class InvalidationFeed(SharedLog):
    def __init__(self, coordinator: Coordinator, cache: TieredCache, interval: float = 0.1):
        super().__init__(coordinator, "invalidate", interval, from_start=False)
        self.cache = cache
        self.sync(force=True)

    def published_invalidation(self, prefix: str, tag: str | None, tier: str | None) -> None:
        """Tell the other processes to drop what ``prefix`` (and ``tag``) covers from their
        in-process tiers (only the tier named ``tier``, when given)."""
        if any(t.backend_in_process for t in self.cache.tiers if tier is None or t.name == tier):
            self.publish({"p": prefix, "g": tag, "t": tier})
        # else no in-process tier is affected: the shared tiers were cleared for everyone

    def apply(self, op: dict[str, Any]) -> None:
        prefix, tag, tier = op["p"], op.get("g"), op.get("t")
        if type(prefix) is not str or not prefix or (tag is not None and type(tag) is not str) \
                or (tier is not None and type(tier) is not str):
            raise ValueError("fields of the wrong type")
        for t in self.cache.tiers:
            if t.backend_in_process and (tier is None or t.name == tier):
                try:
                    t.backend.delete_tagged(prefix, tag) if tag is not None else t.backend.clear(prefix)
                except Exception as exc:
                    self.cache.failed(t, "invalidate", exc)
