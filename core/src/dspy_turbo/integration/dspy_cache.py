"""Making a Turbo DSPy's cache.

``install()`` does four things:

1. ``dspy.cache`` becomes a :class:`DSPyCache` adapter, so everything DSPy caches (LM
   calls on every managed path: sync, ``acall``, streaming; ``dspy.Embedder``; any
   ``request_cache`` function) reads and writes the Turbo's tiers.
2. DSPy's LM execution (``dspy.clients.execution.execute``/``aexecute``) is wrapped, so
   that concurrent identical misses make one LM call (single-flight) and every LM call is
   reported with its latency, tokens and cost. ``cache=False`` calls pass straight through,
   as in DSPy; ``rollout_id`` is part of the request, so it separates entries as in DSPy.
   Inside a batch, every real LM call also goes through the batch's rate limit and
   retries (``call_dispatch``); elsewhere that layer is a no-op. DSPy's cache read
   (``execution._cached``) is guarded: a stored value DSPy cannot turn into an LM result
   (a foreign or older writer's value, ``42``, ``{}``) is a corrupt entry (an error
   event, removed from every tier) and the call a miss, never an exception.
3. ``dspy.configure_cache`` is wrapped: while the Turbo is installed it sets the adapter's
   ``enable_memory_cache``/``enable_disk_cache`` instead of building a second cache, and
   its ``safe_types`` join the entry codec's allow-list (``codec.SafeTypes``).
4. DSPy's model metadata lookup (``model_metadata.model_info``, a few times per LM call, a
   scan of its whole table for a model name it does not know) is memoised per model name
   (``metadata_memo``).

DSPy's switches, with a Turbo installed (the program's wishes are honoured, and there is
only ever one cache):

- ``enable_memory_cache`` governs the in-process tiers (``memory``), ``enable_disk_cache``
  every other tier (``file``, ``redis``, a third party's); ``dspy.configure_cache(...)``
  sets both, and so does assigning the adapter's attributes. Both off: every DSPy cache
  use bypasses the Turbo's tiers (no reads, no writes, no single-flight: each call
  reaches the LM, as in DSPy); the LM calls are still reported. One off: only the
  other's tiers are read and written, and the semantic cache is off. Back on: the tiers
  are back, with what they kept. ``put(..., enable_memory_cache=False)`` skips the
  in-process tiers for that write, as DSPy's does its memory cache.
- A program that assigns another object to ``dspy.cache`` (``dspy.cache = Cache(...)``)
  gets that cache for everything DSPy caches: the Turbo steps aside (a warning once)
  until ``dspy.cache`` is its adapter again (``turbo.install()``, or
  ``dspy.configure_cache()``, which puts the adapter back with the flags it asks for).
- ``turbo.uninstall()`` (or leaving ``with dspy_turbo.load(...)``) hands caching back to
  DSPy: the cache it had before ``install()``, or, when the program called
  ``dspy.configure_cache`` meanwhile, a DSPy cache built as that call asked; a cache the
  program assigned itself stays.

Streaming (``dspy.streamify``): a call served by another caller's LM call (single-flight,
here or in another process) sends the answer to its own stream listeners as chunks, as
its own LM call would have. An ordinary cache hit sends none, as in DSPy, unless
``cache.stream_hits: true``.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import inspect
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dspy
import dspy.clients
import dspy.clients.execution as execution
from dspy.clients.cache import Cache as _DSPyCache
from dspy.dsp.utils.settings import settings as _dspy_settings

from ..cache import controls
from ..cache.codec import register_codec
from ..cache.tiered import TieredCache
from ..events import bus as ev
from ..events.bus import Event, describe_error
from ..routing.costs import usage_cost as _usage_cost
from . import call_dispatch as callpolicy
from . import metadata_memo

if TYPE_CHECKING:
    from ..host.turbo import Turbo

logger = logging.getLogger("dspy_turbo")
_lock = threading.RLock()
_active: Turbo | None = None
_adapter: DSPyCache | None = None  # the installed Turbo's adapter (read on every LM call)
_MISSING = object()
# Set while single-flight re-reads the cache for a request already counted (as a miss).
_RECHECK: contextvars.ContextVar[bool] = contextvars.ContextVar("dspy_turbo_recheck", default=False)


# The request of the LM call in progress (execute/aexecute) and its key. Inside that call
# DSPy builds the same request again for its cache read and write (and single-flight needs
# the key too): an equal request reuses the key instead of serialising and hashing it again.
_KEYED: contextvars.ContextVar[tuple[dict, str | None, list] | None] = contextvars.ContextVar("dspy_turbo_keyed",
                                                                                             default=None)
# The key of the last LM request keyed in this thread or task (turbo.last_key()).
_LAST: contextvars.ContextVar[tuple[int, str] | None] = contextvars.ContextVar("dspy_turbo_last_key", default=None)
# request_cache doors of dspy.Embedder: their values must be one embedding per input.
_EMBEDDING_DOORS = frozenset({"dspy.clients.embedding._cached_compute_embeddings",
                              "dspy.clients.embedding._cached_acompute_embeddings"})


def _request_key(turbo: Turbo, request: dict[str, Any], ignored: list[str] | None, *, storing: bool = False) -> str | None:
    try:
        return turbo.key(request, ignored)
    except Exception as exc:
        logger.debug("request cannot be keyed; not cached", exc_info=True)
        if storing:  # once per call (the store, not the lookup before it): say why nothing is kept
            turbo.bus.emit(Event(ev.SKIP_STORE, reason="unkeyable", error=describe_error(exc)[:300],
                                 namespace=turbo.namespace))
        return None


def _with_endpoint(lm: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The request as keyed: with the endpoint of a custom engine that owns one (it names it
    ``cache_endpoint``), so that its calls are kept per endpoint as ``dspy.LM(api_base=...)``'s are."""
    endpoint = getattr(getattr(lm, "_engine_spec", None), "cache_endpoint", None)
    if isinstance(endpoint, str) and "api_base" not in request:
        return {**request, "api_base": endpoint}
    return request


class _Rechecking:
    """``with _Rechecking():`` reads inside count no miss (a class: contextlib's generator
    costs several times more, on every LM call)."""

    __slots__ = ("token",)

    def __enter__(self) -> None:
        self.token = _RECHECK.set(True)

    def __exit__(self, *exc: object) -> None:
        _RECHECK.reset(self.token)


class TierView(Mapping):
    """``dspy.cache.memory_cache`` / ``dspy.cache.disk_cache`` with a Turbo installed: a
    read-only view of its in-process tiers (memory) or of the others (file, redis, ...).

    Keys are ``dspy.cache.cache_key(request)``; a value read is the caller's own copy.
    ``in`` and ``[]`` ask every tier of the view; iteration and ``len`` list the tiers that
    can list their keys (memory, file; not redis). A tier that fails answers "not here".
    Writes go through ``dspy.cache.put`` (or the Turbo), never through the view.
    """

    __slots__ = ("_turbo", "_in_process", "_label")

    def __init__(self, turbo: Turbo, in_process: bool):
        self._turbo = turbo
        self._in_process = in_process
        self._label = "memory" if in_process else "disk"

    def _tiers(self) -> list:
        return [tier for tier in self._turbo.cache.tiers if tier.backend_in_process == self._in_process]

    def _entry(self, key: Any):
        if not isinstance(key, str):
            return None
        for tier in self._tiers():
            try:
                entry = tier.backend.get(key)
            except Exception:
                continue
            if entry is not None and not entry.expired():
                return entry
        return None

    def __getitem__(self, key: str) -> Any:
        entry = self._entry(key)
        if entry is None:
            raise KeyError(key)
        return entry.copy_value()

    def __contains__(self, key: object) -> bool:
        return self._entry(key) is not None

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        prefix = self._turbo.keys.prefix
        for tier in self._tiers():
            keys = getattr(tier.backend, "keys", None)
            if keys is None:
                continue
            try:
                found = keys(prefix)
            except Exception:
                continue
            for key in found:
                if key not in seen:
                    seen.add(key)
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"dspy.cache.{self._label}_cache is a read-only view of dspy-turbo's tiers; store with "
                        "dspy.cache.put(), empty the memory tiers with dspy.cache.reset_memory_cache(), "
                        "or use turbo.clear() / turbo.invalidate()")

    __setitem__ = __delitem__ = clear = pop = update = _read_only

    def __repr__(self) -> str:
        names = ", ".join(tier.name for tier in self._tiers()) or "none"
        return f"<dspy-turbo {self._label} tiers ({names}), read-only>"


def _prepared(value: Any) -> Any:
    """``value`` as DSPy's own cache hands out a hit: no usage (a hit made no LM call)."""
    extra = getattr(value, "__pydantic_extra__", None)
    if type(extra) is dict and "usage" in extra:
        # What ``value.usage = {}`` does to a LiteLLM response (usage is an extra field), without
        # pydantic's __setattr__: ~5 us of every hit. The copy owns its extras (pydantic's __copy__).
        extra["usage"] = {}
        object.__setattr__(value, "cache_hit", True)
        return value
    if hasattr(value, "usage") and not isinstance(value, dict):
        value.usage = {}
        object.__setattr__(value, "cache_hit", True)
    return value


class _Served:
    """``check(entry)`` for ``TieredCache.get``: takes the caller's own copy of the value,
    prepares it as a hit, and asks the caller's validator whether it can serve; ``value``
    is that copy once accepted (so it is copied once)."""

    __slots__ = ("validate", "value")

    def __init__(self, validate):
        self.validate = validate
        self.value = None

    def __call__(self, entry) -> str | None:
        value = _prepared(entry.copy_value())
        problem = None if self.validate is None else self.validate(value)
        if problem is None:
            self.value = value
        return problem


class DSPyCache(_DSPyCache):
    """DSPy's ``Cache`` interface over a Turbo (a subclass, so isinstance checks hold).

    ``enable_memory_cache`` switches the in-process tiers, ``enable_disk_cache`` the others
    (see the module docstring); ``memory_cache``/``disk_cache`` are :class:`TierView`\\ s,
    ``disk_cache_dir`` is the first file tier's directory.
    """

    def __init__(self, turbo: Turbo):  # noqa: D107 - DSPy's __init__ would open its own disk cache
        self.turbo = turbo
        self.enable_memory_cache = True
        self.enable_disk_cache = True
        self._lock = threading.RLock()
        self.memory_cache = TierView(turbo, True)
        self.disk_cache = TierView(turbo, False)
        self._partial: dict[tuple[bool, bool], TieredCache] = {}
        self.stream_hits = bool(getattr(turbo.settings.cache, "stream_hits", False))
        self._aside: Any = None  # the foreign dspy.cache last warned about

    @property
    def disk_cache_dir(self) -> str | None:
        for tier in self.turbo.cache.tiers:
            directory = getattr(tier.backend, "directory", None)
            if directory is not None and not tier.backend_in_process:
                return os.fspath(directory)
        return None

    def _tiers_for(self, memory: bool, disk: bool) -> TieredCache:
        """The Turbo's tiers that DSPy's flags leave on, as a cache of their own (same tiers,
        same breakers); built once per combination."""
        view = self._partial.get((memory, disk))
        if view is None:
            cache = self.turbo.cache
            view = TieredCache([t for t in cache.tiers if (memory if t.backend_in_process else disk)], cache.bus,
                               cache.namespace)
            view.before_read = cache.before_read
            self._partial[(memory, disk)] = view
        return view

    def cache_key(self, request: dict[str, Any], ignored_args_for_cache_key: list[str] | None = None) -> str:
        return self.turbo.key(request, ignored_args_for_cache_key)

    def _key(self, request: dict[str, Any], ignored: list[str] | None, *, storing: bool = False) -> str | None:
        keyed = _KEYED.get()
        if keyed is not None and keyed[1] is not None and ignored == keyed[2]:
            try:
                if keyed[0] == request:  # mostly the very same value objects: identity compares
                    return keyed[1]
            except Exception:  # values that refuse to compare (arrays): key it as usual
                pass
        return _request_key(self.turbo, request, ignored, storing=storing)

    def get(self, request: dict[str, Any], ignored_args_for_cache_key: list[str] | None = None, *,
            check=None) -> Any:
        """The caller's own copy of the cached value, prepared as DSPy's cache prepares a hit
        (no usage: no LM call was made), or None. ``check(value)``: why the value cannot serve
        this caller, or None; a value it refuses (and an embedding of the wrong shape) is a
        corrupt entry, removed, and the read a miss."""
        memory, disk = self.enable_memory_cache, self.enable_disk_cache
        if not (memory or disk):
            return None  # DSPy's off switch: not even a key is computed
        key = self._key(request, ignored_args_for_cache_key)
        if key is None:
            return None
        if check is None and type(request) is dict and request.get("_fn_identifier") in _EMBEDDING_DOORS:
            check = functools.partial(_embedding_problem, request)
        if controls._overrides is not None or self.turbo.base_control is not None:  # a scope was ever entered, or a mode
            control = self.turbo.control()
            if control is not None and control.read is False:
                return None  # bypass(), refresh(), record mode: nothing is read
        count = not _RECHECK.get()
        if check is None and memory and disk and self.turbo.semantic is None:
            # Nothing to validate (a direct dspy.cache.get): the plain read, one copy, prepared as a hit.
            entry = self.turbo.cache.get(key, count)
            return None if entry is None else _prepared(entry.copy_value())
        served = _Served(check)
        if memory and disk:
            semantic = self.turbo.semantic
            if semantic is None:
                found = self.turbo.cache.get(key, count, check=served) is not None
            else:  # exact first, then a safe paraphrase match (turbo.semantic: dspy-turbo-faiss)
                found = semantic.lookup(request, key, ignored_args_for_cache_key, count=count, check=served) is not None
        else:
            found = self._tiers_for(memory, disk).get(key, count, check=served) is not None
        return served.value if found else None

    def put(self, request: dict[str, Any], value: Any, ignored_args_for_cache_key: list[str] | None = None,
            enable_memory_cache: bool = True) -> None:
        memory = self.enable_memory_cache and enable_memory_cache
        disk = self.enable_disk_cache
        if not (memory or disk):
            return
        key = self._key(request, ignored_args_for_cache_key, storing=True)
        if key is None:
            return
        if memory and disk:
            if self.turbo.store(key, value, request=request) and self.turbo.semantic is not None:
                self.turbo.semantic.add(request, key, ignored_args_for_cache_key)
        else:
            self.turbo.store(key, value, request=request, cache=self._tiers_for(memory, disk))

    def __contains__(self, key: str) -> bool:
        return self.turbo.cache.contains(key)  # a broken tier answers "not here", never raises into DSPy

    def reset_memory_cache(self) -> None:
        """Empty the in-process tiers of this Turbo's namespace (as DSPy's: nothing when
        ``enable_memory_cache`` is off)."""
        if not self.enable_memory_cache:
            return
        for tier in self.turbo.cache.tiers:
            if tier.backend_in_process:
                try:
                    tier.backend.clear(self.turbo.keys.prefix)
                except Exception as exc:
                    self.turbo.cache.failed(tier, "clear", exc)

    def save_memory_cache(self, filepath: str) -> None:
        """Write the in-process tiers' entries of this namespace to ``filepath``, as DSPy saves
        its memory cache, but as JSON lines (``turbo.export``), never a pickle; nothing when
        ``enable_memory_cache`` is off."""
        if not self.enable_memory_cache:
            return
        self.turbo.export(filepath, tier=self._memory_tiers())

    def load_memory_cache(self, filepath: str, allow_pickle: bool = False) -> None:
        """Read a file written by ``save_memory_cache`` (or ``turbo.export``) into the in-process
        tiers. It holds JSON, so ``allow_pickle`` is not needed; a pickle (DSPy's own file) is
        refused whatever ``allow_pickle`` says: dspy-turbo never unpickles."""
        if not self.enable_memory_cache:
            return
        self.turbo.import_(filepath, tier=self._memory_tiers())

    def _memory_tiers(self) -> list[str]:
        return [tier.name for tier in self.turbo.cache.tiers if tier.backend_in_process]

    def __repr__(self) -> str:
        return f"<dspy_turbo.DSPyCache for {self.turbo!r}>"


def _embedding_problem(request: dict[str, Any], value: Any) -> str | None:
    """Why ``value`` is not the embeddings ``dspy.Embedder`` stored for ``request`` (one row
    of numbers per input, rows of one length), or None when it is."""
    import numpy as np

    try:
        rows = np.asarray(value, dtype=np.float32)
    except Exception as exc:
        return f"embeddings value is not numeric rows ({describe_error(exc)})"
    if rows.ndim != 2:
        return f"embeddings value has {rows.ndim} dimension(s), expected 2 (one row per input)"
    inputs = request.get("positional_arg_1", request.get("batch_inputs"))
    if isinstance(inputs, (list, tuple)) and rows.shape[0] != len(inputs):
        return f"embeddings value has {rows.shape[0]} rows for {len(inputs)} inputs"
    return None


def _result_problem(lm: Any, result: Any) -> str | None:
    """Why an LM result DSPy made from a cached value cannot reach the program, or None.

    DSPy turns what it finds into a result without looking: a value that is not a provider
    response (``42``, ``{}``, a string) becomes an answer with no outputs. So the value
    behind the result must be a response: DSPy's own record (lm15 responses, or outputs and
    a raw response), or a provider response with ``choices`` (chat, text) or ``output``
    (the Responses API)."""
    from dspy.clients.legacy_outputs import value
    from dspy.lm15 import Response

    outputs = getattr(result, "outputs", None)
    if not isinstance(outputs, list):
        return f"LM result outputs are {type(outputs).__name__}, not a list"
    for output in outputs:
        if output is not None and not isinstance(output, (str, dict)):
            return f"LM result output is {type(output).__name__}, not text or a dict"
    raw = getattr(result, "raw", None)
    if getattr(result, "responses", None) or raw is None or isinstance(raw, Response):
        return None
    field = "output" if getattr(lm, "model_type", "chat") == "responses" else "choices"
    if isinstance(raw, (str, bytes, int, float, list, tuple)):
        return f"stored value is {type(raw).__name__}, not an LM response"
    try:
        items = value(raw, field, None)
    except Exception as exc:
        return f"stored value has no readable {field!r} ({describe_error(exc)})"
    if not isinstance(items, list):
        return f"stored value has no {field!r} list, not an LM response"
    if field == "choices":
        for choice in items:
            if value(choice, "message", None) is None and value(choice, "text", None) is None:
                return "a stored choice has neither message nor text"
    return None


def _lm_result(lm: Any, call: Any, record: Any) -> Any:
    """The LM result DSPy's cache read (``execution._cached``) makes of a stored record."""
    from dspy.clients.call_result import CACHE_FORMAT, CallResult

    if isinstance(record, dict) and record.get("_dspy_format") == CACHE_FORMAT:
        return CallResult.load(record)
    result = CallResult.legacy(lm, record, kwargs=call.legacy)
    result.cache_hit = True
    result.usage = {}
    return result


class _LMRead:
    """A validator for ``DSPyCache.get`` on the LM path: the stored value must turn into an LM
    result DSPy can use; ``result`` is that result (made once, from the caller's copy)."""

    __slots__ = ("lm", "call", "result")

    def __init__(self, lm: Any, call: Any):
        self.lm, self.call, self.result = lm, call, None

    def __call__(self, record: Any) -> str | None:
        try:
            result = _lm_result(self.lm, self.call, record)
            problem = _result_problem(self.lm, result)
        except Exception as exc:
            return f"stored value is not an LM result ({describe_error(exc)})"
        if problem is None:
            self.result = result
        return problem


def _guard_cached(original):
    """DSPy's cache read on the LM path, as DSPy does it, with one difference: a stored value
    that DSPy cannot turn into an LM result is a corrupt entry (removed, an error event) and
    the read a miss, decided before the read counts as a hit."""

    def _cached(lm, call, asynchronous):
        adapter = _adapter
        if adapter is None or dspy.__dict__.get("cache") is not adapter:
            return original(lm, call, asynchronous)  # DSPy's own cache: DSPy's own behaviour
        if not call.cache:
            return None
        read = _LMRead(lm, call)
        if adapter.get(call.key(lm, asynchronous), execution.IGNORED_CACHE_KEYS, check=read) is None:
            return None
        return read.result

    _cached.__wrapped__ = original
    return _cached


@dataclass
class Installation:
    adapter: DSPyCache
    previous_cache: Any
    execute: Any
    aexecute: Any
    cached: Any
    configure_cache: Any
    configured: tuple[tuple, dict] | None = None
    """The arguments of the program's last ``dspy.configure_cache`` while installed."""


def _stepped_aside(adapter: DSPyCache) -> None:
    current = dspy.__dict__.get("cache")
    if adapter._aside is not current:
        adapter._aside = current
        logger.warning("dspy.cache was replaced by %s while dspy-turbo is installed: DSPy caches through that "
                       "cache now, and dspy-turbo steps aside until dspy.cache is it again (turbo.install() or "
                       "dspy.configure_cache()); turbo.uninstall() hands caching back to DSPy for good.",
                       type(current).__name__)


def _lm_model(lm: Any) -> str | None:
    return getattr(lm, "model", None)


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


# -- streaming: an answer served by another caller's call reaches this caller's listeners --

_WORDS = re.compile(r"\s*\S+")


def _pieces(text: Any) -> list[str]:
    """``text`` as token-like pieces (a word with the space before it), as an LM streams it:
    DSPy's listeners take a field marker that arrives whole in one chunk for a cache hit."""
    if not isinstance(text, str) or not text:
        return []
    pieces = _WORDS.findall(text)
    rest = len(text) - sum(map(len, pieces))
    if rest and pieces:
        pieces[-1] += text[-rest:]
    return pieces or [text]


def _replay_chunks(lm: Any, result: Any) -> list:
    """The chunks DSPy's stream bridge would have sent for ``result`` (a CallResult)."""
    from dspy.clients.call_result import attributes
    from dspy.clients.engines.streaming import EngineChunk

    predict = _dspy_settings.caller_predict
    predict_id = id(predict) if predict else None
    model = getattr(result, "response_model", None) or _lm_model(lm)

    def chunk(delta: dict, finish: str | None = None) -> EngineChunk:
        delta.setdefault("content", None)
        return EngineChunk(id=None, model=model, predict_id=predict_id,
                           choices=[attributes({"index": 0, "delta": delta, "finish_reason": finish})])

    chunks = []
    for output in getattr(result, "outputs", None) or ():
        text, reasoning = output, None
        if isinstance(output, dict):
            text, reasoning = output.get("text"), output.get("reasoning_content")
        chunks += [chunk({"reasoning_content": piece}) for piece in _pieces(reasoning)]
        chunks += [chunk({"content": piece}) for piece in _pieces(text)]
        chunks.append(chunk({}, "stop"))
    return chunks


def _replay(lm: Any, result: Any) -> None:
    """Send ``result`` to the stream of the ``dspy.streamify`` call in progress, if any (sync
    path: a worker thread of the stream's event loop, as DSPy's own bridge sends)."""
    stream = _dspy_settings.send_stream
    if stream is None or result is None:
        return
    try:
        import anyio
        from dspy.clients.call_context import stream_emitted

        for item in _replay_chunks(lm, result):
            stream_emitted()
            anyio.from_thread.run(stream.send, item)
    except Exception:  # the answer itself is intact: the program still gets it
        logger.debug("replaying a served answer to the stream failed", exc_info=True)


async def _areplay(lm: Any, result: Any) -> None:
    stream = _dspy_settings.send_stream
    if stream is None or result is None:
        return
    try:
        from dspy.clients.call_context import stream_emitted

        for item in _replay_chunks(lm, result):
            stream_emitted()
            await stream.send(item)
    except Exception:
        logger.debug("replaying a served answer to the stream failed", exc_info=True)


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
    on every LM call, six times):

    - ``prepare`` (the call's arguments) and pricing: CPU only, once the model price map
      is loaded (its first load may fetch it over the network);
    - the adapter's capability hints: CPU only once the price map is loaded, on DSPy's
      native route (the LiteLLM route imports LiteLLM the first time);
    - the native engine's target (``AsyncLM15Engine._target``): CPU only once the engine
      has built the provider for the request's route (building it may read credentials);
    - the cache read and write, when the installed Turbo's tiers make them inline work
      (``_cache_inline``) and ``dspy.cache`` is that Turbo.

    Anything else (the program's own ``to_thread`` calls) goes to a thread as usual.
    """
    context, args = None, ()
    if isinstance(task, functools.partial) and isinstance(getattr(task.func, "__self__", None), contextvars.Context):
        if not task.args:
            return False
        # asyncio.to_thread submits partial(context.run, fn, *args)
        context, task, args = task.func.__self__, task.args[0], task.args[1:]
    if task is execution.prepare:
        return True
    if task is execution._price_result or task is getattr(execution, "_price_legacy", None):
        return _price_map_loaded()
    if task is execution._cached or task is execution._store:
        turbo = _active
        if turbo is None or turbo.integration is None:
            return False
        return dspy.__dict__.get("cache") is turbo.integration.adapter and _cache_inline(turbo, task is execution._store)
    if task is _dspy_capabilities() and len(args) == 1:
        return _price_map_loaded() and _capabilities_inline(args[0], context)
    if getattr(task, "__func__", None) is _dspy_target() and len(args) == 1:
        return _target_inline(task.__self__, args[0])
    return False


def _price_map_loaded() -> bool:
    from dspy.clients import model_metadata

    return getattr(model_metadata, "_data", None) is not None


def _dspy_capabilities() -> Any:
    from dspy.clients import capabilities

    return getattr(capabilities, "capabilities", None)


def _dspy_target() -> Any:
    try:
        from dspy.clients.engines.lm15_engine import _Routing
    except ImportError:
        return None
    return getattr(_Routing, "_target", None)


def _capabilities_inline(lm: Any, context: contextvars.Context | None) -> bool:
    """``capabilities(lm)`` imports nothing and reads no file: LiteLLM is imported already
    or the call's route is DSPy's native one (what ``capabilities`` decides, ~25 µs)."""
    if "litellm" in sys.modules:
        return True
    try:
        from dspy.clients import capabilities
        from dspy.clients.backend_selection import select_backend

        scope = context.get(capabilities._planning, None) if context is not None else None
        options = scope.options if scope is not None and scope.lm is lm else None
        selection = select_backend(lm, options)
    except Exception:  # the call raises it itself, on a thread as DSPy does
        return False
    route = selection.resolution
    return bool(selection.native or (route is not None and route.declared))


def _target_inline(engine: Any, request: Any) -> bool:
    """The engine has the provider for ``request``'s route already: ``_target`` validates
    the request and looks the provider up (building one may read credentials)."""
    try:
        if engine._closed:
            return False
        return engine.resolve(request.model).provider in engine._providers
    except Exception:  # the call raises it itself, on a thread as DSPy does
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


def _keyed(turbo: Turbo, lm: Any, request: dict[str, Any]) -> tuple[dict, str | None, list]:
    """What ``_KEYED`` holds for one LM call; the key is also this context's ``last_key()``
    and the request, as keyed, what ``turbo.explain_key(key)`` explains."""
    keyed = _with_endpoint(lm, request)
    ignored = execution.IGNORED_CACHE_KEYS
    key = _request_key(turbo, keyed, ignored)
    if key is not None:
        _LAST.set((id(turbo), key))
        turbo.remember(key, keyed, ignored)
    return request, key, ignored


def last_keyed(turbo: Turbo) -> str | None:
    last = _LAST.get()
    return last[1] if last is not None and last[0] == id(turbo) else None


def _miss_control(turbo: Turbo, lm: Any, call: Any) -> bool:
    """After a miss: replay mode refuses the call (a ReplayMiss); True when the running
    control reads nothing (bypass, refresh, record): the caller asked for an answer of its
    own, so the call is made outside single-flight."""
    control = turbo.control()
    if turbo.replay:
        keyed = _KEYED.get()
        reason = "no recorded answer" if control is None or control.read is not False else \
            "a scope that reads nothing (bypass() or refresh())"
        raise _replay_refused(turbo, lm, call, keyed[1] if keyed else None, reason)
    return control is not None and control.read is False


def _replay_refused(turbo: Turbo, lm: Any, call: Any, key: str | None, reason: str) -> controls.ReplayMiss:
    predict = _dspy_settings.caller_predict
    signature = getattr(getattr(predict, "signature", None), "signature", None)
    messages = prompt = None
    if getattr(call, "request", None) is not None:  # an lm15 Request: its messages as DSPy keyed them
        try:
            from dspy._vendor.lm15.serde import request_to_dict

            messages = request_to_dict(call.request).get("messages")
        except Exception:
            messages = None
    else:
        legacy = getattr(call, "legacy", None) or {}
        messages, prompt = legacy.get("messages"), getattr(call, "prompt", None)
    if not isinstance(signature, str):
        signature = _signature_from(messages)
    if key is None:
        try:
            key = _request_key(turbo, _with_endpoint(lm, call.key(lm, False)), execution.IGNORED_CACHE_KEYS)
        except Exception:
            key = None
    return controls.replay_miss(key=key, model=_lm_model(lm), signature=signature, messages=messages, prompt=prompt,
                                reason=reason)


def _signature_from(messages: Any) -> str | None:
    """``"question -> answer"`` from the fields a DSPy adapter lists in its system message."""
    try:
        from .signature_text import input_fields, output_names

        system = next((m.get("content") for m in messages or () if isinstance(m, dict) and m.get("role") == "system"),
                      None)
        if not isinstance(system, str):
            return None
        inputs = [name for name, _ in input_fields(system)]
        return f"{', '.join(inputs)} -> {', '.join(output_names(system))}" if inputs else None
    except Exception:  # a message shape of its own: the message itself is shown instead
        return None


def _ours(turbo: Turbo | None, lm: Any, call: Any) -> bool:
    """Is this call for the installed Turbo's tiers? Not when nothing is installed, the call
    asks for no cache, or the program gave DSPy another cache (then it is DSPy's, as before)."""
    if turbo is None or not call.cache:
        if turbo is not None and turbo.replay and dspy.__dict__.get("cache") is _adapter:
            raise _replay_refused(turbo, lm, call, None, "the call asks for no cache (cache=False)")
        return False
    if dspy.__dict__.get("cache") is not _adapter:
        _stepped_aside(_adapter)
        return False
    return True


def _keying_off(turbo: Turbo, adapter: DSPyCache, lm: Any, call: Any) -> bool:
    """DSPy's own off switch (``configure_cache`` with both caches off): every call reaches the LM."""
    if adapter.enable_memory_cache or adapter.enable_disk_cache:
        return False
    if turbo.replay:
        raise _replay_refused(turbo, lm, call, None, "DSPy's cache is switched off (dspy.configure_cache)")
    return True


def _lead_key(turbo: Turbo, lm: Any, call: Any) -> str | None:
    """The single-flight key of a miss, or None when this call must not share (single-flight
    off, or a scope that reads nothing asks for a fresh call; replay refuses here)."""
    fresh = _miss_control(turbo, lm, call)
    return _KEYED.get()[1] if turbo.singleflight_enabled and not fresh else None


class _Execution:
    """DSPy's ``execute``/``aexecute`` wrapped: hits return at once; misses go through
    single-flight (this process's, then the shared tier's across processes).

    The leader's re-check inside DSPy's execute (and a waiter's read of what the leader
    stored) runs with ``_RECHECK`` set, so a request is counted as one miss, not two.
    The async half mirrors the sync one step by step.
    """

    def __init__(self, original_execute, original_aexecute):
        self.original_execute, self.original_aexecute = original_execute, original_aexecute

    # -- sync ------------------------------------------------------------------------------

    def execute(self, lm, call):
        turbo = _active
        if not _ours(turbo, lm, call):
            return callpolicy.execute(self.original_execute, lm, call)
        if call.cache is not True and isinstance(call.cache, dict):  # cache={"no-cache": ...}: this call's controls
            with controls.for_call(call.cache):
                return self._keyed(turbo, _adapter, lm, call)
        return self._keyed(turbo, _adapter, lm, call)

    def _keyed(self, turbo, adapter, lm, call):
        if _keying_off(turbo, adapter, lm, call):
            return self._call_lm(turbo, lm, call, None, recheck=False)
        token = _KEYED.set(_keyed(turbo, lm, call.key(lm, False)))
        try:
            return self._cached_or_lead(turbo, adapter, lm, call)
        finally:
            _KEYED.reset(token)

    def _cached_or_lead(self, turbo, adapter, lm, call):
        hit = execution._cached(lm, call, False)
        if hit:
            if adapter.stream_hits:
                _replay(lm, hit)
            return hit
        key = _lead_key(turbo, lm, call)
        if key is None:
            return self._call_lm(turbo, lm, call, key)
        result, shared = turbo.singleflight.do(key, lambda: self._lead(turbo, lm, call, key))
        if not shared:
            return result
        turbo.report_coalesced(key, _lm_model(lm), *_usage_cost(lm, result, turbo))
        # Our own copy from the cache when the leader stored it; else a copy of the leader's result.
        with _Rechecking():
            mine = execution._cached(lm, call, False) or _waiter_copy(result)
        _replay(lm, mine)
        return mine

    def _lead(self, turbo, lm, call, key):
        """This process's leader: coordinate with other processes when a tier is shared."""
        if turbo.shared_flight is None:
            return self._call_lm(turbo, lm, call, key)

        def recheck():
            with _Rechecking():
                return execution._cached(lm, call, False)

        result, elsewhere = turbo.shared_flight.do(key, recheck, lambda: self._call_lm(turbo, lm, call, key))
        if elsewhere:
            turbo.report_coalesced(key, _lm_model(lm), *_usage_cost(lm, result, turbo))
            _replay(lm, result)
        return result

    def _call_lm(self, turbo, lm, call, key, recheck=True):
        """The LM call (DSPy's execute, which re-checks the cache and stores), reported.
        ``recheck=False``: DSPy's cache is off, there is nothing to re-check or replay."""
        started = time.perf_counter()
        try:
            if recheck:
                with _Rechecking():
                    result = callpolicy.execute(self.original_execute, lm, call)
            else:
                result = callpolicy.execute(self.original_execute, lm, call)
        except BaseException as exc:
            _report(turbo, lm, started, error=exc)
            raise
        _report(turbo, lm, started, result, key=key)
        if recheck and getattr(result, "cache_hit", False):  # another caller's call, found by DSPy's re-check
            _replay(lm, result)
        return result

    # -- async: the same steps -------------------------------------------------------------

    async def aexecute(self, lm, call):
        turbo = _active
        if not _ours(turbo, lm, call):
            return await callpolicy.aexecute(self.original_aexecute, lm, call)
        if call.cache is not True and isinstance(call.cache, dict):
            with controls.for_call(call.cache):
                return await self._akeyed(turbo, _adapter, lm, call)
        return await self._akeyed(turbo, _adapter, lm, call)

    async def _akeyed(self, turbo, adapter, lm, call):
        if _keying_off(turbo, adapter, lm, call):
            return await self._acall_lm(turbo, lm, call, None, recheck=False)
        token = _KEYED.set(_keyed(turbo, lm, call.key(lm, True)))
        try:
            return await self._acached_or_lead(turbo, adapter, lm, call)
        finally:
            _KEYED.reset(token)

    async def _acached_or_lead(self, turbo, adapter, lm, call):
        hit = await _acached(turbo, lm, call)
        if hit:
            if adapter.stream_hits:
                await _areplay(lm, hit)
            return hit
        key = _lead_key(turbo, lm, call)
        if key is None:
            return await self._acall_lm(turbo, lm, call, key)
        result, shared = await turbo.singleflight.ado(key, lambda: self._alead(turbo, lm, call, key))
        if not shared:
            return result
        turbo.report_coalesced(key, _lm_model(lm), *_usage_cost(lm, result, turbo))
        with _Rechecking():
            mine = await _acached(turbo, lm, call) or _waiter_copy(result)
        await _areplay(lm, mine)
        return mine

    async def _alead(self, turbo, lm, call, key):
        if turbo.shared_flight is None:
            return await self._acall_lm(turbo, lm, call, key)

        async def recheck():
            with _Rechecking():
                return await _acached(turbo, lm, call)

        result, elsewhere = await turbo.shared_flight.ado(key, recheck, lambda: self._acall_lm(turbo, lm, call, key))
        if elsewhere:
            turbo.report_coalesced(key, _lm_model(lm), *_usage_cost(lm, result, turbo))
            await _areplay(lm, result)
        return result

    async def _acall_lm(self, turbo, lm, call, key, recheck=True):
        started = time.perf_counter()
        try:
            if recheck:
                with _Rechecking():
                    result = await callpolicy.aexecute(self.original_aexecute, lm, call)
            else:
                result = await callpolicy.aexecute(self.original_aexecute, lm, call)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                _report(turbo, lm, started, error=exc)
            raise
        _report(turbo, lm, started, result, key=key)
        if recheck and getattr(result, "cache_hit", False):
            await _areplay(lm, result)
        return result


def _wrap(original_execute, original_aexecute):
    """DSPy's execute and aexecute, wrapped (see ``_Execution``): bound methods, whose
    ``__self__`` holds the originals."""
    wrapped = _Execution(original_execute, original_aexecute)
    return wrapped.execute, wrapped.aexecute


# -- dspy.configure_cache while installed ----------------------------------------------------


def _check_like_dspy(options: dict[str, Any]) -> None:
    """The argument errors DSPy's ``Cache`` raises, raised the same way."""
    if options.get("enable_memory_cache"):
        entries = options.get("memory_max_entries")
        if entries is None:
            raise ValueError("`memory_max_entries` cannot be None. Use `math.inf` if you need an unbounded cache.")
        if entries <= 0:
            raise ValueError(f"`memory_max_entries` must be a positive number, but received {entries}")
    if options.get("enable_disk_cache") and options.get("restrict_pickle"):
        for t in options.get("safe_types") or []:
            if not isinstance(t, type):
                raise TypeError(f"safe_types entries must be types, got {t!r}")


def _wrap_configure_cache(original):
    signature = inspect.signature(original)

    @functools.wraps(original)
    def configure_cache(*args, **kwargs):
        turbo, adapter = _active, _adapter
        if turbo is None or adapter is None:
            return original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)  # a wrong argument is DSPy's TypeError
        bound.apply_defaults()
        options = bound.arguments
        _check_like_dspy(options)
        # DSPy's safe_types allow classes through its restricted unpickler; here they join the
        # allow-list of the entry codec (which never unpickles, so restrict_pickle changes nothing).
        register_codec(*[t for t in options.get("safe_types") or () if isinstance(t, type)])
        memory, disk = bool(options.get("enable_memory_cache")), bool(options.get("enable_disk_cache"))
        with dspy._cache_lock:
            adapter.enable_memory_cache, adapter.enable_disk_cache = memory, disk
            adapter._aside = None
            dspy.cache = adapter
            if turbo.integration is not None:
                turbo.integration.configured = (args, kwargs)
        logger.debug("dspy.configure_cache(enable_memory_cache=%s, enable_disk_cache=%s) applied to dspy-turbo's "
                     "tiers; their sizes and places come from its config", memory, disk)

    configure_cache.__wrapped__ = original
    return configure_cache


def install(turbo: Turbo) -> None:
    global _active, _adapter
    with _lock:
        if turbo.closed:
            raise RuntimeError("this Turbo is closed; load a new one")
        if _active is turbo:
            with dspy._cache_lock:  # installed already: in charge again if the program put another cache there
                dspy.cache = turbo.integration.adapter
            turbo.integration.adapter._aside = None
            return
        if _active is not None:
            uninstall(_active)
        previous = dspy.__dict__.get("cache", _MISSING)
        adapter = DSPyCache(turbo)
        wrapped_execute, wrapped_aexecute = _wrap(execution.execute, execution.aexecute)
        original_configure = dspy.clients.configure_cache
        turbo.integration = Installation(adapter, previous, execution.execute, execution.aexecute, execution._cached,
                                         original_configure)
        wrapped_configure = _wrap_configure_cache(original_configure)
        with dspy._cache_lock:
            dspy.cache = adapter
        execution._cached = _guard_cached(execution._cached)
        execution.execute, execution.aexecute = wrapped_execute, wrapped_aexecute
        dspy.clients.configure_cache = wrapped_configure
        if getattr(dspy, "configure_cache", None) is original_configure:
            dspy.configure_cache = wrapped_configure
        metadata_memo.install()  # DSPy's per-call model metadata lookups, kept per model name
        _active, _adapter = turbo, adapter


def uninstall(turbo: Turbo) -> None:
    global _active, _adapter
    with _lock:
        installation = turbo.integration
        if installation is None:
            return
        execution.execute, execution.aexecute = installation.execute, installation.aexecute
        execution._cached = installation.cached
        metadata_memo.uninstall()
        wrapped = dspy.clients.configure_cache
        dspy.clients.configure_cache = installation.configure_cache
        if getattr(dspy, "configure_cache", None) is wrapped:
            dspy.configure_cache = installation.configure_cache
        turbo.integration = None
        if _active is turbo:
            _active = _adapter = None
        reconfigure = None
        with dspy._cache_lock:
            if dspy.__dict__.get("cache") is installation.adapter:  # a cache the program assigned itself stays
                if installation.previous_cache is _MISSING:
                    dspy.__dict__.pop("cache", None)  # DSPy builds its default again on next use
                else:
                    dspy.cache = installation.previous_cache
                reconfigure = installation.configured
        if reconfigure is not None:
            # The program asked DSPy for this cache while the Turbo stood in: it gets it now.
            try:
                installation.configure_cache(*reconfigure[0], **reconfigure[1])
            except Exception as exc:
                logger.warning("dspy.configure_cache as the program last called it failed at uninstall (%s); "
                               "DSPy keeps the cache it had before install()", describe_error(exc))


def active() -> Turbo | None:
    """The installed Turbo, if any."""
    return _active
