"""Canonical request -> cache key.

A key is ``<namespace>:v<KEY_VERSION>:<xxh3-128 of the canonical JSON>``. The canonical
JSON sorts every dict, so dict and keyword order never matter; the sync and async doors
of the same DSPy call map to one identifier, so ``lm(...)`` and ``await lm.acall(...)``
share an entry. Credentials never enter a key. The endpoint (``api_base``/``base_url``)
does, unless ``include_endpoint`` is off: two servers answering to one model name are
different models.

Bump ``KEY_VERSION`` whenever canonicalisation changes, so old entries are simply missed.
"""

from __future__ import annotations

import inspect
from typing import Any

import orjson
import pydantic
import xxhash

KEY_VERSION = 1

# Never part of identity (and never shown by explain_key).
SECRET_FIELDS = frozenset({"api_key", "api_token", "token", "password", "authorization", "headers", "extra_headers"})
ENDPOINT_FIELDS = frozenset({"api_base", "base_url"})

# DSPy names the async door of each cached call differently; one request, one entry.
_ASYNC_TO_SYNC = {
    "dspy.clients.lm15.complete.async": "dspy.clients.lm15.complete",
    "dspy.clients.lm.alitellm_completion": "dspy.clients.lm.litellm_completion",
    "dspy.clients.lm.alitellm_text_completion": "dspy.clients.lm.litellm_text_completion",
    "dspy.clients.lm.alitellm_responses_completion": "dspy.clients.lm.litellm_responses_completion",
    "dspy.clients.embedding._cached_acompute_embeddings": "dspy.clients.embedding._cached_compute_embeddings",
}

_DUMPS_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _callable_identity(fn: Any) -> str:
    code = getattr(fn, "__code__", None)
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    if code is None:
        return f"<callable:{name}>"
    # The bytecode and constants tell two lambdas apart without reading source files.
    body = xxhash.xxh3_64_hexdigest(code.co_code + repr(code.co_consts).encode())
    return f"<callable:{name}:{body}>"


def _default(value: Any) -> Any:
    """orjson fallback for what DSPy puts in requests that JSON cannot hold."""
    if isinstance(value, type) and issubclass(value, pydantic.BaseModel):
        return value.model_json_schema()
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (bytes, bytearray)):
        return {"<bytes>": xxhash.xxh3_128_hexdigest(value)}
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return value.model_dump()
    if callable(value):
        return _callable_identity(value)
    if hasattr(value, "__dict__"):
        return {"<object>": type(value).__qualname__, **vars(value)}
    raise TypeError(f"cannot put a {type(value).__name__} into a cache key")


class KeyBuilder:
    """Turns a request dict into a key; one per Turbo (namespace and options are fixed)."""

    def __init__(self, namespace: str, include_endpoint: bool = True, ignored: frozenset[str] = frozenset()):
        self.namespace = namespace
        self.include_endpoint = include_endpoint
        self.ignored = frozenset(ignored)
        self.prefix = f"{namespace}:v{KEY_VERSION}:"
        self._dropped = SECRET_FIELDS | self.ignored | (frozenset() if include_endpoint else ENDPOINT_FIELDS)
        self._dropped_for: dict[tuple[str, ...], frozenset[str]] = {}

    def _drop(self, ignored) -> frozenset[str]:
        if not ignored:
            return self._dropped
        ignored = tuple(ignored)
        dropped = self._dropped_for.get(ignored)
        if dropped is None:
            # DSPy asks to ignore the endpoint too; we keep it unless configured otherwise.
            dropped = self._dropped | (frozenset(ignored) - ENDPOINT_FIELDS)
            self._dropped_for[ignored] = dropped
        return dropped

    def canonical(self, request: dict[str, Any], ignored: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
        """The request as it counts for identity: secrets out, endpoint per option, doors unified."""
        dropped = self._drop(ignored)
        out = {k: v for k, v in request.items() if k not in dropped and not (k in ENDPOINT_FIELDS and v is None)}
        ident = out.get("_fn_identifier")
        if ident in _ASYNC_TO_SYNC:
            out["_fn_identifier"] = _ASYNC_TO_SYNC[ident]
        return out

    def dumps(self, request: dict[str, Any], ignored=None) -> bytes:
        return orjson.dumps(self.canonical(request, ignored), default=_default, option=_DUMPS_OPTIONS)

    def key(self, request: dict[str, Any], ignored=None) -> str:
        return self.prefix + xxhash.xxh3_128_hexdigest(self.dumps(request, ignored))

    def explain(self, request: dict[str, Any], ignored=None) -> dict[str, Any]:
        """What went into a key, for humans: the canonical fields, what was left out and why."""
        canonical = self.canonical(request, ignored)
        left_out = {}
        for name in request:
            if name in canonical:
                continue
            if name in SECRET_FIELDS:
                left_out[name] = "secret: never part of a key"
            elif name in ENDPOINT_FIELDS:
                left_out[name] = "endpoint: include_endpoint is off" if not self.include_endpoint else "unset"
            else:
                left_out[name] = "ignored by the caller or by config"
        ident = request.get("_fn_identifier")
        return {
            "key": self.key(request, ignored),
            "namespace": self.namespace,
            "key_version": KEY_VERSION,
            "fields": orjson.loads(orjson.dumps(canonical, default=_default, option=_DUMPS_OPTIONS)),
            "left_out": left_out,
            "door": f"{ident} -> {_ASYNC_TO_SYNC[ident]} (async door shares the sync entry)" if ident in _ASYNC_TO_SYNC else ident,
        }


def function_request(fn: Any, args: tuple, kwargs: dict[str, Any], *, ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The request dict for a plain function call (``@dspy_turbo.cached``): bound, defaults applied."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
    except (TypeError, ValueError):
        arguments = {**{f"positional_arg_{i}": a for i, a in enumerate(args)}, **kwargs}
    for name in ignore:
        arguments.pop(name, None)
    return {"_fn_identifier": f"{fn.__module__}.{fn.__qualname__}", "arguments": arguments}
