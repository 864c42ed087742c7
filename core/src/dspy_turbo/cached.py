"""``@dspy_turbo.cached``: any sync or async function (a retriever, a tool) through the tiers.

    @dspy_turbo.cached(ttl="1h", ignore=["client"])
    def search(query: str, k: int = 5, client=None) -> list[str]: ...

The key is the function's qualified name and its bound arguments (defaults applied, so
``search("q")`` and ``search("q", k=5)`` share an entry). Concurrent identical calls run
once (single-flight). Without an explicit ``turbo=``, the installed Turbo is used at call
time; with none installed, the function simply runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .keys import function_request
from .units import parse_duration

if TYPE_CHECKING:
    from .turbo import Turbo


def cached(fn=None, *, ttl: float | str | None = None, ignore: Iterable[str] = (), tags: Iterable[str] = (),
           turbo: Turbo | None = None):
    seconds = parse_duration(ttl) if ttl is not None else None
    ignored = frozenset(ignore)
    tag_tuple = tuple(tags)

    def current() -> Turbo | None:
        if turbo is not None:
            return turbo
        from .dspy_integration import active

        return active()

    def decorate(func):
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                t = current()
                if t is None:
                    return await func(*args, **kwargs)
                key = t.key(function_request(func, args, kwargs, ignore=ignored))
                hit = t.lookup(key)
                if hit is not None:
                    return hit

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
            key = t.key(function_request(func, args, kwargs, ignore=ignored))
            hit = t.lookup(key)
            if hit is not None:
                return hit

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
