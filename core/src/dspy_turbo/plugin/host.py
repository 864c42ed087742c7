"""What a component receives from the host: ``from_options(options, host)``.

A component gets the parts of the assembled cache layer it may use, not the whole
``Turbo``: the :class:`Host` protocol below. ``dspy_turbo.Turbo`` satisfies it.

- ``namespace`` and ``key(request)``: the cache keys of this namespace
  (``<namespace>:v<N>:<hash>``), for a component that stores entries of its own;
- ``cache``: the tiers (:class:`Tiers`), read in order with promotion, breakers and events;
- ``bus``: the event bus (:class:`EventBus`), to ``emit`` events of the kinds in
  :mod:`dspy_turbo.plugin.events` or of the plugin's own;
- ``coordinator``: the :class:`~dspy_turbo.plugin.coordination.Coordinator` (leases,
  buckets, shared logs; shared across processes when a tier offers one).

The host builds components in order: metric sinks first, then the tiers (a tier's
``from_options`` sees ``cache`` and ``coordinator`` still ``None``), then the coordinator,
the model selector and the semantic components; by ``dspy_turbo_startup`` everything is
set. A component built outside a host (``dspy-turbo calibrate``) receives ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..cache.entry import Entry
    from ..coordination.coordinator import Coordinator
    from ..events.bus import Event

__all__ = ["EventBus", "Host", "Tiers"]


@runtime_checkable
class EventBus(Protocol):
    """Where events go: ``turbo.stats()``, every metric sink, every ``dspy_turbo_metric_event`` hook."""

    def emit(self, event: Event) -> None:
        """Hand ``event`` to every handler; never raises, never blocks on a sink."""

    def dropped(self) -> dict[str, int]:
        """Events each background handler (sink, hook) lost because its queue was full, by name."""


@runtime_checkable
class Tiers(Protocol):
    """The tiered cache: every configured tier behind one get/put."""

    tiers: list[Any]
    """The tiers in read order; each has ``name``, ``backend`` and ``ttl``."""

    def get(self, key: str, count: bool = True) -> Entry | None:
        """The entry under ``key`` from the first tier that has it (promoted upward), or None.
        ``count=False`` emits no hit or miss event."""

    def get_many(self, keys: list[str]) -> dict[str, Entry]:
        """The entries found for ``keys`` (one bulk read per tier)."""

    def put(self, key: str, entry: Entry) -> int:
        """Write ``entry`` through every tier (each with its own TTL); how many tiers took it."""

    def delete(self, key: str) -> None:
        """Remove ``key`` from every tier."""


@runtime_checkable
class Host(Protocol):
    """The host interface a component receives (``dspy_turbo.Turbo`` is one)."""

    namespace: str
    """The key prefix of this cache (``namespace:`` in the YAML)."""
    cache: Tiers
    bus: EventBus
    coordinator: Coordinator

    def key(self, request: dict[str, Any], ignored: Iterable[str] | None = None) -> str:
        """The cache key of ``request`` (a dict of JSON-able values) in this namespace;
        ``ignored``: top-level fields left out of the key."""
