"""What a plugin receives from the host: the :class:`Host` protocol and its parts.

A component gets the parts of the assembled cache layer it may use, not the whole
``Turbo``: ``from_options(options, host)`` receives a :class:`Host`. A feature's lifecycle
hooks (``dspy_turbo_startup(turbo)``, ``dspy_turbo_stats``, ``dspy_turbo_clear``,
``dspy_turbo_invalidate``, ``dspy_turbo_shutdown``...) receive a :class:`FeatureHost`:
the same, plus the configuration and the place to publish what the feature builds.
``dspy_turbo.Turbo`` satisfies both. A plugin reads nothing else of it: what is not
declared here may change between releases (a test of this repository fails when one of
its plugins reads an undeclared name).

:class:`Host` (for a component):

- ``namespace``, ``key_prefix``, ``key(request)``, ``key_material(request)``: the cache keys
  of this namespace (``<namespace>:v<N>:<hash>``), for a component that stores entries of
  its own or derives an identifier from a request;
- ``default_ttl``: how long an entry lives when nothing else says (``cache.ttl``);
- ``cache``: the tiers (:class:`Tiers`), read in order with promotion, breakers and events;
- ``store(key, value)``: write a value of the component's own through the tiers, admitted
  as a response is;
- ``bus``: the event bus (:class:`EventBus`), to ``emit`` events of the kinds in
  :mod:`dspy_turbo.plugin.events` or of the plugin's own, and to follow them (``add``);
- ``coordinator``: the :class:`~dspy_turbo.plugin.coordination.Coordinator` (leases,
  buckets, shared logs; shared across processes when a tier offers one).

The host builds components in order: metric sinks first, then the tiers (a tier's
``from_options`` sees ``cache`` and ``coordinator`` still ``None``), then the coordinator,
the model selector and the features' components (``dspy_turbo_startup``); by then
everything is set. A component built outside a host (``dspy-turbo calibrate``, the
conformance suites of ``dspy_turbo.testing``) receives ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .backend import Entry
    from .coordination import Coordinator
    from .events import Event

__all__ = ["EventBus", "FeatureHost", "Host", "HostConfig", "Tiers"]


@runtime_checkable
class EventBus(Protocol):
    """Where events go: ``turbo.stats()``, every metric sink, every ``dspy_turbo_metric_event`` hook."""

    def emit(self, event: Event) -> None:
        """Hand ``event`` to every handler; never raises, never blocks on a sink."""

    def add(self, name: str, handler: Callable[[Event], Any]) -> None:
        """Call ``handler(event)`` with every event, on the emitting thread, as it is emitted.

        For a component that must act in step with the cache (the semantic cache drops a
        vector when its entry is evicted from the last tier). It runs on the request path:
        keep it to a few comparisons. A handler that raises is counted and skipped, never
        raised into the program. To *report* events elsewhere, write a metric sink
        (``dspy_turbo_metric_sinks``) or a ``dspy_turbo_metric_event`` hook instead: those
        run on their own threads."""

    def remove(self, name: str) -> None:
        """Stop calling the handler added as ``name`` (on the component's ``close``)."""

    def __bool__(self) -> bool:
        """False when nothing listens: a caller may skip building an event it would emit."""

    def dropped(self) -> dict[str, int]:
        """Events each background handler (sink, hook) lost because its queue was full, by name."""


@runtime_checkable
class Tiers(Protocol):
    """The tiered cache: every configured tier behind one get/put."""

    tiers: list[Any]
    """The tiers in read order; each has ``name``, ``backend`` and ``ttl``."""

    def get(self, key: str, count: bool = True, count_miss: bool = True,
            check: Callable[[Entry], str | None] | None = None) -> Entry | None:
        """The entry under ``key`` from the first tier that has it (promoted upward), or None.

        ``count=False`` emits no hit or miss event (a re-read of something already counted);
        ``count_miss=False`` emits the hit but leaves the miss to the caller (a component that
        may still serve the request another way: the semantic cache). ``check(entry)``: why
        the entry cannot serve this caller (a value of the wrong shape), or None; an entry it
        refuses is corrupt: removed from every tier, an error event, and the read a miss."""

    def get_many(self, keys: list[str]) -> dict[str, Entry]:
        """The entries found for ``keys`` (one bulk read per tier)."""

    def put(self, key: str, entry: Entry) -> int:
        """Write ``entry`` through every tier (each with its own TTL); how many tiers took it.
        No admission and no store hooks: ``Host.store`` is the write a response gets."""

    def delete(self, key: str) -> None:
        """Remove ``key`` from every tier."""


@runtime_checkable
class Host(Protocol):
    """The host interface a component receives (``dspy_turbo.Turbo`` is one)."""

    namespace: str
    """The key prefix of this cache (``namespace:`` in the YAML)."""
    key_prefix: str
    """What every key of this namespace starts with (``<namespace>:v<N>:``; ``N`` changes
    when the key format does). Mix it into an identifier derived with ``key_material`` so
    that it is per namespace and key format too."""
    default_ttl: float | None
    """Seconds an entry lives when neither the call nor its tier says otherwise (``cache.ttl``;
    None: no expiry). For a component that keeps its own record beside an entry (the
    semantic cache's vector) and must let it expire with the entry."""
    cache: Tiers
    bus: EventBus
    coordinator: Coordinator

    def key(self, request: dict[str, Any], ignored: Iterable[str] | None = None) -> str:
        """The cache key of ``request`` (a dict of JSON-able values) in this namespace;
        ``ignored``: top-level fields left out of the key."""

    def key_material(self, request: dict[str, Any], ignored: Iterable[str] | None = None) -> bytes:
        """The canonical bytes ``key(request)`` hashes (sorted JSON of the fields that key it,
        with the host's ``key`` settings applied). For a component that derives an identifier
        of its own from a request, e.g. the semantic cache's scope: the material of the
        request with the embedded fields masked, hashed with ``key_prefix``. Raises a
        ``TypeError`` naming the value that cannot be keyed, as ``key`` does."""

    def store(self, key: str, value: Any, *, request: dict[str, Any] | None = None, model: str | None = None,
              ttl: float | None = None, tags: Iterable[str] = ()) -> bool:
        """Write ``value`` under ``key`` through every tier as a response is written: admission
        (no errors, no empty output), ``dspy_turbo_should_store`` hooks, the running scope
        (``bypass()``, ``read_only()``, ``tagged()``), store events. False when it was not
        stored; never raises for a tier that fails. ``ttl``: seconds (None: ``default_ttl``);
        ``model``: whose work the value is (its cost is reported as saved on a hit).
        Use it for a value a component computes and wants back later (the semantic cache's
        judge verdicts); ``cache.put`` writes an ``Entry`` as is, without any of that."""


@runtime_checkable
class HostConfig(Protocol):
    """The assembled configuration (``FeatureHost.config``), for a feature at start-up."""

    source: str
    """Where it was read from (a path, or the embedded default): the ``source`` of a
    ``dspy_turbo.ConfigError`` the feature raises about its section."""
    settings: Any
    """The whole validated document (a pydantic model); a feature's own part is easier
    read with ``section(path)``."""
    tiers: tuple[Any, ...]
    """The ``cache.tiers`` blocks, resolved (each has ``kind``, ``cls``, ``options``, ``path``)."""
    routing: Any
    """The ``routing`` block, resolved as a tier's, or None."""

    def section(self, path: str) -> Any:
        """The validated value of a section a plugin declared (``dspy_turbo_config_sections``),
        e.g. ``section("cache.semantic")``; None when it is not configured or not declared."""

    def component(self, path: str) -> Any:
        """The resolved component block at ``path`` inside a section (``"cache.semantic.index"``):
        ``kind``, ``cls``, ``options``, ``path``; build it with ``cls.from_options(options, host)``.
        None when not configured."""


@runtime_checkable
class FeatureHost(Host, Protocol):
    """What a feature's lifecycle hooks receive as ``turbo`` (``dspy_turbo.Turbo`` is one):
    the :class:`Host`, plus the configuration and the place to publish what it builds."""

    config: HostConfig
    features: dict[str, Any]
    """What features published (``publish``), by name: a hook finds its own object here."""

    def publish(self, name: str, value: Any) -> None:
        """Make a feature's object ``features[name]`` (and ``turbo.<name>``, read by the host's
        own code such as the DSPy integration's ``turbo.semantic``). Called from
        ``dspy_turbo_startup``; a name the Turbo already uses is refused (``ValueError``).
        An object with ``close()`` is closed if the start fails after it was published."""

    def stats(self) -> dict[str, Any]:
        """The snapshot ``turbo.stats()`` returns (every feature's block included)."""

    def close(self) -> None:
        """Close the whole Turbo (a CLI command that built one for itself)."""
