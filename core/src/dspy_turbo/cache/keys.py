"""Canonical request -> cache key.

A key is ``<namespace>:v<KEY_VERSION>:<xxh3-128 of the canonical JSON>``. The canonical
JSON sorts every dict, so dict and keyword order never matter; the sync and async doors
of the same DSPy call map to one identifier, so ``lm(...)`` and ``await lm.acall(...)``
share an entry. The endpoint (``api_base``/``base_url``) is identity unless
``include_endpoint`` is off: two servers answering to one model name are different models.

**Credentials** are left out of *LM requests* only (DSPy's own doors, ``dspy.clients.*``,
and a request that names no function):
LiteLLM's authentication parameters, credential headers inside ``extra_headers``/``headers``
and credentials inside ``extra_body``, so a rotated key keeps its cache. The arguments of
a user's own function (``request_cache``, ``@dspy_turbo.cached``) are always identity,
whatever they are called; only what the caller asks to ignore is left out.

**Values** are keyed as DSPy keys them, soundly: JSON as is; a pydantic model by
``model_dump``, a pydantic class by its schema; sets, bytes, dataclasses, numpy values,
``Decimal`` and paths by type and value; a callable by what decides what it does (its
code, defaults, closure cells, a partial's arguments, a bound method's receiver, see
:func:`callable_identity`). Anything else (a plain object, a lock, a client) cannot be
keyed: :class:`Unkeyable` is raised and the request is not cached, as DSPy does not cache
it either. Objects are never asked for attributes they do not have (a ``MagicMock`` grows
one on every question).

Bump ``KEY_VERSION`` whenever canonicalisation changes, so old entries are simply missed.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import functools
import inspect
import itertools
import pathlib
import threading
import types
import uuid
import weakref
from typing import Any

import orjson
import pydantic
import xxhash

KEY_VERSION = 2

# LiteLLM's authentication parameters (litellm 1.110: the credential fields of
# litellm.types.router.CredentialLiteLLMParams, which also holds the fields that choose an
# endpoint, a region, a project or an API version: those stay identity), its
# workload-identity secrets (litellm.types.workload_identity.WIF_SECRET_BEARING_KEYS), and
# DSPy's own client setting azure_ad_token_provider (dspy.clients.backend_selection.CLIENT_KEYS).
LM_CREDENTIALS = frozenset({
    "api_key",
    # Azure OAuth
    "azure_ad_token", "azure_ad_token_provider", "tenant_id", "client_id", "client_secret", "azure_scope",
    "azure_username", "azure_password",
    # Vertex AI
    "vertex_credentials",
    # AWS (Bedrock, SageMaker) and S3
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_session_name", "aws_profile_name",
    "aws_role_name", "aws_web_identity_token", "aws_external_id", "aws_session_tags",
    "s3_access_key_id", "s3_secret_access_key",
    # Anthropic and OpenAI workload identity federation, OAuth token exchange
    "anthropic_federation_rule_id", "anthropic_organization_id", "anthropic_service_account_id",
    "anthropic_federation_workspace_id", "anthropic_identity_token_file", "anthropic_identity_token",
    "anthropic_identity_source", "anthropic_issuer_url", "anthropic_issuer_subject", "anthropic_issuer_audience",
    "anthropic_issuer_ttl_seconds", "anthropic_issuer_signing_key_ref", "anthropic_keycloak_token_url",
    "anthropic_keycloak_client_id", "anthropic_keycloak_auth_method", "anthropic_keycloak_client_secret_ref",
    "anthropic_keycloak_scope",
    "openai_identity_provider_id", "openai_service_account_id", "openai_identity_token_file",
    "token_exchange_endpoint", "token_exchange_profile", "token_exchange_scope", "token_exchange_audience",
})
# Header names that carry a credential, compared lower-case: LiteLLM's auth headers
# (litellm.types.mcp_server.mcp_server_manager: authorization, x-api-key, api-key, apikey),
# plus the proxy, Google and cookie forms.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "apikey",
                                "x-goog-api-key", "cookie"})
_HEADER_FIELDS = ("extra_headers", "headers")
_BODY_FIELDS = ("extra_body",)
_NESTED_FIELDS = (*_HEADER_FIELDS, *_BODY_FIELDS)
ENDPOINT_FIELDS = frozenset({"api_base", "base_url"})
# The ``_fn_identifier`` of every request DSPy's LM and embedding doors make.
LM_DOOR_PREFIX = "dspy.clients."

# DSPy names the async door of each cached call differently; one request, one entry.
_ASYNC_TO_SYNC = {
    "dspy.clients.lm15.complete.async": "dspy.clients.lm15.complete",
    "dspy.clients.lm.alitellm_completion": "dspy.clients.lm.litellm_completion",
    "dspy.clients.lm.alitellm_text_completion": "dspy.clients.lm.litellm_text_completion",
    "dspy.clients.lm.alitellm_responses_completion": "dspy.clients.lm.litellm_responses_completion",
    "dspy.clients.embedding._cached_acompute_embeddings": "dspy.clients.embedding._cached_compute_embeddings",
}

# No OPT_NON_STR_KEYS ({1: x} and {"1": x} would share a key: such dicts are tagged instead,
# see _tag_keys) and no OPT_SERIALIZE_NUMPY (an array and a list of the same numbers would).
_DUMPS_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS


class Unkeyable(TypeError):
    """A value cannot be part of a cache key (the request is not cached)."""


def qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None) or '?'}.{getattr(obj, '__qualname__', None) or type(obj).__qualname__}"


# -- callables ---------------------------------------------------------------------------------


def _const(value: Any) -> Any:
    """A code constant as stable text: nested code by digest, frozensets sorted (their
    order follows string hashing, which differs from process to process)."""
    if isinstance(value, types.CodeType):
        return _code_digest(value)
    if isinstance(value, frozenset):
        return ("frozenset", sorted(repr(_const(v)) for v in value))
    if isinstance(value, tuple):
        return tuple(_const(v) for v in value)
    return value


@functools.lru_cache(maxsize=8192)
def _code_digest(code: types.CodeType) -> str:
    """What a code object does: bytecode, constants (nested functions and comprehensions by
    their own digest), the names it reads and its argument layout; line numbers and file
    names are left out, so moving a function does not change its key."""
    h = xxhash.xxh3_128(code.co_code)
    h.update(repr((_const(code.co_consts), code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                   code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)).encode())
    return h.hexdigest()


_PROCESS = uuid.uuid4().hex[:12]
_TOKENS: dict[int, tuple[weakref.ref, str]] = {}
# Objects that take no weak reference (a list, a dict) are held here while they have a token,
# so their id() cannot be reused meanwhile; the oldest are forgotten first (their next call
# is a miss, never a wrong hit).
_HELD: collections.OrderedDict[int, tuple[Any, str]] = collections.OrderedDict()
_HELD_MAX = 10_000
_TOKEN_LOCK = threading.Lock()
_COUNTER = itertools.count()


def instance_identity(obj: Any) -> str:
    """An object by its identity: a token unique to this object in this process (never
    reused, unlike ``id()``, and never shared by another process). Its state is not read."""
    ident = id(obj)
    found = _TOKENS.get(ident)
    if found is not None and found[0]() is obj:
        return found[1]
    held = _HELD.get(ident)
    if held is not None and held[0] is obj:
        return held[1]
    with _TOKEN_LOCK:
        found = _TOKENS.get(ident)
        if found is not None and found[0]() is obj:
            return found[1]
        held = _HELD.get(ident)
        if held is not None and held[0] is obj:
            return held[1]
        token = f"<instance:{qualified(type(obj))}:{_PROCESS}:{next(_COUNTER)}>"

        def forget(ref: weakref.ref, ident: int = ident) -> None:
            if _TOKENS.get(ident, (None,))[0] is ref:
                _TOKENS.pop(ident, None)

        try:
            _TOKENS[ident] = (weakref.ref(obj, forget), token)
        except TypeError:  # no weak reference to it: hold it
            _HELD[ident] = (obj, token)
            while len(_HELD) > _HELD_MAX:
                _HELD.popitem(last=False)
        return token


def _class_identity(cls: type) -> Any:
    if issubclass(cls, pydantic.BaseModel):
        return cls.model_json_schema()  # as DSPy: a response_format is its schema
    name = qualified(cls)
    if "<locals>" in name:  # made by a function: its name does not tell two such classes apart
        return {"<class>": name, "id": instance_identity(cls)}
    return {"<class>": name}


_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes, complex, decimal.Decimal, range,
                        datetime.date, datetime.datetime, datetime.time, datetime.timedelta, uuid.UUID})


def _frozen(value: Any) -> bool:
    """A value that cannot change: it counts by value wherever it is captured."""
    if type(value) in _IMMUTABLE or isinstance(value, (enum.Enum, pathlib.PurePath)):
        return True
    if isinstance(value, type):
        return False
    if dataclasses.is_dataclass(value):
        return type(value).__dataclass_params__.frozen
    if isinstance(value, pydantic.BaseModel):
        return bool(type(value).model_config.get("frozen"))
    return False


def _by_identity(obj: Any, identity: bool) -> str:
    if not identity:
        raise Unkeyable(f"a {qualified(type(obj))} counts by identity, and this request holds a copy of it "
                        "(DSPy copies every request before keying it)")
    return instance_identity(obj)


def _captured(value: Any, seen: frozenset[int], identity: bool) -> Any:
    """A value a callable carries (closure cell, default, partial argument): a callable by
    its own identity; an immutable value as itself; anything mutable (a list, a dict, an
    object) by identity, as Python shares it: the same object, whatever it holds now."""
    if _frozen(value):
        return value
    if type(value) is tuple:
        return [_captured(v, seen, identity) for v in value]
    if type(value) is frozenset:
        return {"<frozenset>": sorted((_captured(v, seen, identity) for v in value), key=repr)}
    if isinstance(value, type):
        return _class_identity(value)
    if callable(value) and not isinstance(value, pydantic.BaseModel):
        return callable_identity(value, seen, identity=identity)
    return _by_identity(value, identity)


def callable_identity(fn: Any, seen: frozenset[int] = frozenset(), *, identity: bool = True) -> Any:
    """What decides what a callable does, as a JSON-able value:

    - a function: its qualified name, its code, defaults, keyword defaults and closure
      cells (closures made by one factory over different values differ);
    - a ``functools.partial``: the function and its bound arguments;
    - a bound method: the function and its receiver (by identity, see
      :func:`instance_identity`; a class for a classmethod);
    - a builtin: its qualified name (and receiver);
    - a class: its name (a pydantic model: its schema);
    - any other callable object: its identity.

    What a callable carries counts by value when it cannot change (numbers, strings,
    tuples, frozen dataclasses...) and by identity otherwise (a list, a dict, a client):
    the same object, whatever it holds at the time.

    ``identity=False``: ``fn`` is a copy (DSPy deep-copies a request before keying it), so
    nothing outside a function's own closure and defaults (which copying shares) can count
    by identity: such a callable raises :class:`Unkeyable`.
    """
    if isinstance(fn, type):
        return _class_identity(fn)
    if id(fn) in seen:  # a recursive closure refers to itself
        return {"<recursive>": qualified(fn)}
    seen = seen | {id(fn)}
    if isinstance(fn, types.FunctionType):
        # A function is never copied (copy.deepcopy returns it as is): what it carries is
        # the program's own, and may count by identity.
        out: dict[str, Any] = {"<function>": qualified(fn), "code": _code_digest(fn.__code__)}
        if fn.__defaults__:
            out["defaults"] = [_captured(v, seen, True) for v in fn.__defaults__]
        if fn.__kwdefaults__:
            out["kwdefaults"] = {k: _captured(v, seen, True) for k, v in fn.__kwdefaults__.items()}
        if fn.__closure__:
            cells = []
            for cell in fn.__closure__:
                try:
                    cells.append(_captured(cell.cell_contents, seen, True))
                except ValueError:  # an empty cell (a name not yet bound)
                    cells.append("<empty>")
            out["closure"] = cells
        return out
    if isinstance(fn, types.MethodType):
        return {"<method>": callable_identity(fn.__func__, seen, identity=identity),
                "self": receiver_identity(fn.__self__, identity)}
    if isinstance(fn, functools.partial):
        return {"<partial>": callable_identity(fn.func, seen, identity=identity),
                "args": [_captured(a, seen, identity) for a in fn.args],
                "keywords": {k: _captured(v, seen, identity) for k, v in fn.keywords.items()}}
    if isinstance(fn, (types.BuiltinFunctionType, types.MethodWrapperType)):
        receiver = fn.__self__
        if receiver is None or isinstance(receiver, types.ModuleType):
            return {"<builtin>": qualified(fn)}
        return {"<builtin>": qualified(fn), "self": receiver_identity(receiver, identity)}
    if isinstance(fn, (types.WrapperDescriptorType, types.MethodDescriptorType, types.ClassMethodDescriptorType)):
        return {"<builtin>": f"{fn.__objclass__.__module__}.{fn.__qualname__}"}
    return {"<callable>": _by_identity(fn, identity)}


def receiver_identity(obj: Any, identity: bool = True) -> Any:
    """A method's receiver (``self``): a class by name, an immutable value as itself
    (``"abc".upper``), anything else by identity, never by its state."""
    if isinstance(obj, type):
        return _class_identity(obj)
    if _frozen(obj):
        return obj
    return _by_identity(obj, identity)


def _argument(value: Any) -> Any:
    """A ``@cached`` function's argument: the caller's own object (not a copy), so a callable
    may count by identity; anything else is keyed as a value."""
    if callable(value) and not isinstance(value, (type, pydantic.BaseModel)):
        return callable_identity(value)
    return value


# -- values ------------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    """orjson's fallback for what JSON cannot hold (see the module docstring)."""
    if isinstance(value, type):
        return _class_identity(value)
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return {f"<{type(value).__name__}>": sorted(value, key=repr)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"<bytes>": xxhash.xxh3_128_hexdigest(value)}
    if dataclasses.is_dataclass(value):
        return {"<dataclass>": qualified(type(value)),
                "fields": {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}}
    if type(value).__module__ == "numpy":
        return _numpy(value)
    if isinstance(value, decimal.Decimal):
        return {"<decimal>": str(value)}
    if isinstance(value, complex):
        return {"<complex>": [value.real, value.imag]}
    if isinstance(value, range):
        return {"<range>": [value.start, value.stop, value.step]}
    if isinstance(value, datetime.timedelta):
        return {"<timedelta>": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, pathlib.PurePath):
        return {f"<{type(value).__name__}>": str(value)}
    if callable(value):
        return callable_identity(value, identity=False)
    raise Unkeyable(f"a {qualified(type(value))} cannot be part of a cache key")


def _numpy(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise Unkeyable("a numpy array of Python objects cannot be part of a cache key")
        return {"<ndarray>": value.dtype.str, "shape": list(value.shape),
                "data": xxhash.xxh3_128_hexdigest(np.ascontiguousarray(value).data)}
    if isinstance(value, np.generic):
        return {"<numpy>": value.dtype.str, "value": value.item()}
    raise Unkeyable(f"a {qualified(type(value))} cannot be part of a cache key")


def _tag_keys(value: Any, depth: int = 0) -> Any:
    """``value`` with every dict that has a non-string key written as tagged pairs, so
    ``{1: x}`` and ``{"1": x}`` stay apart. Only used when orjson refused a dict key."""
    if depth > 200:
        raise Unkeyable("a value nested more than 200 deep cannot be part of a cache key")
    if isinstance(value, dict):
        if all(type(k) is str for k in value):
            return {k: _tag_keys(v, depth + 1) for k, v in value.items()}
        pairs = [(orjson.dumps(_tag_keys(k, depth + 1), default=_default, option=_DUMPS_OPTIONS),
                  _tag_keys(v, depth + 1)) for k, v in value.items()]
        pairs.sort(key=lambda pair: pair[0])
        return {"<dict>": [[orjson.Fragment(k), v] for k, v in pairs]}
    if isinstance(value, (list, tuple)):
        return [_tag_keys(v, depth + 1) for v in value]
    return value


def dumps(value: Any) -> bytes:
    """The canonical JSON of ``value``; raises :class:`Unkeyable` when it cannot be keyed."""
    try:
        return orjson.dumps(value, default=_default, option=_DUMPS_OPTIONS)
    except TypeError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, Unkeyable) else exc
        if "Dict key must be str" not in str(exc):
            raise Unkeyable(str(cause)) from cause
    try:
        return orjson.dumps(_tag_keys(value), default=_default, option=_DUMPS_OPTIONS)
    except (TypeError, RecursionError) as exc:
        raise Unkeyable(str(exc)) from exc


# -- requests ----------------------------------------------------------------------------------


def _is_lm_door(ident: Any) -> bool:
    """DSPy's LM and embedding doors name themselves ``dspy.clients.*``; a request with no
    name at all (``dspy.cache.get({...})`` by hand) is taken as an LM request too, so its
    credentials stay out. A function of the program's own always has a name."""
    return ident is None or (type(ident) is str and ident.startswith(LM_DOOR_PREFIX))


def is_lm_request(request: dict[str, Any]) -> bool:
    return _is_lm_door(request.get("_fn_identifier"))


def _without_credentials(field: str, value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if field in _BODY_FIELDS:
        if any(k in LM_CREDENTIALS for k in value):
            return {k: v for k, v in value.items() if k not in LM_CREDENTIALS}
        return value
    if any(type(k) is str and k.lower() in CREDENTIAL_HEADERS for k in value):
        return {k: v for k, v in value.items() if not (type(k) is str and k.lower() in CREDENTIAL_HEADERS)}
    return value


def credential_free(request: dict[str, Any]) -> dict[str, Any]:
    """An LM request (or an LM's keyword arguments) without LiteLLM's credentials, at the top
    level and inside ``extra_headers``/``headers``/``extra_body``."""
    out = {k: v for k, v in request.items() if k not in LM_CREDENTIALS}
    for field in _NESTED_FIELDS:
        value = out.get(field)
        if value:
            out[field] = _without_credentials(field, value)
    return out


class KeyBuilder:
    """Turns a request dict into a key; one per Turbo (namespace and options are fixed)."""

    def __init__(self, namespace: str, include_endpoint: bool = True, ignored: frozenset[str] = frozenset()):
        self.namespace = namespace
        self.include_endpoint = include_endpoint
        self.ignored = frozenset(ignored)
        self.prefix = f"{namespace}:v{KEY_VERSION}:"
        self._dropped = self.ignored | (frozenset() if include_endpoint else ENDPOINT_FIELDS)
        self._dropped_for: dict[tuple[tuple[str, ...], bool], frozenset[str]] = {}
        self._doors: dict[Any, tuple[bool, Any]] = {}
        self._last_drop: tuple[Any, bool, list[str], frozenset[str]] = (None, False, [], self._dropped)

    def _drop(self, ignored, lm: bool) -> frozenset[str]:
        last = self._last_drop  # DSPy passes one list (its IGNORED_CACHE_KEYS) on every call
        if last[0] is ignored and last[1] == lm and last[2] == ignored:
            return last[3]
        key = tuple(ignored) if ignored else ()
        dropped = self._dropped_for.get((key, lm))
        if dropped is None:
            # DSPy asks to ignore the endpoint too; we keep it unless configured otherwise.
            dropped = self._dropped | (frozenset(key) - ENDPOINT_FIELDS) | (LM_CREDENTIALS if lm else frozenset())
            if len(self._dropped_for) < 1024:
                self._dropped_for[(key, lm)] = dropped
        self._last_drop = (ignored, lm, list(key), dropped)
        return dropped

    def _door(self, ident: Any) -> tuple[bool, Any]:
        """(an LM request?, the identifier it counts under), remembered per identifier."""
        try:
            found = self._doors.get(ident)
        except TypeError:  # not hashable: not one of DSPy's doors
            return False, ident
        if found is None:
            found = (_is_lm_door(ident), _ASYNC_TO_SYNC.get(ident, ident))
            if len(self._doors) < 1024:
                self._doors[ident] = found
        return found

    def canonical(self, request: dict[str, Any], ignored: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
        """The request as it counts for identity: LM credentials out, endpoint per option,
        what the caller ignores out, doors unified."""
        ident = request.get("_fn_identifier")
        lm, unified = self._door(ident)
        dropped = self._drop(ignored, lm) if (ignored or lm) else self._dropped
        out = {k: v for k, v in request.items() if k not in dropped and not (k in ENDPOINT_FIELDS and v is None)}
        if lm:
            if unified is not ident:
                out["_fn_identifier"] = unified
            if "extra_headers" in out or "headers" in out or "extra_body" in out:
                for field in _NESTED_FIELDS:
                    value = out.get(field)
                    if value:
                        out[field] = _without_credentials(field, value)
        return out

    def dumps(self, request: dict[str, Any], ignored=None) -> bytes:
        return dumps(self.canonical(request, ignored))

    def key(self, request: dict[str, Any], ignored=None) -> str:
        return self.prefix + xxhash.xxh3_128_hexdigest(self.dumps(request, ignored))

    def explain(self, request: dict[str, Any], ignored=None) -> dict[str, Any]:
        """What went into a key, for humans: the canonical fields, what was left out and why."""
        canonical = self.canonical(request, ignored)
        lm = is_lm_request(request)
        left_out = {}
        for name, value in request.items():
            if name not in canonical:
                if lm and name in LM_CREDENTIALS:
                    left_out[name] = "credential: never part of a key"
                elif name in ENDPOINT_FIELDS:
                    left_out[name] = "endpoint: include_endpoint is off" if not self.include_endpoint else "unset"
                else:
                    left_out[name] = "ignored by the caller or by config"
            elif lm and isinstance(value, dict) and canonical[name] is not value:
                for inner in value:
                    if inner not in canonical[name]:
                        left_out[f"{name}.{inner}"] = "credential: never part of a key"
        ident = request.get("_fn_identifier")
        return {
            "key": self.key(request, ignored),
            "namespace": self.namespace,
            "key_version": KEY_VERSION,
            "fields": orjson.loads(self.dumps(request, ignored)),
            "left_out": left_out,
            "door": f"{ident} -> {_ASYNC_TO_SYNC[ident]} (async door shares the sync entry)" if ident in _ASYNC_TO_SYNC else ident,
        }


# -- @dspy_turbo.cached ------------------------------------------------------------------------


def function_identity(fn: Any) -> Any:
    return callable_identity(fn)


def is_method(fn: Any) -> bool:
    """A function defined in a class body whose first parameter is ``self``."""
    parts = getattr(fn, "__qualname__", "").split(".")
    if len(parts) < 2 or parts[-2] == "<locals>":
        return False
    try:
        first = next(iter(inspect.signature(fn).parameters), None)
    except (TypeError, ValueError):
        return False
    return first == "self"


def function_request(fn: Any, args: tuple, kwargs: dict[str, Any], *, ignore: frozenset[str] = frozenset(),
                     method: bool = False, key: Any = None) -> dict[str, Any]:
    """The request dict for a plain function call (``@dspy_turbo.cached``).

    The function counts by :func:`callable_identity` (two closures of one factory differ);
    its arguments are bound with defaults applied, a method's ``self`` by identity. With
    ``key``, the function counts by its qualified name and code, and ``key(*args, **kwargs)``
    stands for everything else (arguments, closure, instance).
    """
    if key is not None:  # the caller says what identifies a call: the function counts by name and code only
        code = getattr(fn, "__code__", None)
        identity = {"<function>": qualified(fn), "code": _code_digest(code) if isinstance(code, types.CodeType) else None}
        return {"_fn_identifier": "dspy_turbo.cached", "function": identity, "key": key(*args, **kwargs)}
    try:
        identity = function_identity(fn)
    except Unkeyable as exc:
        raise Unkeyable(f"{qualified(fn)} itself: {exc}") from exc
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
    except (TypeError, ValueError):
        arguments = {**{f"positional_arg_{i}": a for i, a in enumerate(args)}, **kwargs}
    for name in ignore:
        arguments.pop(name, None)
    for name, value in arguments.items():
        try:
            arguments[name] = receiver_identity(value) if method and name == "self" else _argument(value)
        except Unkeyable as exc:
            raise Unkeyable(f"argument {name!r} of {qualified(fn)}: {exc} (pass ignore=[{name!r}] or key=...)") from exc
    return {"_fn_identifier": "dspy_turbo.cached", "function": identity, "arguments": arguments}


def unkeyable_argument(fn: Any, request: dict[str, Any]) -> str:
    """Which part of a ``function_request`` cannot be keyed, for the event's message."""
    for name, value in (request.get("arguments") or {}).items():
        try:
            dumps(value)
        except Unkeyable as exc:
            return f"argument {name!r} of {qualified(fn)}: {exc} (pass ignore=[{name!r}] or key=...)"
    if "key" in request:
        try:
            dumps(request["key"])
        except Unkeyable as exc:
            return f"the key= of {qualified(fn)} returned what cannot be keyed: {exc}"
    return f"{qualified(fn)} itself: what it captures cannot be keyed"
