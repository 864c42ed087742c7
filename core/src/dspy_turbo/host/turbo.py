"""``Turbo``: one assembled cache layer (tiers, keys, single-flight, events, stats)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pluggy

from ..cache import admission, controls
from ..cache.breaker import CircuitBreaker
from ..cache.codec import EncodeError, register_codec
from ..cache.entry import Entry
from ..cache.integrity import Signer
from ..cache.keys import KEY_VERSION, KeyBuilder
from ..cache.tiered import Tier, TieredCache
from ..coordination.coordinator import Coordinator, GuardedCoordinator, LocalCoordinator
from ..coordination.singleflight import SharedFlight, SingleFlight
from ..events import bus as ev
from ..events.bus import Event, EventBus, describe_error
from ..events.stats import StatsAggregator
from ..routing.costs import PriceTable
from .config import Config, ConfigError, ConfigIssue, parse
from .plugin_manager import Registry, build_registry, call_each, make_plugin_manager

logger = logging.getLogger("dspy_turbo")
# Tags that ``Turbo.tagged`` adds to every entry stored in its block (LM calls included).
_TAGS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("dspy_turbo_tags", default=())


class Turbo:
    """Build with :func:`dspy_turbo.load`. ``install()`` makes it DSPy's cache."""

    def __init__(self, config: Config, pm: pluggy.PluginManager, registry: Registry):
        self.config = config
        self.settings = config.settings
        self.pm = pm
        self.registry = registry
        self.namespace = self.settings.namespace
        self.keys = KeyBuilder(self.namespace, self.settings.key.include_endpoint, frozenset(self.settings.key.ignore_fields))
        self.key_prefix = self.keys.prefix
        """What every key of this namespace starts with (``plugin.host.Host.key_prefix``)."""
        self.singleflight = SingleFlight()
        self.singleflight_enabled = self.settings.cache.singleflight.enabled
        self.default_ttl = self.settings.cache.ttl
        try:  # record / replay (controls.py): DSPY_TURBO_MODE, when set, wins over cache.mode
            self.mode = controls.mode_of(getattr(self.settings.cache, "mode", "normal"))
        except ValueError as exc:
            raise ConfigError([ConfigIssue("cache.mode", str(exc))], config.source) from None
        self.base_control = controls.base_control(self.mode)
        self.replay = self.mode == "replay"
        self._recent: dict[str, tuple[dict, tuple[str, ...] | None]] = {}  # key -> request, for explain_key(key)
        register_codec(*self.settings.cache.safe_types)  # the allow-list is the process's (codec.SafeTypes)
        policy = self.settings.cache.admission  # refusal reason -> stored anyway? (admission.refusal_reason)
        self._admitted = {None: True, "error": policy.store_errors, "empty": policy.store_empty,
                          "truncated": policy.store_truncated}
        self.prices = PriceTable(self.settings.costs.prices)  # YAML overrides, then DSPy's bundled table
        for issue in config.warnings:
            logger.warning("%s: %s", config.source, issue)
        self._stats = StatsAggregator()
        self.bus = EventBus([("stats", self._stats)])
        self.sinks = []
        self.cache = self.coordinator = None
        self.features: dict[str, Any] = {}
        """What feature plugins published at start-up (``publish``), by name: ``semantic``, ``alerts``..."""
        try:
            queue_size = self.settings.metrics.queue_size
            for spec in config.sinks:
                sink = spec.cls.from_options(spec.options, self)  # e.g. a port in use raises
                self.sinks.append(sink)
                self.bus.add_background(f"{spec.path}:{spec.cls.name}", sink, queue_size)
            for impl in pm.hook.dspy_turbo_metric_event.get_hookimpls():
                self.bus.add_background(f"hook:{impl.plugin_name}", _event_hook(impl.function), queue_size)
            self._should_store = pm.hook.dspy_turbo_should_store
            self._has_store_hooks = bool(self._should_store.get_hookimpls())
            self.cache = TieredCache(self._build_tiers(config), self.bus, self.namespace)
            self.coordinator = self._find_coordinator()
            flight = self.settings.cache.singleflight
            self.shared_flight = SharedFlight(self.coordinator, flight.lease, flight.wait) if self.coordinator.shared else None
            self.integration = None  # set by install()
            self.closed = False
            self._selector = self._budget = None  # model routing, built on first use (router.py)
            self._routing_lock = threading.Lock()
            pm.hook.dspy_turbo_startup(turbo=self)  # the features build theirs first (dspy_turbo.features)
        except BaseException:  # a failed start (a port in use, a config error, a hook) leaves nothing open
            self._release_partial()
            raise

    def publish(self, name: str, value: Any) -> None:
        """Make a feature's object reachable as ``turbo.features[name]`` and ``turbo.<name>``
        (a plain attribute: the DSPy integration reads ``turbo.semantic`` on its lookup path).
        Called from a feature's ``dspy_turbo_startup``; publishing a name again replaces it.
        A name the Turbo itself uses (``cache``, ``stats``...) is refused."""
        if name not in self.features and (name in vars(self) or hasattr(type(self), name) or not name.isidentifier()):
            raise ValueError(f"cannot publish a feature as {name!r}: the Turbo has an attribute of that name")
        self.features[name] = value
        setattr(self, name, value)

    def _release_partial(self) -> None:
        published = [v for v in self.features.values() if callable(getattr(v, "close", None))]
        for part in (*published, self.cache, self.coordinator):
            if part is not None:
                try:
                    part.close()
                except Exception as exc:
                    logger.warning("closing after a failed start raised %s", describe_error(exc))
        self.bus.close(0)
        for sink in self.sinks:
            try:
                getattr(sink, "close", lambda: None)()
            except Exception as exc:
                logger.warning("closing a sink after a failed start raised %s", describe_error(exc))

    def _build_tiers(self, config: Config) -> list[Tier]:
        breaker = self.settings.cache.breaker
        secret = self.settings.cache.signing_key
        signer = Signer(secret.get_secret_value()) if secret is not None else None
        tiers = []
        for spec in config.tiers:
            name = spec.options.name or spec.cls.name
            backend = spec.cls.from_options(spec.options, self)
            backend.on_evict = _evict_reporter(self.bus, name, self.namespace)  # on the real backend, not a wrapper
            backend.on_corrupt = _corrupt_reporter(self.bus, name, self.namespace)
            backend.signer = signer  # used by the backends that store bytes (encode_entry, decode_entry)
            for impl in self.pm.hook.dspy_turbo_wrap_backend.get_hookimpls():
                wrapped = _call_impl(impl, backend=backend, turbo=self)
                if wrapped is not None:
                    backend = wrapped
            tiers.append(Tier(backend, CircuitBreaker(breaker.failures, breaker.cooldown), name,
                              spec.options.ttl, spec.options.timeout))
        return tiers

    def _find_coordinator(self) -> Coordinator:
        """The first tier that can coordinate processes (Redis) does; else this process alone."""
        for tier in self.cache.tiers:
            offer = getattr(tier.backend, "coordinator", None)
            coordinator = offer() if offer is not None else None
            if coordinator is not None:
                # Its own breaker: coordination calls (leases, log syncs) must not reset or trip the tier's reads
                breaker = tier.coordination_breaker
                return GuardedCoordinator(
                    coordinator, breaker.allow,
                    lambda exc, tier=tier: self.cache.failed(tier, "coordinate", exc, breaker=tier.coordination_breaker),
                    breaker.success)
        return LocalCoordinator()

    # -- requests ------------------------------------------------------------------------

    def key(self, request: dict[str, Any], ignored: Iterable[str] | None = None) -> str:
        return self.keys.key(request, ignored)

    def key_material(self, request: dict[str, Any], ignored: Iterable[str] | None = None) -> bytes:
        """The canonical bytes ``key(request)`` hashes (``plugin.host.Host.key_material``)."""
        return self.keys.dumps(request, ignored)

    def explain_key(self, request: dict[str, Any] | str | None = None,
                    ignored: Iterable[str] | None = None) -> dict[str, Any]:
        """What went into a key: fields, what was left out and why, the key.

        ``request``: a request dict; or a key (from ``last_key()``, a ``hit``/``miss`` event)
        of a request this process made recently (the last 256 LM calls and cached-function
        calls); or nothing: the last LM request of this thread or task. The last two explain
        the request as it was keyed (DSPy's own request, endpoint and ignored fields included),
        which a request rebuilt from ``lm.history`` is not.
        """
        if request is None or isinstance(request, str):
            request, ignored = self._recent_request(request)
        return self.keys.explain(request, tuple(ignored) if ignored else None)

    def remember(self, key: str, request: dict[str, Any], ignored: Iterable[str] | None) -> None:
        """Keep ``request`` (as keyed) for ``explain_key(key)``: the last 256, in this process."""
        recent = self._recent
        recent[key] = (request, ignored)
        if len(recent) > 256:
            try:
                del recent[next(iter(recent))]
            except (KeyError, RuntimeError, StopIteration):  # another thread got there first
                pass

    def _recent_request(self, key: str | None) -> tuple[dict[str, Any], Any]:
        if key is None:
            from ..integration.dspy_cache import last_keyed

            last = last_keyed(self)
            if last is None:
                raise ValueError("explain_key() explains the last LM request of this thread or task, and it made "
                                 "none through this Turbo yet; pass a request or a key")
            key = last
        found = self._recent.get(key)
        if found is None:
            raise ValueError(f"explain_key({key!r}): not a key this process made recently (it keeps the last 256); "
                             "pass the request instead")
        return found

    def last_key(self) -> str | None:
        """The key of the last LM request made through this Turbo in this thread or asyncio task
        (None before the first); explain it with ``explain_key(turbo.last_key())``."""
        from ..integration.dspy_cache import last_keyed

        return last_keyed(self)

    # -- cache controls (controls.py) --------------------------------------------------------

    def bypass(self) -> controls.Scope:
        """``with turbo.bypass():`` no read, no write: every call reaches the LM."""
        return controls.bypass()

    def refresh(self, ttl: float | str | None = None) -> controls.Scope:
        """``with turbo.refresh():`` no read; each new answer replaces the cached one."""
        return controls.refresh(ttl)

    def read_only(self) -> controls.Scope:
        """``with turbo.read_only():`` hits are served, nothing is written."""
        return controls.read_only()

    def caching(self, *, read: bool | None = None, write: bool | None = None,
                ttl: float | str | None = None) -> controls.Scope:
        """``with turbo.caching(ttl="1h"):`` any of read, write and ttl for the block."""
        return controls.caching(read=read, write=write, ttl=ttl)

    def control(self) -> controls.CacheControl | None:
        """What the running scope (over the mode) says, or None: read and write as configured."""
        return controls.effective(self.base_control)

    def lookup(self, key: str, count: bool = True, cache: TieredCache | None = None) -> Any:
        """The caller's own copy of the cached value, or None (``count``: see ``TieredCache.get``;
        ``cache``: some of the tiers only, see ``DSPyCache``). None without reading inside a
        scope that reads nothing (``bypass()``, ``refresh()``, record mode)."""
        if controls._overrides is not None or self.base_control is not None:  # a scope was ever entered, or a mode
            control = controls.effective(self.base_control)
            if control is not None and control.read is False:
                return None
        entry = (cache or self.cache).get(key, count)
        return None if entry is None else entry.copy_value()

    def store(self, key: str, value: Any, *, request: dict[str, Any] | None = None, model: str | None = None,
              ttl: float | None = None, tags: Iterable[str] = (), usage: dict[str, int] | None = None,
              cost: float | None = None, cache: TieredCache | None = None, level: str | None = None) -> bool:
        """Admit and write ``value`` through every tier (or those of ``cache``). Tier failures
        never raise; False when not stored (also inside a scope that writes nothing).
        ``level``: ``"item"`` for a batch item's whole result (its store events say so).

        ``ttl``: seconds or a duration, more than 0 (a ValueError otherwise); None: the
        running scope's ttl, else ``cache.ttl``. ``usage`` and ``cost``: what producing
        ``value`` took, when the value does not say itself (a batch item's LM calls); a
        later hit reports them as saved.
        """
        if ttl is not None:
            ttl = controls.call_ttl(ttl, "store(ttl=...)")  # 0 and less are refused
        control = controls.effective(self.base_control)
        if control is not None:
            if control.write is False:
                return False
            if ttl is None:
                ttl = control.ttl
        tags = (*tags, *_TAGS.get())
        reason = admission.refusal_reason(value)
        allowed = self._admitted.get(reason, False)
        try:
            found_usage, found_cost, model = admission.usage_and_cost(value, model or (request or {}).get("model"),
                                                                      self.prices)
            usage, cost = usage or found_usage, cost if cost is not None else found_cost
            entry = Entry.create(value, ttl=ttl if ttl is not None else self.default_ttl, usage=usage, cost=cost,
                                 model=model, tags=tags)
        except EncodeError as exc:  # a type not cached (named in the error), or nested too deep
            self.bus.emit(Event(ev.SKIP_STORE, reason=exc.reason, error=str(exc), key=key, namespace=self.namespace))
            return False
        except Exception as exc:  # never let bookkeeping break the user's call
            self.bus.emit(Event(ev.ERROR, error=describe_error(exc), reason="store", key=key, namespace=self.namespace,
                                extra={"component": "core"}))
            return False
        if self._has_store_hooks:
            try:
                verdict = self._should_store(request=request or {}, value=value, entry=entry, reason=reason, turbo=self)
            except Exception as exc:
                self.bus.emit(Event(ev.ERROR, error=describe_error(exc), reason="dspy_turbo_should_store", key=key,
                                    namespace=self.namespace, extra={"component": "hook"}))
                verdict = None
            if verdict is not None:
                allowed = bool(verdict)
                reason = None if allowed else "vetoed"
        if not allowed:
            self.bus.emit(Event(ev.SKIP_STORE, reason=reason, key=key, namespace=self.namespace))
            return False
        return (cache or self.cache).put(key, entry, level) > 0

    def report_lm_call(self, model: str | None, latency: float, usage: dict | None, cost: float | None,
                       error: BaseException | None = None) -> None:
        self.bus.emit(Event(ev.LM_CALL, model=model, latency=latency, tokens=_tokens(usage), cost=cost,
                            error=describe_error(error) if error else None, namespace=self.namespace,
                            extra=_token_split(usage)))

    def report_coalesced(self, key: str, model: str | None = None, usage: dict | None = None,
                         cost: float | None = None, *, lookup: bool = True) -> None:
        """A request served by another caller's call (single-flight): it saved that call's usage and cost.

        Without ``usage`` or ``cost``, the stored entry is read for them (``lookup=False``:
        a path that must not wait on a tier, such as a batch's event loop, skips that)."""
        if lookup and not usage and cost is None and key:
            # Served from the cache after another process's call (a read reports no usage): the
            # stored entry still knows what that call cost.
            entry = self.cache.get(key, count=False)
            if entry is not None:
                usage, cost, model = entry.usage, entry.cost, model or entry.model
        self.bus.emit(Event(ev.COALESCED, key=key, model=model, tokens=_tokens(usage), cost=cost, namespace=self.namespace))

    # -- DSPy ----------------------------------------------------------------------------

    def install(self) -> Turbo:
        """Make this Turbo ``dspy.cache`` for every managed LM path (again, if the program
        assigned another cache meanwhile); returns self."""
        from ..integration.dspy_cache import install

        install(self)
        return self

    def uninstall(self) -> None:
        """Give DSPy back the cache it had before ``install()`` (or, if the program called
        ``dspy.configure_cache`` meanwhile, the one that call asked for)."""
        from ..integration.dspy_cache import uninstall

        uninstall(self)

    def cached(self, fn=None, *, ttl: float | None = None, ignore: Iterable[str] = (), tags: Iterable[str] = (),
               key=None):
        """Cache any sync or async function through this Turbo's tiers (see ``dspy_turbo.cached``)."""
        from ..cache.cached_functions import cached

        return cached(fn, ttl=ttl, ignore=ignore, tags=tags, turbo=self, key=key)

    # -- model routing (routing.py, router.py, budget.py) -----------------------------------

    def router(self, **kwargs: Any):
        """A DSPy LM that picks a tier's model per call: ``dspy.configure(lm=turbo.router())``.

        ``lms={model: lm}`` supplies ready LMs, ``lm_factory(model, **lm_kwargs)`` builds them
        (default ``dspy.LM``); other keyword arguments are default request parameters.
        """
        from ..routing.router import RouterLM

        return RouterLM(self, **kwargs)

    def model_selector(self):
        """The ``routing:`` section's selector, built once; a ConfigError when there is none."""
        from .config import ConfigError, ConfigIssue

        with self._routing_lock:
            if self._selector is None:
                spec = self.config.routing
                if spec is None:
                    raise ConfigError([ConfigIssue("routing", "model routing needs a routing section, e.g. routing: "
                                                              "{type: complexity, tiers: [{name: small, model: "
                                                              "openai/gpt-4o-mini}, {name: large, model: openai/gpt-4o}]}")],
                                      self.config.source)
                self._selector = spec.cls.from_options(spec.options, self)
            return self._selector

    def routing_budget(self):
        """The routing budget shared by every router of this Turbo, or None."""
        from ..routing.budget import Budget

        settings = getattr(self.model_selector().options, "budget", None)
        with self._routing_lock:
            if self._budget is None and settings is not None:
                self._budget = Budget(settings.limit, settings.period, settings.on_exceeded)
            return self._budget

    # -- batching (see batching.py) --------------------------------------------------------

    def batch(self, program, examples, *, strategy: str | None = None, **options) -> list:
        """Run ``program`` on every example, cache-first; results in input order.

        ``strategy`` (``thread``, ``async``) and ``options`` (``max_concurrency``,
        ``return_exceptions``, ``max_errors``, ``timeout``, ``progress``, ``item_cache``,
        ``rate_limit``, ``retry``, ``window``) override the YAML ``batching`` section.
        """
        from . import batching

        return batching.batch(self, program, examples, strategy=strategy, **options)

    def batch_iter(self, program, examples, *, strategy: str | None = None, **options):
        """Like :meth:`batch`, yielding results in order as they are ready (bounded memory)."""
        from . import batching

        return batching.batch_iter(self, program, examples, strategy=strategy, **options)

    async def abatch(self, program, examples, *, strategy: str | None = None, **options) -> list:
        """The async form of :meth:`batch`; ``examples`` may also be an async iterable."""
        from . import batching

        return await batching.abatch(self, program, examples, strategy=strategy, **options)

    def abatch_iter(self, program, examples, *, strategy: str | None = None, **options):
        """The async form of :meth:`batch_iter` (an async generator)."""
        from . import batching

        return batching.abatch_iter(self, program, examples, strategy=strategy, **options)

    # -- management ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """This process's counts since start (or ``reset_stats()``): hits per tier, misses,
        hit rate, LM calls, stores, tokens and dollars, latency, tiers, and a block per feature.

        ``hits``, ``stores``, ``hits_total`` and ``hit_rate`` count LM calls and whole batch
        items together: ``batch_items`` (present after a batch used its item cache) has the
        item-level hits and stores among them; the rest are LM-call-level (one per request).
        """
        snap = self._stats.snapshot()
        snap["namespace"] = self.namespace
        snap["tiers"] = {t.name: {"type": t.backend.name, "breaker": t.breaker.state,
                                  "write_breaker": t.write_breaker.state, **_size(t.backend)}
                         for t in self.cache.tiers}
        if self.bus.sink_errors:
            snap["sink_errors"] = dict(self.bus.sink_errors)
        if self._budget is not None:
            snap["routing"]["budget"] = self._budget.status()
        # -- monitoring: event handoff
        dropped = self.bus.dropped()
        snap["dropped_events"] = sum(dropped.values())
        if snap["dropped_events"]:
            snap["dropped_events_by_sink"] = {name: n for name, n in dropped.items() if n}
        for plugin, blocks, exc in call_each(self.pm.hook.dspy_turbo_stats, turbo=self):  # the features' blocks
            if exc is not None:
                self._hook_failed("dspy_turbo_stats", plugin, exc)
                continue
            for name, block in (blocks or {}).items():
                if name in snap:
                    _warn_once(f"plugin {plugin!r} reports a stats block {name!r}, which is already taken; it is left out")
                else:
                    snap[name] = block
        return snap

    def _hook_failed(self, hook: str, plugin: str, exc: BaseException) -> None:
        """A feature hook that raised: an error event and a warning, never an exception."""
        logger.warning("plugin %r: %s raised %s", plugin, hook, describe_error(exc))
        self.bus.emit(Event(ev.ERROR, error=describe_error(exc), reason=hook, namespace=self.namespace,
                            extra={"component": plugin}))

    def _broadcast(self, hook: str, **kwargs: Any) -> None:
        for plugin, _, exc in call_each(getattr(self.pm.hook, hook), turbo=self, **kwargs):
            if exc is not None:
                self._hook_failed(hook, plugin, exc)

    # -- monitoring: event handoff, profiling, timings --------------------------------------

    def flush_events(self, timeout: float | None = 5.0) -> bool:
        """Wait until every metric sink and hook has handled the events emitted so far.

        Returns False if one is still busy after ``timeout`` seconds (it never waits longer).
        ``close()`` does this too, so a short-lived script loses no events.
        """
        return self.bus.flush(timeout)

    def profile(self, top: int = 15, sort: str = "cumulative"):
        """``with turbo.profile() as prof: ...`` then ``print(prof.table())``: cProfile's hot spots."""
        from ..events.profiling import Profile

        return Profile(self, top=top, sort=sort)

    def timed(self, name: str):
        """Time user code, as a decorator (sync or async) or a ``with`` block: a ``timed`` event each run."""
        from ..events.profiling import Timed

        return Timed(self, name)

    def reset_stats(self) -> None:
        self._stats.reset()
        self._broadcast("dspy_turbo_reset_stats")

    def clear(self, tier: str | None = None) -> dict[str, int]:
        """Remove this namespace's entries (from one tier, or all); returns counts per tier
        (and per feature holding data of its own: ``semantic``, the vectors dropped)."""
        removed = self.cache.clear(self.keys.prefix, tier)
        self._broadcast("dspy_turbo_clear", removed=removed, tier=tier)
        return removed

    @contextlib.contextmanager
    def tagged(self, *tags: str) -> Iterator[None]:
        """Tag every entry stored inside the block (LM calls and ``@cached`` functions), so
        ``invalidate(tag=...)`` can remove them later::

            with turbo.tagged("pricing-faq"):
                answer = program(question=q)
        """
        token = _TAGS.set((*_TAGS.get(), *tags))
        try:
            yield
        finally:
            _TAGS.reset(token)

    def invalidate(self, *, namespace: str | None = None, tag: str | None = None,
                   tier: str | None = None) -> dict[str, int]:
        """Remove entries from every tier (or one ``tier``): a whole namespace (default: this
        one), or only the entries tagged ``tag`` in it. Returns how many each tier removed
        here; a tier that fails is skipped with an error event. With a redis tier, the other
        processes of this namespace drop the same entries from their memory tiers before
        their next read (within ``cache.sync_interval``)."""
        names = [t.name for t in self.cache.tiers]
        if tier is not None and tier not in names:
            raise ValueError(f"no tier named {tier!r}; tiers: {', '.join(names)}")
        if namespace is not None and not namespace.strip():
            raise ValueError("namespace must not be empty (it would match every key)")
        # Entries only (<ns>:v1:...): a namespace's leases, rate buckets and index log on a
        # shared tier belong to running processes and stay.
        prefix = f"{namespace}:v{KEY_VERSION}:" if namespace else self.keys.prefix
        if tag is not None and not tag:
            raise ValueError("tag must not be empty")
        if tag is not None:
            removed = self.cache.delete_tagged(prefix, tag, tier)
        else:
            removed = self.cache.clear(prefix, tier)
        self._broadcast("dspy_turbo_invalidate", prefix=prefix, namespace=namespace, tag=tag, tier=tier, removed=removed)
        return removed

    def export(self, path, *, tier=None, progress=None):
        """Write this namespace's entries (of every tier, or the ``tier`` named) to ``path`` as
        JSON lines (``.gz``: compressed; never pickle), streaming; returns a
        :class:`dspy_turbo.cache.transfer.Report`. See :mod:`dspy_turbo.cache.transfer` for the format."""
        from ..cache import transfer

        return transfer.export(self, path, tier=tier, progress=progress)

    def import_(self, path, *, tier=None, progress=None):
        """Read a file written by :meth:`export` (or ``dspy-turbo export``) into the tiers (every
        tier, or the ``tier`` named), keys moved into this namespace; returns a ``Report``."""
        from ..cache import transfer

        return transfer.import_(self, path, tier=tier, progress=progress)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.integration is not None:
            self.uninstall()
        self._broadcast("dspy_turbo_shutdown")  # the features close theirs last (trylast)
        self.cache.close()
        self.coordinator.close()
        if not self.bus.close(self.settings.metrics.flush_timeout):
            logger.warning("metric sinks still busy after %gs at close; their pending events are lost",
                           self.settings.metrics.flush_timeout)
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close:
                try:
                    close()
                except Exception as exc:
                    logger.warning("metric sink close raised %s", describe_error(exc))

    def __enter__(self) -> Turbo:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        tiers = " -> ".join(t.name for t in self.cache.tiers)
        return f"<Turbo namespace={self.namespace!r} tiers={tiers} installed={self.integration is not None}>"


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning("%s", message)


def _tokens(usage: dict | None) -> int:
    if not usage:
        return 0
    return int(usage.get("total_tokens") or (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0))


def _size(backend) -> dict[str, int]:
    """A tier's entries and bytes when it can tell; an unavailable tier tells nothing."""
    if not hasattr(type(backend), "bytes_used"):
        return {}
    try:
        return {"entries": len(backend), "bytes": backend.bytes_used}
    except Exception:
        return {}


def _token_split(usage: dict | None) -> dict | None:
    """Input and output tokens of one LM call, for sinks that report them apart (OTel GenAI)."""
    if not usage:
        return None
    return {"input_tokens": int(usage.get("prompt_tokens") or 0), "output_tokens": int(usage.get("completion_tokens") or 0)}


def _call_impl(impl, **kwargs):
    """Call one hook implementation with the arguments it names (pluggy's calling convention)."""
    return impl.function(*[kwargs[name] for name in impl.argnames])


def _event_hook(function):
    return lambda event: function(event=event)


def _evict_reporter(bus: EventBus, tier: str, namespace: str):
    def report(key: str) -> None:
        bus.emit(Event(ev.EVICT, tier=tier, key=key, namespace=namespace))
    return report


def _corrupt_reporter(bus: EventBus, tier: str, namespace: str):
    def report(key: str, error: BaseException) -> None:
        bus.emit(Event(ev.ERROR, tier=tier, key=key, reason="corrupt", error=describe_error(error), namespace=namespace))
    return report


def load(source: str | os.PathLike | dict | None = None, *, plugins: Iterable[Any] = (), entry_points: bool = True) -> Turbo:
    """Assemble a Turbo from a YAML file, a dict, or (``None``) the embedded default.

    ``plugins`` registers extra plugin objects (modules or instances with hook
    implementations) after the installed ones; handy in tests and for in-app plugins.
    Raises ``ConfigError`` (every problem with its YAML path) or ``PluginError``.
    """
    pm = make_plugin_manager(plugins, entry_points=entry_points)
    registry = build_registry(pm)
    config = parse(source, registry)
    return Turbo(config, pm, registry)

