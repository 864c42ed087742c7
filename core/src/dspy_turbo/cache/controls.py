"""Cache controls: whether a block of code, or one call, reads the cache, writes it, and how
long what it writes lives; and the ``record``/``replay`` modes of a whole Turbo.

    with turbo.bypass():            # no read, no write: every call reaches the LM (DSPy's cache=False)
    with turbo.refresh():           # no read; the new answer replaces the cached one
    with turbo.read_only():         # read; never write
    with turbo.caching(ttl="1h"):   # what the block writes expires after an hour

One DSPy call takes the same controls through DSPy's own ``cache`` argument, with
LiteLLM's names: ``lm(..., cache={"no-cache": True})`` (no read), ``{"no-store": True}``
(no write), ``{"ttl": "10m"}``; a predictor passes it on from ``config={"cache": {...}}``.
DSPy keeps ``cache`` out of the request it sends and of the cache key, so these controls
change neither. ``cache=False`` is DSPy's own: no read, no write.

**Nesting.** A scope or a call sets only what it names; the rest comes from the scope
around it (innermost wins): ``refresh()`` inside ``read_only()`` writes again, a per-call
``{"ttl": 60}`` inside ``bypass()`` still bypasses. The mode (``cache.mode``) is the
outermost layer: ``record`` reads nothing and writes everything, ``replay`` writes nothing
and refuses to call the LM on a miss (:class:`ReplayMiss`), whatever a scope says.

**Where a scope reaches.** Scopes live in DSPy's context (the one ``dspy.context(...)``
sets), so they reach what DSPy's context reaches: asyncio tasks started inside, threads
that ``asyncio.to_thread``, ``dspy.Parallel``, ``dspy.Evaluate`` and ``turbo.batch`` start.
A bare ``threading.Thread`` or ``ThreadPoolExecutor`` starts outside them, as it starts
outside ``dspy.context``: run its work with ``contextvars.copy_context().run``.

**ttl.** Seconds or a duration string, more than 0 (``None``: the config's ``cache.ttl``).
0 is refused with the same reason as in the config: it read as "never expires" in one
place and "store nothing" in another; store nothing with ``read_only()`` or ``no-store``.
A call's own ttl (``cache={"ttl": ...}``, ``@cached(ttl=...)``, ``turbo.store(ttl=...)``)
wins over a scope's, which wins over ``cache.ttl``; a tier's own ``ttl`` still caps it.

A skipped read is neither a hit nor a miss in ``stats()``; the LM call it leads to is
counted as any other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..host.units import parse_duration

KEY = "dspy_turbo_cache_control"
"""The name under which a scope's control sits in DSPy's context overrides."""
MODES = ("normal", "record", "replay")
MODE_ENV = "DSPY_TURBO_MODE"

# DSPy's context overrides (dspy.dsp.utils.settings.thread_local_overrides), bound when the
# first scope is entered: before that no control can be set, and the read below is a None check
# (so ``import dspy_turbo`` does not import DSPy).
_overrides: Any = None


@dataclass(frozen=True, slots=True)
class CacheControl:
    """What a scope or a call says; ``None``: what the scope around it says."""

    read: bool | None = None
    write: bool | None = None
    ttl: float | None = None

    def over(self, outer: CacheControl | None) -> CacheControl:
        """This control with what it leaves unset taken from ``outer``."""
        if outer is None:
            return self
        return CacheControl(outer.read if self.read is None else self.read,
                            outer.write if self.write is None else self.write,
                            outer.ttl if self.ttl is None else self.ttl)


NORMAL = None
RECORD = CacheControl(read=False, write=True)
REPLAY = CacheControl(read=True, write=False)


def current() -> CacheControl | None:
    """The control of the running scope or call, or None (the hot path: one context read)."""
    var = _overrides
    if var is None:
        return None
    return var.get().get(KEY)


def effective(base: CacheControl | None) -> CacheControl | None:
    """The running scope's control over the mode's ``base`` (None: read and write as configured)."""
    var = _overrides
    scoped = None if var is None else var.get().get(KEY)
    if scoped is None:
        return base
    return scoped.over(base)


def _bind() -> Any:
    global _overrides
    if _overrides is None:
        from dspy.dsp.utils.settings import thread_local_overrides

        _overrides = thread_local_overrides
    return _overrides


class Scope:
    """``with``: the control holds inside the block (and what the block starts, see above).
    A class rather than ``contextlib.contextmanager``, so it is also cheap per call."""

    __slots__ = ("control", "_token", "_var")

    def __init__(self, control: CacheControl):
        self.control = control
        self._token = None
        self._var = None

    def __enter__(self) -> CacheControl:
        if self._token is not None:
            raise RuntimeError("this cache scope is in use already; make one per block (turbo.bypass() again)")
        var = _bind()
        overrides = var.get()
        merged = self.control.over(overrides.get(KEY))
        self._var, self._token = var, var.set(type(overrides)({**overrides, KEY: merged}))
        return merged

    def __exit__(self, *exc: object) -> None:
        token, self._token = self._token, None
        self._var.reset(token)

    def __repr__(self) -> str:
        return f"<dspy_turbo cache scope {self.control}>"


def call_ttl(value: Any, where: str) -> float | None:
    """A ttl given in code (``where`` names the argument): seconds or a duration, more than 0, or None."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if seconds <= 0:
        raise ValueError(f"{where}: a ttl must be more than 0 (got {value!r}); for no expiry pass None, and to store "
                         "nothing use turbo.read_only() or cache={'no-store': True}")
    return seconds


def bypass() -> Scope:
    """No read, no write: each call in the block reaches the LM, as with DSPy's ``cache=False``."""
    return Scope(CacheControl(read=False, write=False))


def refresh(ttl: float | str | None = None) -> Scope:
    """No read; each answer is written, replacing what was cached (``ttl``: its lifetime)."""
    return Scope(CacheControl(read=False, write=True, ttl=call_ttl(ttl, "refresh(ttl=...)")))


def read_only() -> Scope:
    """Hits are served; nothing is written (misses reach the LM and are not stored)."""
    return Scope(CacheControl(read=True, write=False))


def caching(*, read: bool | None = None, write: bool | None = None, ttl: float | str | None = None) -> Scope:
    """The general form: set any of ``read``, ``write`` and ``ttl`` for the block."""
    for name, value in (("read", read), ("write", write)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"caching({name}=...) takes True, False or None, not {type(value).__name__}")
    return Scope(CacheControl(read, write, call_ttl(ttl, "caching(ttl=...)")))


# LiteLLM's per-call cache controls (``completion(..., cache={...})``), as DSPy passes its
# ``cache`` argument through: the names a LiteLLM user already knows.
_CALL_KEYS = ("no-cache", "no-store", "ttl")


def from_call(value: dict) -> CacheControl:
    """The control a DSPy call's ``cache={...}`` asks for; a ValueError names a wrong key or value."""
    read = write = ttl = None
    for name, item in value.items():
        if name == "no-cache" or name == "no-store":
            if not isinstance(item, bool):
                raise ValueError(f"cache={{{name!r}: ...}} takes True or False, not {item!r}")
            if name == "no-cache":
                read = not item
            else:
                write = not item
        elif name == "ttl":
            ttl = call_ttl(item, "cache={'ttl': ...}")
        else:
            import difflib

            close = difflib.get_close_matches(str(name), _CALL_KEYS, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"cache={{...}} of an LM call: unknown control {name!r}; {hint}"
                             f"dspy-turbo takes {', '.join(map(repr, _CALL_KEYS))} (LiteLLM's names)")
    return CacheControl(read, write, ttl)


def for_call(value: dict) -> Scope:
    """A scope for the duration of one DSPy call whose ``cache`` argument is ``value``."""
    return Scope(from_call(value))


def mode_of(configured: str, environ=os.environ) -> str:
    """The mode a Turbo runs in: ``DSPY_TURBO_MODE`` when set (CI), else ``cache.mode``."""
    raw = environ.get(MODE_ENV, "").strip().lower()
    if not raw:
        return configured
    if raw not in MODES:
        import difflib

        close = difflib.get_close_matches(raw, MODES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"{MODE_ENV}={raw!r} is not a mode; {hint}modes: {', '.join(MODES)}")
    return raw


def base_control(mode: str) -> CacheControl | None:
    return {"normal": NORMAL, "record": RECORD, "replay": REPLAY}[mode]


class ReplayMiss(LookupError):
    """In replay mode, a call the cache cannot answer: it is refused instead of reaching the LM.

    ``key``, ``model`` and ``request`` say which call (the message shows the model, the
    signature or first user message, shortened, and the key)."""

    def __init__(self, message: str, *, key: str | None = None, model: str | None = None, what: str | None = None):
        super().__init__(message)
        self.key, self.model, self.what = key, model, what


def _short(text: Any, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _first_user_message(messages: Any) -> str | None:
    for message in messages or ():
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content", message.get("parts"))
            if isinstance(content, list):  # content parts: their text
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return content if isinstance(content, str) else None
    return None


def replay_miss(*, key: str | None, model: str | None = None, signature: str | None = None,
                messages: Any = None, prompt: str | None = None, function: str | None = None,
                reason: str = "no recorded answer") -> ReplayMiss:
    """The error for a call refused in replay mode, naming the request."""
    lines = [f"replay mode ({MODE_ENV}=replay or cache.mode: replay): {reason} for this "
             f"{'call' if function else 'LM request'}, and replay never calls the "
             f"{'function' if function else 'LM'}"]
    what = function
    if function:
        lines.append(f"  function:  {function}")
    if model:
        lines.append(f"  model:     {model}")
    if signature:
        lines.append(f"  signature: {signature}")
        what = signature
    text = _first_user_message(messages) if messages else prompt
    if text:
        lines.append(f"  first user message: {_short(text)!r}")
        what = what or _short(text, 60)
    lines.append(f"  key:       {key or '(not keyable: never cached)'}")
    lines.append("Record it first (DSPY_TURBO_MODE=record, or normal), or check that the program, its inputs, the model "
                 "and the namespace are the recorded ones (turbo.explain_key(key) shows what went into this key).")
    return ReplayMiss("\n".join(lines), key=key, model=model, what=what)

