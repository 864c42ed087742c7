"""``@dspy_turbo.cached``: any sync or async function (a retriever, a tool) through the tiers.

    @dspy_turbo.cached(ttl="1h", ignore=["client"])
    def search(query: str, k: int = 5, client=None) -> list[str]: ...

**What the key is made of.** The function itself, by what decides what it does: its
qualified name and code, its defaults and closure cells (two closures made by one factory
over different values are different functions; see ``dspy_turbo.cache.keys.callable_identity``),
and its bound arguments with defaults applied (``search("q")`` and ``search("q", k=5)``
share an entry). Arguments are keyed by value; a callable argument by its code, closure
cells, defaults, a partial's arguments, a bound method's receiver. What a function captures
and a method's ``self`` count by value when immutable (numbers, strings, tuples) and
otherwise by *identity* (this very object, in this process), never by their state: a
result that depends on attributes that change must take them as arguments. Identity holds
only in one process, so such a function shares no entries with another process or with a
new instance. Say what identifies a call with ``key=`` instead: the key is then the
function's qualified name and code and ``key(*args, **kwargs)``, and neither the closure
nor the instance is looked at:

    @turbo.cached(key=lambda corpus_id, query: (corpus_id, query))
    def retrieve(corpus_id, query): return index.search(query)   # `index` captured

**What cannot be keyed** (a plain object, a lock, a client as an argument) makes the call
run uncached, with a ``skip_store`` event (reason ``unkeyable``) naming the argument and
its type; it never raises into the program. Pass ``ignore=[name]`` for arguments that do
not change the result.

Concurrent identical calls run once (single-flight). Without an explicit ``turbo=``, the
installed Turbo is used at call time; with none installed, the function simply runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..events import bus as ev
from ..events.bus import Event
from . import controls
from .keys import Unkeyable, function_request, is_method, unkeyable_argument

if TYPE_CHECKING:
    from ..host.turbo import Turbo


def cached(fn=None, *, ttl: float | str | None = None, ignore: Iterable[str] = (), tags: Iterable[str] = (),
           turbo: Turbo | None = None, key: Callable[..., Any] | None = None):
    seconds = controls.call_ttl(ttl, "cached(ttl=...)")
    ignored = frozenset(ignore)
    tag_tuple = tuple(tags)
    key_fn = key
    if key_fn is not None and not callable(key_fn):
        raise TypeError(f"cached(key=...) takes a function of the call's arguments, not a {type(key).__name__}")

    def current() -> Turbo | None:
        if turbo is not None:
            return turbo
        from ..integration.dspy_cache import active

        return active()

    def decorate(func):
        method = is_method(func)

        def key_of(t: Turbo, args: tuple, kwargs: dict[str, Any]) -> str | None:
            """The call's key, or None (and an event) when it cannot be keyed."""
            request = None
            try:
                request = function_request(func, args, kwargs, ignore=ignored, method=method, key=key_fn)
                key = t.key(request)
                t.remember(key, request, None)
                return key
            except Exception as exc:  # never raise into the program: run uncached
                if request is not None and isinstance(exc, Unkeyable):
                    reason = unkeyable_argument(func, request)
                elif isinstance(exc, Unkeyable):
                    reason = str(exc)
                else:
                    reason = f"{func.__module__}.{func.__qualname__}: {type(exc).__name__}: {exc}"[:300]
                t.bus.emit(Event(ev.SKIP_STORE, reason="unkeyable", error=reason, namespace=t.namespace))
                return None

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                t = current()
                if t is None:
                    return await func(*args, **kwargs)
                key = key_of(t, args, kwargs)
                if key is None:
                    return await func(*args, **kwargs)
                hit = t.lookup(key)
                if hit is not None:
                    return hit
                if _uncontrolled(t, key, func) is not None:  # reads off: a fresh call, never shared
                    value = await func(*args, **kwargs)
                    t.store(key, value, ttl=seconds, tags=tag_tuple)
                    return value

                async def call():
                    again = t.lookup(key, count=False)  # another flight may have stored it meanwhile
                    if again is not None:
                        return again
                    value = await func(*args, **kwargs)
                    t.store(key, value, ttl=seconds, tags=tag_tuple)
                    return value

                async def run():
                    if t.shared_flight is None:
                        return await call()

                    async def recheck():
                        return t.lookup(key, count=False)

                    value, elsewhere = await t.shared_flight.ado(key, recheck, call)
                    if elsewhere:
                        t.report_coalesced(key)
                    return value

                value, shared = await t.singleflight.ado(key, run)
                return _shared(t, key, value) if shared else value

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            t = current()
            if t is None:
                return func(*args, **kwargs)
            key = key_of(t, args, kwargs)
            if key is None:
                return func(*args, **kwargs)
            hit = t.lookup(key)
            if hit is not None:
                return hit
            if _uncontrolled(t, key, func) is not None:  # reads off: a fresh call, never shared
                value = func(*args, **kwargs)
                t.store(key, value, ttl=seconds, tags=tag_tuple)
                return value

            def call():
                again = t.lookup(key, count=False)  # another flight may have stored it meanwhile
                if again is not None:
                    return again
                value = func(*args, **kwargs)
                t.store(key, value, ttl=seconds, tags=tag_tuple)
                return value

            def run():
                if t.shared_flight is None:
                    return call()
                value, elsewhere = t.shared_flight.do(key, lambda: t.lookup(key, count=False), call)
                if elsewhere:
                    t.report_coalesced(key)
                return value

            value, shared = t.singleflight.do(key, run)
            return _shared(t, key, value) if shared else value

        return wrapper

    if fn is not None and callable(fn):
        return decorate(fn)
    return decorate


def _uncontrolled(t: Turbo, key: str, func) -> controls.CacheControl | None:
    """After a miss: refused in replay mode (a ReplayMiss); the running control when it reads
    nothing (the call then runs on its own, outside single-flight), else None."""
    if t.replay:
        raise controls.replay_miss(key=key, function=f"{func.__module__}.{func.__qualname__}")
    control = t.control()
    return control if control is not None and control.read is False else None


def _shared(t: Turbo, key: str, value):
    """A single-flight waiter's result: counted as coalesced (its miss was counted already);
    its own copy when the leader's value was stored, else the leader's value. One read of
    the cache serves both."""
    entry = t.cache.get(key, count=False)
    if entry is None:
        t.report_coalesced(key, lookup=False)
        return value
    t.report_coalesced(key, entry.model, entry.usage, entry.cost, lookup=False)
    return entry.copy_value()
