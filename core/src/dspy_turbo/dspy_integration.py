"""Making a Turbo DSPy's cache.

``install()`` does two things:

1. ``dspy.cache`` becomes a :class:`DSPyCache` adapter, so everything DSPy caches (LM
   calls on every managed path: sync, ``acall``, streaming; ``dspy.Embedder``; any
   ``request_cache`` function) reads and writes the Turbo's tiers.
2. DSPy's LM execution (``dspy.clients.execution.execute``/``aexecute``) is wrapped, so
   that concurrent identical misses make one LM call (single-flight) and every LM call is
   reported with its latency, tokens and cost. ``cache=False`` calls pass straight through,
   as in DSPy; ``rollout_id`` is part of the request, so it separates entries as in DSPy.
   Inside a batch, every real LM call also goes through the batch's rate limit and
   retries (``callpolicy``); elsewhere that layer is a no-op.

If the program later calls ``dspy.configure_cache()``, that replaces ``dspy.cache``. The
next LM call notices, logs a warning and puts the Turbo back: while a Turbo is installed
it stays in charge. ``turbo.uninstall()`` (or leaving ``with dspy_turbo.load(...)``) is
the way to hand caching back to DSPy; it restores the cache DSPy had before.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dspy
import dspy.clients.execution as execution
from dspy.clients.cache import Cache as _DSPyCache

from . import callpolicy, costs

if TYPE_CHECKING:
    from .turbo import Turbo

logger = logging.getLogger("dspy_turbo")
_lock = threading.RLock()
_active: Turbo | None = None
_MISSING = object()
# Set while single-flight re-reads the cache for a request already counted (as a miss).
_RECHECK: contextvars.ContextVar[bool] = contextvars.ContextVar("dspy_turbo_recheck", default=False)


# The request of the LM call in progress (execute/aexecute) and its key. Inside that call
# DSPy builds the same request again for its cache read and write (and single-flight needs
# the key too): an equal request reuses the key instead of serialising and hashing it again.
_KEYED: contextvars.ContextVar[tuple[dict, str | None, list] | None] = contextvars.ContextVar("dspy_turbo_keyed",
                                                                                             default=None)


def _request_key(turbo: Turbo, request: dict[str, Any], ignored: list[str] | None) -> str | None:
    try:
        return turbo.key(request, ignored)
    except Exception:
        logger.debug("request cannot be keyed; not cached", exc_info=True)
        return None


class _Rechecking:
    """``with _Rechecking():`` reads inside count no miss (a class: contextlib's generator
    costs several times more, on every LM call)."""

    __slots__ = ("token",)

    def __enter__(self) -> None:
        self.token = _RECHECK.set(True)

    def __exit__(self, *exc: object) -> None:
        _RECHECK.reset(self.token)


class DSPyCache(_DSPyCache):
    """DSPy's ``Cache`` interface over a Turbo (a subclass, so isinstance checks hold)."""

    def __init__(self, turbo: Turbo):  # noqa: D107 - DSPy's __init__ would open its own disk cache
        self.turbo = turbo
        self.enable_memory_cache = True
        self.enable_disk_cache = True
        self._lock = threading.RLock()

    def cache_key(self, request: dict[str, Any], ignored_args_for_cache_key: list[str] | None = None) -> str:
        return self.turbo.key(request, ignored_args_for_cache_key)

    def _key(self, request: dict[str, Any], ignored: list[str] | None) -> str | None:
        keyed = _KEYED.get()
        if keyed is not None and keyed[1] is not None and ignored == keyed[2]:
            try:
                if keyed[0] == request:  # mostly the very same value objects: identity compares
                    return keyed[1]
            except Exception:  # values that refuse to compare (arrays): key it as usual
                pass
        return _request_key(self.turbo, request, ignored)

    def get(self, request: dict[str, Any], ignored_args_for_cache_key: list[str] | None = None) -> Any:
        key = self._key(request, ignored_args_for_cache_key)
        if key is None:
            return None
        semantic = self.turbo.semantic
        if semantic is None:
            value = self.turbo.lookup(key, count=not _RECHECK.get())
        else:  # exact first, then a safe paraphrase match (dspy_turbo.semantic)
            value = semantic.lookup(request, key, ignored_args_for_cache_key, count=not _RECHECK.get())
        if value is not None and hasattr(value, "usage") and not isinstance(value, dict):
            # As DSPy's own cache does: a hit made no LM call, so it reports no usage.
            value.usage = {}
            object.__setattr__(value, "cache_hit", True)
        return value

    def put(self, request: dict[str, Any], value: Any, ignored_args_for_cache_key: list[str] | None = None,
            enable_memory_cache: bool = True) -> None:
        key = self._key(request, ignored_args_for_cache_key)
        if key is not None and self.turbo.store(key, value, request=request) and self.turbo.semantic is not None:
            self.turbo.semantic.add(request, key, ignored_args_for_cache_key)

    def __contains__(self, key: str) -> bool:
        return self.turbo.cache.contains(key)  # a broken tier answers "not here", never raises into DSPy

    def reset_memory_cache(self) -> None:
        for tier in self.turbo.cache.tiers:
            if tier.backend.name == "memory":
                tier.backend.clear()

    def save_memory_cache(self, filepath: str) -> None:
        raise NotImplementedError("dspy-turbo does not pickle its cache; a file or redis tier already persists it")

    def load_memory_cache(self, filepath: str, allow_pickle: bool = False) -> None:
        raise NotImplementedError("dspy-turbo never loads pickles; use a file or redis tier to persist the cache")

    def __repr__(self) -> str:
        return f"<dspy_turbo.DSPyCache for {self.turbo!r}>"


@dataclass
class Installation:
    adapter: DSPyCache
    previous_cache: Any
    execute: Any
    aexecute: Any


def _ensure_in_charge(turbo: Turbo) -> None:
    adapter = turbo.integration.adapter
    if dspy.__dict__.get("cache") is not adapter:
        logger.warning("dspy.cache was replaced (dspy.configure_cache?) while dspy-turbo is installed; "
                       "putting dspy-turbo back. Call turbo.uninstall() to hand caching back to DSPy.")
        with dspy._cache_lock:
            dspy.cache = adapter


def _lm_model(lm: Any) -> str | None:
    return getattr(lm, "model", None)


def _usage_cost(lm: Any, result: Any, turbo: Turbo | None = None) -> tuple[dict, float | None]:
    usage = dict(getattr(result, "usage", None) or {})
    cost = getattr(result, "cost", None)
    if turbo is not None:  # the YAML's price overrides win over what DSPy estimated
        return usage, turbo.prices.cost(_lm_model(lm), usage, cost)
    if cost is None and usage:
        cost = costs.estimate(_lm_model(lm), int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    return usage, cost


def _report(turbo: Turbo, lm: Any, started: float, result: Any = None, error: BaseException | None = None,
            key: str | None = None) -> None:
    latency = time.perf_counter() - started
    if error is not None:
        turbo.report_lm_call(_lm_model(lm), latency, None, None, error)
    elif not getattr(result, "cache_hit", False):
        turbo.report_lm_call(_lm_model(lm), latency, *_usage_cost(lm, result, turbo))
    elif key is not None:
        # DSPy's own re-check found the value: another caller's call (often in another
        # process) stored it after this request was counted as a miss.
        turbo.report_coalesced(key, _lm_model(lm))


def _cache_inline(turbo: Turbo, write: bool = False) -> bool:
    """Reads (and with ``write``, writes) through this Turbo take microseconds and do no I/O:
    every tier is in this process's memory, no semantic cache (a miss embeds the request: a
    model, maybe a shared index) and, for writes, no store hook (user code that may do I/O)."""
    return (turbo.cache.in_process and getattr(turbo, "semantic", None) is None
            and not (write and turbo._has_store_hooks))


async def _acached(turbo: Turbo, lm: Any, call: Any) -> Any:
    """DSPy's cache read on the async path. DSPy hands it to a thread (a tier may do I/O);
    when every tier is in this process's memory the read is cheaper inline than that
    hand-off, which costs two thread switches per LM call."""
    if _cache_inline(turbo):
        return execution._cached(lm, call, True)
    return await asyncio.to_thread(execution._cached, lm, call, True)


def runs_inline(task: Any) -> bool:
    """For an executor that may run some tasks on the submitting thread (``WorkerPool(inline=...)``,
    a batch's event loop): True for the helpers DSPy's async LM path hands to a thread
    (``asyncio.to_thread``) when they cost less than that hand-off (two thread switches,
    on every LM call, four times):

    - ``prepare`` (the call's arguments) and pricing: CPU only, once the model price map
      is loaded (its first load may fetch it over the network);
    - the cache read and write, when the installed Turbo's tiers make them inline work
      (``_cache_inline``) and ``dspy.cache`` is that Turbo.

    Anything else (the program's own ``to_thread`` calls) goes to a thread as usual.
    """
    if isinstance(task, functools.partial) and isinstance(getattr(task.func, "__self__", None), contextvars.Context):
        if not task.args:
            return False
        task = task.args[0]  # asyncio.to_thread submits partial(context.run, fn, *args)
    if task is execution.prepare:
        return True
    if task is execution._price_result or task is getattr(execution, "_price_legacy", None):
        from dspy.clients import model_metadata

        return getattr(model_metadata, "_data", None) is not None
    if task is execution._cached or task is execution._store:
        turbo = _active
        if turbo is None or turbo.integration is None:
            return False
        return dspy.__dict__.get("cache") is turbo.integration.adapter and _cache_inline(turbo, task is execution._store)
    return False


def _waiter_copy(result: Any) -> Any:
    """A single-flight waiter's own result when the leader's was not stored (refused by
    admission, vetoed, or every tier failed): not the leader's object, which its caller may
    change, and with no usage of its own, like a cache hit, so DSPy's usage tracking counts
    the one LM call once."""
    try:
        mine = copy.deepcopy(result)
    except Exception:
        mine = copy.copy(result)
    try:
        mine.cache_hit = True
        mine.usage = {}
    except Exception:
        pass  # an object that refuses: the leader's numbers, as before
    return mine


def _wrap(original_execute, original_aexecute):
    """Wrap DSPy's execute/aexecute: hits return at once; misses go through single-flight.

    The leader's re-check inside DSPy's execute (and a waiter's read of what the leader
    stored) runs with ``_RECHECK`` set, so a request is counted as one miss, not two.
    """

    def execute(lm, call):
        turbo = _active
        if turbo is None or not call.cache:
            return callpolicy.execute(original_execute, lm, call)
        _ensure_in_charge(turbo)
        request = call.key(lm, False)
        token = _KEYED.set((request, _request_key(turbo, request, execution.IGNORED_CACHE_KEYS),
                             execution.IGNORED_CACHE_KEYS))
        try:
            return _execute(turbo, lm, call)
        finally:
            _KEYED.reset(token)

    def _execute(turbo, lm, call):
        hit = execution._cached(lm, call, False)
        if hit:
            return hit

        key = _KEYED.get()[1] if turbo.singleflight_enabled else None

        def call_lm():
            started = time.perf_counter()
            try:
                with _Rechecking():
                    result = callpolicy.execute(original_execute, lm, call)
            except BaseException as exc:
                _report(turbo, lm, started, error=exc)
                raise
            _report(turbo, lm, started, result, key=key)
            return result

        if key is None:
            return call_lm()

        def run():  # this process's leader: coordinate with other processes when a tier is shared
            if turbo.shared_flight is None:
                return call_lm()

            def recheck():
                with _Rechecking():
                    return execution._cached(lm, call, False)

            result, elsewhere = turbo.shared_flight.do(key, recheck, call_lm)
            if elsewhere:
                turbo.report_coalesced(key, _lm_model(lm), *_usage_cost(lm, result, turbo))
            return result

        result, shared = turbo.singleflight.do(key, run)
        if not shared:
            return result
        turbo.report_coalesced(key, _lm_model(lm), *_usage_cost(lm, result, turbo))
        # Our own copy from the cache when the leader stored it; else a copy of the leader's result.
        with _Rechecking():
            return execution._cached(lm, call, False) or _waiter_copy(result)

    async def aexecute(lm, call):
        turbo = _active
        if turbo is None or not call.cache:
            return await callpolicy.aexecute(original_aexecute, lm, call)
        _ensure_in_charge(turbo)
        request = call.key(lm, True)
        token = _KEYED.set((request, _request_key(turbo, request, execution.IGNORED_CACHE_KEYS),
                             execution.IGNORED_CACHE_KEYS))
        try:
            return await _aexecute(turbo, lm, call)
        finally:
            _KEYED.reset(token)

    async def _aexecute(turbo, lm, call):
        hit = await _acached(turbo, lm, call)
        if hit:
            return hit

        key = _KEYED.get()[1] if turbo.singleflight_enabled else None

        async def call_lm():
            started = time.perf_counter()
            try:
                with _Rechecking():
                    result = await callpolicy.aexecute(original_aexecute, lm, call)
            except BaseException as exc:
                if not isinstance(exc, asyncio.CancelledError):
                    _report(turbo, lm, started, error=exc)
                raise
            _report(turbo, lm, started, result, key=key)
            return result

        if key is None:
            return await call_lm()

        async def run():
            if turbo.shared_flight is None:
                return await call_lm()

            async def recheck():
                with _Rechecking():
                    return await _acached(turbo, lm, call)

            result, elsewhere = await turbo.shared_flight.ado(key, recheck, call_lm)
            if elsewhere:
                turbo.report_coalesced(key, _lm_model(lm), *_usage_cost(lm, result, turbo))
            return result

        result, shared = await turbo.singleflight.ado(key, run)
        if not shared:
            return result
        turbo.report_coalesced(key, _lm_model(lm), *_usage_cost(lm, result, turbo))
        with _Rechecking():
            return await _acached(turbo, lm, call) or _waiter_copy(result)

    execute.__wrapped__ = original_execute
    aexecute.__wrapped__ = original_aexecute
    return execute, aexecute


def install(turbo: Turbo) -> None:
    global _active
    with _lock:
        if turbo.closed:
            raise RuntimeError("this Turbo is closed; load a new one")
        if _active is turbo:
            return
        if _active is not None:
            uninstall(_active)
        previous = dspy.__dict__.get("cache", _MISSING)
        adapter = DSPyCache(turbo)
        wrapped_execute, wrapped_aexecute = _wrap(execution.execute, execution.aexecute)
        turbo.integration = Installation(adapter, previous, execution.execute, execution.aexecute)
        with dspy._cache_lock:
            dspy.cache = adapter
        execution.execute, execution.aexecute = wrapped_execute, wrapped_aexecute
        _active = turbo


def uninstall(turbo: Turbo) -> None:
    global _active
    with _lock:
        installation = turbo.integration
        if installation is None:
            return
        execution.execute, execution.aexecute = installation.execute, installation.aexecute
        with dspy._cache_lock:
            if installation.previous_cache is _MISSING:
                dspy.__dict__.pop("cache", None)  # DSPy builds its default again on next use
            else:
                dspy.cache = installation.previous_cache
        turbo.integration = None
        if _active is turbo:
            _active = None


def active() -> Turbo | None:
    """The installed Turbo, if any."""
    return _active
