"""Every hook a dspy-turbo plugin can implement. This file is the plugin author's reference.

A plugin is a module (or object) with functions named after these specs and decorated
with ``dspy_turbo.hookimpl`` (also ``dspy_turbo.plugin.hookimpl``: the SDK, ``dspy_turbo.plugin``,
holds everything a plugin imports); it is found through the ``dspy_turbo`` entry-point group::

    [project.entry-points.dspy_turbo]
    myname = "my_package.plugin"

A misspelt ``dspy_turbo_*`` function is an error at start-up (``check_pending``), not a
hook that silently never runs. Arguments may be omitted from an implementation (pluggy
passes only the ones it names), so new arguments can be added here without breaking
existing plugins.

There are two kinds of hook:

**Registration hooks** (one per area) return component classes: subclasses of
:class:`dspy_turbo.plugin.components.Component` with a short ``name`` (the YAML ``type:``) and a
pydantic ``Options`` model. The host calls every implementation and merges the results;
two plugins registering the same name in one area is a start-up error naming both.
The core's own components (``memory``) register through the same hooks.

**Policy and observation hooks** run around the components: choose a model, veto or
force a store, wrap a backend, receive metric events, start up and shut down. Hot paths
(a cache read) never go through pluggy; policy hooks run on the miss path only.

**Feature hooks** let a plugin be a feature of the Turbo, as the core's own are (the
semantic cache, alert rules, timings, the cross-process invalidation feed: the modules of
``dspy_turbo.features``, registered before any entry point like pytest's
``default_plugins``): its config section (``dspy_turbo_config_sections``), its objects
built at start-up and published on the Turbo (``dspy_turbo_startup``, ``turbo.publish``),
its block of ``turbo.stats()``, and its part of ``reset_stats()``, ``clear()``,
``invalidate()`` and ``close()``. ``Turbo`` calls these hooks and never names a feature.
An implementation of ``dspy_turbo_stats``, ``dspy_turbo_reset_stats``, ``dspy_turbo_clear``,
``dspy_turbo_invalidate`` or ``dspy_turbo_shutdown`` that raises is reported (an ``error``
event with ``reason`` the hook's name and ``extra["component"]`` the plugin's, and a
warning in the ``dspy_turbo`` log) and the others still run: the program never sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ..cache.backend import CacheBackend
    from ..cache.entry import Entry
    from ..events.bus import Event
    from ..host.components import Component
    from ..host.turbo import Turbo
    from .batch import BatchHost, BatchRunner
    from .sections import ConfigSection

PROJECT = "dspy_turbo"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- registration hooks (results: every implementation's list, concatenated) -------------------


@hookspec
def dspy_turbo_cache_backends() -> list[type[CacheBackend]]:
    """Cache backend classes (tiers) this plugin provides, e.g. ``[RedisBackend]``.

    Called once when a Turbo is assembled. Each class subclasses
    :class:`dspy_turbo.plugin.backend.CacheBackend` and must pass
    ``dspy_turbo.testing.CacheBackendSuite``. Results of all implementations are merged; a duplicate
    ``name`` is a start-up error naming both plugins.
    """


@hookspec
def dspy_turbo_similarity_search() -> list[type[Component]]:
    """Similarity-search components: vector indexes (``kind = "similarity_index"``) and
    embedders (``kind = "embedder"``) for the semantic cache.

    Called once at assembly; results are merged as for ``dspy_turbo_cache_backends``.
    Names are unique per kind (an index and an embedder may share a name).
    What each kind must provide is in :mod:`dspy_turbo.plugin.similarity` (the ``SimilarityIndex``
    and ``Embedder`` protocols; ``SimilarityIndexSuite`` and ``EmbedderSuite`` check them);
    ``from_options`` raises :class:`dspy_turbo.plugin.components.ComponentUnavailable` when a
    package or model it needs is missing, which the host reports as a config error at the
    component's YAML path.
    """


@hookspec
def dspy_turbo_batch_strategies() -> list[type[Component]]:
    """Batch strategy classes (``kind = "batch_strategy"``), chosen by ``batching: {type: ...}``
    or per call (``turbo.batch(..., strategy="async")``).

    Each class subclasses :class:`dspy_turbo.plugin.batch.BatchStrategy` (``BatchStrategySuite``
    checks it): its ``runner(max_concurrency)`` returns a
    :class:`dspy_turbo.plugin.batch.Runner` whose ``async run(item)`` runs one item
    (``item.call()`` on a thread or ``await item.acall()``). The core does everything else
    (bulk cache lookup, de-duplication, order, errors, timeouts, rate limits, retries,
    progress, events). Called once at assembly; results are merged; duplicate names are an error.
    """


@hookspec
def dspy_turbo_model_selectors() -> list[type[Component]]:
    """Model selector classes (``kind = "model_selector"``), chosen by ``routing: {type: ...}``.

    Each subclasses :class:`dspy_turbo.plugin.selector.ModelSelector` (``ModelSelectorSuite``
    checks it). Called once at assembly; results are merged; duplicate names are an error.
    """


@hookspec
def dspy_turbo_metric_sinks() -> list[type[Component]]:
    """Metric sink classes (``kind = "metric_sink"``), listed under ``metrics: {sinks: [...]}``.

    Each subclasses :class:`dspy_turbo.plugin.sink.MetricSink` (``MetricSinkSuite`` checks it);
    an instance is called with every :class:`~dspy_turbo.plugin.events.Event` (its
    ``__call__``; the kinds and their fields: ``dspy_turbo.plugin.events.EVENTS``).
    Called once at assembly; results are merged; duplicate names are an error.

    Each sink runs on its own background thread fed by a bounded queue
    (``metrics.queue_size``, default 10,000 events): the program's thread only enqueues.
    A sink that blocks or raises never slows or breaks the program; when its queue is
    full, events are dropped and counted (``turbo.stats()["dropped_events"]``). Optional
    methods a sink may have: ``handle_batch(events)`` (called instead of ``__call__``
    with the events that piled up, at most 1024; the queue is drained every 50 ms),
    ``flush()`` (called when ``turbo.flush_events()`` reaches it), ``tick()`` (about once
    a second, also without traffic), ``close()`` (from ``turbo.close()``, after its
    pending events were handled or the flush timed out). A sink class with
    ``caller_context = True`` (a tracer: its spans' parent is the caller's current span)
    handles each event inside a copy of the ``contextvars`` context it was emitted in, still
    on its own thread, one event at a time.
    """


@hookspec
def dspy_turbo_config_sections() -> list[ConfigSection]:
    """The parts of the YAML document this plugin owns: a list of
    :class:`dspy_turbo.plugin.sections.ConfigSection` (a path such as ``"sqlite_example"`` or
    ``"cache.semantic"``, its pydantic model, its default, the keys that hold component blocks).

    Called once when a Turbo is assembled (and by ``dspy-turbo schema``), before the file is
    read. The host adds every section to the document's model: it is validated with the
    rest of the file (every problem with its YAML path, the closest key suggested), its
    component blocks are resolved and their secrets masked, and it appears in the JSON
    schema and the config reference. A key that no loaded plugin declares stays an unknown
    key. Results of all implementations are merged; two plugins declaring the same path, or
    a path the core already has, is a start-up error (``PluginError``) naming them; so is an
    implementation that raises. The validated value: ``turbo.settings.<path>`` or
    ``turbo.config.section(path)``.
    """


# -- policy hooks ------------------------------------------------------------------------------


@hookspec(firstresult=True)
def dspy_turbo_select_model(request: dict[str, Any], models: list[str], turbo: Turbo) -> str | None:
    """Choose the model for one request, before any cache lookup.

    Called by ``turbo.router()`` (``router.py``) on every call, after the budget check and an
    explicit ``tier=`` argument, before the configured model selector. ``request`` is the LM
    request as the router received it: ``model`` (``"dspy-turbo/router"``), ``messages``
    (OpenAI-style dicts; DSPy's adapters put the signature in the system message and the
    inputs in the last user message) and the call's parameters; ``models`` are the tier
    models from ``routing.tiers``, cheapest first. Return a model name (usually one of
    ``models``; another is built with the router's ``lm_factory``), or ``None`` to leave the
    decision to the next implementation and finally to the configured model selector.
    **First non-None result wins.** An implementation that raises ends the hook call: it is
    reported as an error event (never raised into the program) and the selector decides.
    """


@hookspec(firstresult=True)
def dspy_turbo_should_store(request: dict[str, Any], value: Any, entry: Entry, reason: str | None, turbo: Turbo) -> bool | None:
    """Veto or force storing one response, after the admission policy has decided.

    ``reason`` is why the admission policy would refuse (``"error"``, ``"empty"``,
    ``"truncated"``), or ``None`` when it would store. Return ``False`` to refuse,
    ``True`` to store anyway, ``None`` to keep the policy's decision.
    **First non-None result wins.** Called on the miss path only.
    """


@hookspec
def dspy_turbo_wrap_backend(backend: CacheBackend, turbo: Turbo) -> CacheBackend | None:
    """Wrap a tier (tracing, compression, encryption) when a Turbo is assembled.

    Each implementation is called in turn with the backend as wrapped so far and may
    return a wrapper (an object with the ``CacheBackend`` methods) or ``None`` to leave it.
    The wrapper that the last implementation returns is the tier the engine calls.
    A wrapper is read and written from a thread unless its class sets
    ``in_process = True`` (see ``CacheBackend.in_process``); set it only when the wrapper
    itself never waits on I/O, as the event loop then calls it inline.
    """


# -- observation hooks -------------------------------------------------------------------------


@hookspec
def dspy_turbo_metric_event(event: Event) -> None:
    """Receive every metric event (hit, miss, store, evict, error, lm_call, coalesced, ...).

    **Broadcast**: every implementation is called; one that raises is counted and logged
    once and never stops the others or the user's program. Each implementation runs on
    its own background thread behind a bounded queue, like a metric sink: a slow one
    loses events (counted in ``turbo.stats()["dropped_events"]``), it never slows the
    program. ``turbo.flush_events(timeout)`` waits until it has seen everything emitted so
    far. Events carry no request text and no secrets.

    Kinds beyond the cache's own: ``timed`` (``turbo.timed(name)`` and ``turbo.profile()``;
    ``reason`` is the name, ``latency`` the seconds) and ``alert`` (``reason`` is the rule
    name, ``extra["state"]`` is ``"firing"`` or ``"resolved"``).
    """


@hookspec
def dspy_turbo_commands(cli: Any) -> None:
    """Add subcommands to the ``dspy-turbo`` command line (as simonw/llm's ``register_commands``).

    ``cli`` is the top-level `click <https://click.palletsprojects.com>`_ group; add to it
    with ``@cli.command()`` (or ``cli.add_command``). It also offers what the core's own
    commands use: ``@cli.config_option`` (``-c/--config PATH`` with the one default:
    ``$DSPY_TURBO_CONFIG``, else ``./turbo.yaml`` when it exists, else the embedded
    default; the command receives ``config``), ``cli.load(config)`` (a Turbo, not
    installed into DSPy; close it when done) and ``cli.parse(config)`` (the validated config,
    nothing built). Return the exit code from the command
    (0 ok, 1 failed, 2 bad input); raise ``click.ClickException`` or
    ``dspy_turbo.ConfigError`` for a message without a traceback.

    Called once each time the command line starts, the core's implementation first (its
    commands are the built-in ones: ``check``, ``ls``, ``export``...). **Broadcast**; a name
    already taken is refused with a warning naming both plugins, and an implementation that
    raises loses its commands with a warning; neither stops the others.
    """


@hookspec
def dspy_turbo_startup(turbo: Turbo) -> None:
    """Called once when a Turbo has been assembled (tiers, coordinator, sinks built), before it
    serves any call. **Broadcast**; an exception here is a start-up error (the Turbo is not
    returned, what it opened is closed: every object published with ``turbo.publish`` that
    has a ``close()`` too).

    A feature builds its objects here from its section (``turbo.config.section(path)``) and
    publishes them: ``turbo.publish("semantic", cache)`` makes it ``turbo.features["semantic"]``
    and ``turbo.semantic``. The core's features run first (``tryfirst``), so a plugin's
    implementation sees them built.
    """


@hookspec
def dspy_turbo_stats(turbo: Turbo) -> dict[str, Any] | None:
    """This plugin's blocks of ``turbo.stats()``: a dict merged into the snapshot
    (``{"semantic": {...}}``), or ``None`` when it has nothing to report (e.g. its section is
    not configured).

    Called on every ``turbo.stats()``, after the core's own keys are filled in. **Broadcast**:
    every result is merged; a key the core or an earlier plugin already has is kept and the
    newcomer's is dropped with a warning. An implementation that raises contributes nothing
    and is reported as an error event (``reason="dspy_turbo_stats"``), never raised. Return
    plain JSON-able values (the CLI prints them, sinks may export them).
    """


@hookspec
def dspy_turbo_reset_stats(turbo: Turbo) -> None:
    """Called from ``turbo.reset_stats()`` after the core's counters are zeroed: zero this
    plugin's own. **Broadcast**; an implementation that raises is reported as an error event,
    never raised, and the others still run."""


@hookspec
def dspy_turbo_clear(turbo: Turbo, removed: dict[str, int], tier: str | None) -> None:
    """Called from ``turbo.clear(tier)`` (and ``dspy-turbo clear``) after the tiers removed this
    namespace's entries: remove this plugin's own data of the namespace.

    ``removed`` is the result ``clear()`` returns, entries removed per tier name; add this
    plugin's count under its own name (the semantic cache adds ``removed["semantic"]``, the
    vectors it dropped). ``tier`` is the one tier being cleared, or ``None`` for all; a
    feature whose data belongs to no tier usually clears only when it is ``None``.
    **Broadcast**; an implementation that raises is reported as an error event (the tiers
    are cleared already), never raised.
    """


@hookspec
def dspy_turbo_invalidate(turbo: Turbo, prefix: str, namespace: str | None, tag: str | None,
                          tier: str | None, removed: dict[str, int]) -> None:
    """Called from ``turbo.invalidate(namespace=, tag=, tier=)`` after the tiers removed the entries.

    ``prefix`` is the key prefix removed (``<namespace>:v<N>:``); ``namespace`` as given
    (``None``: this Turbo's own); ``tag`` the tag whose entries were removed, or ``None`` for
    every entry under ``prefix``; ``tier`` the one tier, or ``None``; ``removed`` the counts
    ``invalidate()`` returns, to which a plugin may add its own under its own name.
    **Broadcast**; an implementation that raises is reported as an error event, never raised.
    """


@hookspec
def dspy_turbo_shutdown(turbo: Turbo) -> None:
    """Called once from ``turbo.close()``, before tiers and sinks are closed. **Broadcast**;
    an exception is logged as a warning (and an error event), never raised, and every other
    implementation still runs. The core's features close last (``trylast``), so a plugin's
    implementation still finds them open."""


# -- who runs batches (first result wins) -------------------------------------------------------


@hookspec(firstresult=True)
def dspy_turbo_batch_runner(host: BatchHost) -> BatchRunner | None:
    """The object that runs whole batches: ``turbo.batch``, ``batch_iter``, ``abatch``,
    ``abatch_iter`` and ``dspy_turbo.batch`` hand every batch to it.

    ``host`` is a :class:`dspy_turbo.plugin.batch.BatchHost`: the Turbo's namespace, keys,
    tiers, event bus and coordinator, plus what a batch needs (the YAML ``batching``
    section, ``strategy(name)`` for the strategy classes of ``dspy_turbo_batch_strategies``,
    the item cache: ``item_key``/``lookup_items``/``store_item``, and ``installed()``).
    Return a :class:`dspy_turbo.plugin.batch.BatchRunner` for that host: an object with
    ``batch(program, examples, *, strategy=None, **options)``, ``batch_iter``, ``abatch``
    and ``abatch_iter`` with ``Turbo.batch``'s arguments and results. Each real LM call an
    item makes may be wrapped through the per-call policy of ``dspy_turbo.plugin.calls``.

    Called once per batch. **First result wins** (``firstresult``): the first implementation
    that returns something other than ``None`` runs the batch; return ``None`` to leave it to
    another plugin. With none (``dspy-turbo-batching`` not installed) ``turbo.batch`` raises
    ``dspy_turbo.host.batching.BatchingUnavailable``, which says to ``pip install dspy-turbo-batching``.
    ``dspy-turbo-batching`` implements it (``dspy_turbo_batching.runner``).
    """
