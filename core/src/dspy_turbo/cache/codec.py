"""Values <-> JSON data that round-trips them exactly, and never pickle.

A value is stored as ``(tag, data)``. Tag ``json``: the value *is* plain JSON (dicts with
string keys, lists, strings, 64-bit integers, finite floats, booleans, ``None``) and
``data`` is the value itself: the common case (DSPy's own LM records, embeddings), with
no work beyond the JSON parser. Tag ``typed``: ``data`` is a JSON tree in which every node
that plain JSON cannot say exactly is an object of one key naming its type, e.g.
``{"$tuple": [1, 2]}``, ``{"$float": "nan"}``, ``{"$dict": [[1, "a"]]}`` (non-string keys),
``{"$set": [...]}``, ``{"$bytes": "<base64>"}``, ``{"$datetime": [iso, zone]}``,
``{"$decimal": "1.10"}``, ``{"$uuid": ...}``; inside a typed tree, a dict that has a key
starting with ``$`` is written as ``$dict`` too, so no stored dict is mistaken for a tag.

Types that carry a class (enums, dataclasses, pydantic models) are written with the
class's import path and read back only if that path is on the **allow-list** (DSPy's
``safe_types``): ``cache.safe_types`` in the YAML, :func:`register_codec` in code, or
``dspy.configure_cache(safe_types=[...])`` while a Turbo is installed. Decoding never
imports a module that cache contents name: only allow-listed paths are ever imported.
Built in: LiteLLM's response types (``ModelResponse``, ``TextCompletionResponse``,
``ResponsesAPIResponse``, ``EmbeddingResponse``, with ``_hidden_params`` such as
``response_cost``), ``dspy.Prediction``, DSPy's own types (``dspy.Image``, ``dspy.History``,
...), numpy arrays and scalars.

A value that none of this covers, or nested deeper than ``MAX_DEPTH`` levels, is not
cached (``EncodeError``, whose ``reason`` is the ``skip_store`` event's); stored data that
does not decode (a tag or a class path not known, a payload of the wrong shape, too deep)
raises ``DecodeError``: a corrupt entry, a miss.

Each tag also knows how to *copy* a value: a hit hands the caller its own copy, so a
caller that mutates a result never changes the cache.
"""

from __future__ import annotations

import base64
import copy as _copy
import dataclasses
import datetime as _dt
import decimal
import enum
import importlib
import math
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

MAX_DEPTH = 64
"""Containers nested deeper than this are neither stored nor read back (a value that
deep is not an LM answer, and walking it risks the interpreter's recursion limit)."""


class EncodeError(TypeError):
    """The value cannot be stored exactly: it is not cached."""

    reason = "unencodable"
    """The ``skip_store`` event's reason."""


class TooDeep(EncodeError):
    reason = "too_deep"


class DecodeError(ValueError):
    """Stored data cannot be turned back into a value: treated as a corrupt entry, a miss."""


@dataclass(frozen=True)
class Codec:
    """A codec of your own for one type: ``matches(value)``, ``encode(value)`` to data the
    entry codec can store (it is encoded in turn), ``decode(data)`` back, ``copy(value)``."""

    tag: str
    matches: Callable[[Any], bool]
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]
    copy: Callable[[Any], Any] = _copy.deepcopy


# -- the allow-list ------------------------------------------------------------------------


def type_path(cls: type) -> str:
    """A class's import path as the allow-list and stored entries name it: ``module:QualName``."""
    return f"{cls.__module__}:{cls.__qualname__}"


class SafeTypes:
    """The classes whose instances may be stored and read back by import path.

    Process-wide, like DSPy's ``dspy.cache``: every Turbo of the process adds its
    ``cache.safe_types``. A path given as text is imported the first time an entry names
    it (never before, never one the allow-list does not name)."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}
        self._pending: set[str] = set()  # "module:QualName" or "module.QualName", not imported yet
        self._lock = threading.Lock()
        self._builtins = False  # DSPy's own types, added on first use (importing dspy is not light)

    def _load_builtins(self) -> None:
        self._builtins = True
        _dspy_types(self)

    def add(self, item: type | str) -> None:
        if isinstance(item, type):
            with self._lock:
                self._classes[type_path(item)] = item
            return
        if not isinstance(item, str) or not valid_type_path(item):
            raise TypeError(f"a safe type is a class or an import path 'module:QualName' (or 'module.QualName'), "
                            f"got {item!r}")
        with self._lock:
            if item not in self._classes:
                self._pending.add(item)

    def allows(self, cls: type) -> bool:
        if not self._builtins:
            self._load_builtins()
        path = type_path(cls)
        found = self._classes.get(path)
        if found is None and self._pending:
            found = self.resolve(path)
        return found is cls

    def resolve(self, path: str) -> type | None:
        """The allow-listed class named ``path`` (``module:QualName``), or None; imports only
        modules that the allow-list itself names."""
        if not self._builtins:
            self._load_builtins()
        found = self._classes.get(path)
        if found is not None or not self._pending:
            return found
        with self._lock:
            pending = [p for p in self._pending if _canonical_candidates(p, path)]
        for entry in pending:
            cls = _import_path(entry)
            if cls is not None:
                with self._lock:
                    self._classes[type_path(cls)] = cls
                    self._pending.discard(entry)
        return self._classes.get(path)

    def paths(self) -> list[str]:
        with self._lock:
            return sorted({*self._classes, *self._pending})


def valid_type_path(text: str) -> bool:
    """Is ``text`` shaped like an import path of a class (``module:QualName`` or ``module.QualName``)?"""
    module, sep, qualname = text.partition(":")
    if not sep:
        module, _, qualname = text.rpartition(".")
    parts = [*module.split("."), *qualname.split(".")]
    return bool(module and qualname) and all(p.isidentifier() for p in parts)


def _canonical_candidates(entry: str, path: str) -> bool:
    """Could allow-list ``entry`` name the class at ``path``? (Text only: nothing imported.)"""
    if ":" in entry:
        return entry == path
    return entry == path.replace(":", ".")


def _import_path(entry: str) -> type | None:
    """Import an allow-list entry's class: ``module:QualName``, or ``a.b.C`` tried as module
    ``a.b`` with ``C``, then ``a`` with ``b.C``. None when it names no class."""
    if ":" in entry:
        splits = [tuple(entry.split(":", 1))]
    else:
        parts = entry.split(".")
        splits = [(".".join(parts[:i]), ".".join(parts[i:])) for i in range(len(parts) - 1, 0, -1)]
    for module_name, qualname in splits:
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for name in qualname.split("."):
                obj = getattr(obj, name)
        except AttributeError:
            continue
        if isinstance(obj, type):
            return obj
    return None


SAFE_TYPES = SafeTypes()
_CODECS: dict[str, Codec] = {}
_CUSTOM: list[Codec] = []  # later registrations first


def register_codec(*items: type | str | Codec | Iterable[type | str]) -> None:
    """Allow classes to be cached by import path (DSPy's ``safe_types``)::

        dspy_turbo.register_codec(MyAnswer, "myapp.models:Verdict")

    Enums, dataclasses and pydantic models are stored field by field and rebuilt from an
    allow-listed class only. A :class:`Codec` registers a codec of your own instead."""
    for item in items:
        if isinstance(item, Codec):
            if item.tag in _CODECS:
                _CUSTOM.remove(_CODECS[item.tag])
            _CODECS[item.tag] = item
            _CUSTOM.insert(0, item)
        elif isinstance(item, (type, str)):
            SAFE_TYPES.add(item)
        else:
            for each in item:
                register_codec(each)


# -- encoding ------------------------------------------------------------------------------

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson writes as a number


def _is_json(value: Any, depth: int = 0) -> bool:
    """Plain JSON that reads back exactly as it is (the ``json`` tag): no tuples, no
    non-finite floats, no integers past 64 bits, string keys only."""
    kind = type(value)
    if kind is dict:
        for k in value:
            if type(k) is not str:
                return False
        items = value.values()
    elif kind is list:
        items = value
    else:
        return _json_leaf(value)
    if depth >= MAX_DEPTH:
        return False
    for v in items:
        leaf = type(v)
        if leaf is str or leaf is bool or v is None:
            continue
        if leaf is int:
            if _INT_MIN <= v <= _INT_MAX:
                continue
            return False
        if leaf is float:
            if v - v == 0.0:  # finite (inf - inf and nan - nan are nan)
                continue
            return False
        if not _is_json(v, depth + 1):
            return False
    return True


def _json_leaf(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return _INT_MIN <= value <= _INT_MAX
    if kind is float:
        return math.isfinite(value)
    return False


def encode_value(value: Any) -> tuple[str, Any]:
    """``(tag, json_data)`` for a value, or ``EncodeError`` (``TooDeep`` past ``MAX_DEPTH``)."""
    if _is_json(value):
        return "json", value
    try:
        return "typed", _enc(value, 0)
    except EncodeError:
        raise
    except RecursionError:
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels") from None
    except Exception as exc:  # a type's own encoder that cannot handle this particular value
        raise EncodeError(f"{_name(type(value))}: {exc}") from exc


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _enc(v: Any, depth: int) -> Any:
    t = type(v)
    if t is str or t is bool or v is None:
        return v
    if t is int:
        return v if _INT_MIN <= v <= _INT_MAX else {"$int": str(v)}
    if t is float:
        return v if math.isfinite(v) else {"$float": repr(v)}
    if depth >= MAX_DEPTH:
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels")
    d = depth + 1
    if t is list:
        return [_enc(x, d) for x in v]
    if t is dict:
        for k in v:
            if type(k) is not str or k[:1] == "$":
                return {"$dict": [[_enc(k, d), _enc(x, d)] for k, x in v.items()]}
        return {k: _enc(x, d) for k, x in v.items()}
    if t is tuple:
        return {"$tuple": [_enc(x, d) for x in v]}
    encoder = _BY_TYPE.get(t)
    if encoder is not None:
        return encoder(v, d)
    for codec in _CUSTOM:
        if codec.matches(v):
            return {"$codec": [codec.tag, _enc(codec.encode(v), d)]}
    for check, encoder in _BY_CHECK:
        if check(v):
            return encoder(v, d)
    raise EncodeError(f"type {_name(t)} is not cached (not plain data, not on the allow-list: cache.safe_types "
                      "or dspy_turbo.register_codec)")


def _enc_set(v, d):
    return {"$set" if type(v) is set else "$frozenset": [_enc(x, d) for x in v]}


def _enc_datetime(v: _dt.datetime, d):
    zone = getattr(v.tzinfo, "key", None)  # a zoneinfo zone keeps its name, not just today's offset
    return {"$datetime": [v.isoformat(), zone, v.fold]}


def _enc_time(v: _dt.time, d):
    return {"$time": [v.isoformat(), getattr(v.tzinfo, "key", None), v.fold]}


_BY_TYPE: dict[type, Callable[[Any, int], Any]] = {
    set: _enc_set,
    frozenset: _enc_set,
    bytes: lambda v, d: {"$bytes": base64.b64encode(v).decode()},
    bytearray: lambda v, d: {"$bytearray": base64.b64encode(v).decode()},
    _dt.datetime: _enc_datetime,
    _dt.date: lambda v, d: {"$date": v.isoformat()},
    _dt.time: _enc_time,
    _dt.timedelta: lambda v, d: {"$timedelta": [v.days, v.seconds, v.microseconds]},
    decimal.Decimal: lambda v, d: {"$decimal": str(v)},
    uuid.UUID: lambda v, d: {"$uuid": str(v)},
    complex: lambda v, d: {"$complex": [_enc(v.real, d), _enc(v.imag, d)]},
}


def _allowed_class(cls: type) -> str:
    if not SAFE_TYPES.allows(cls):
        raise EncodeError(f"type {_name(cls)} is not on the allow-list (cache.safe_types or dspy_turbo.register_codec)")
    return type_path(cls)


def _enc_enum(v: enum.Enum, d):
    return {"$enum": [_allowed_class(type(v)), _enc(v.value, d)]}


def _enc_dataclass(v, d):
    path = _allowed_class(type(v))
    return {"$dataclass": [path, {f.name: _enc(getattr(v, f.name), d + 1) for f in dataclasses.fields(v)}]}


def _is_dataclass(v) -> bool:
    return dataclasses.is_dataclass(v) and not isinstance(v, type)


def _is_pydantic(v) -> bool:
    from pydantic import BaseModel  # pydantic is imported by then: the core depends on it

    return isinstance(v, BaseModel)


def _enc_pydantic(v, d):
    cls = type(v)
    litellm = _litellm_kind(cls)
    if litellm is not None:
        return _enc_litellm(litellm, v, d)
    path = _allowed_class(cls)
    fields = {name: _enc(getattr(v, name), d + 1) for name in cls.model_fields}
    extra = v.__pydantic_extra__ or {}
    data = {"fields": fields, "set": sorted(v.model_fields_set)}
    if extra:
        data["extra"] = {str(k): _enc(x, d + 1) for k, x in extra.items()}
    return {"$pydantic": [path, data]}


# -- LiteLLM's response types: rebuilt by their constructors, private attributes kept ------

_LITELLM = {  # kind -> (module, class name, private attributes DSPy or LiteLLM read on a hit)
    "ModelResponse": ("litellm.types.utils", "ModelResponse", ("_hidden_params", "_response_ms")),
    "TextCompletionResponse": ("litellm.types.utils", "TextCompletionResponse", ("_hidden_params", "_response_ms")),
    "EmbeddingResponse": ("litellm.types.utils", "EmbeddingResponse", ("_hidden_params", "_response_ms")),
    "ResponsesAPIResponse": ("litellm.types.llms.openai", "ResponsesAPIResponse", ("_hidden_params",)),
    "HiddenParams": ("litellm.types.llms.base", "HiddenParams", ()),  # a TextCompletionResponse's _hidden_params
}
_LITELLM_BY_CLASS: dict[tuple[str, str], str] = {(m, c): kind for kind, (m, c, _) in _LITELLM.items()}


def _litellm_kind(cls: type) -> str | None:
    return _LITELLM_BY_CLASS.get((cls.__module__, cls.__qualname__))


def _enc_litellm(kind: str, v, d):
    private = {}
    for name in _LITELLM[kind][2]:
        attr = getattr(v, name, None)
        if attr is None:
            continue
        if isinstance(attr, dict):
            # What can be kept exactly is kept (response_cost, the provider, timings); a value
            # that cannot (an SDK object) is left out rather than costing the whole entry.
            kept = {}
            for key, item in attr.items():
                try:
                    kept[key] = _enc(item, d + 2)
                except EncodeError:
                    continue
            private[name] = {"$dict": [[k, x] for k, x in kept.items()]}
        else:
            try:
                private[name] = _enc(attr, d + 1)
            except EncodeError:
                continue
    return {"$litellm": [kind, v.model_dump(mode="json"), private]}


def _dec_litellm(payload, depth):
    kind, fields, private = payload
    module, name, allowed = _LITELLM[kind]
    if type(fields) is not dict or type(private) is not dict:
        raise DecodeError(f"a {name} entry holds {type(fields).__name__}, not its fields")
    _check_depth(fields, depth)
    cls = getattr(importlib.import_module(module), name)  # a fixed, known module: never one an entry names
    value = cls.model_validate(fields) if kind in ("ResponsesAPIResponse", "HiddenParams") else cls(**fields)
    if kind == "ModelResponse":
        _restore_choice_fields(value, fields)
    for attr, data in private.items():
        if attr not in allowed:
            raise DecodeError(f"{name} has no private attribute {attr!r} to restore")
        setattr(value, attr, _dec(data, depth + 1))
    return value


def _restore_choice_fields(value, fields) -> None:
    """LiteLLM's constructor leaves out a choice's ``logprobs: null`` that the provider sent
    (a fresh response has it): put back what the stored choice had, as it had it."""
    for choice, stored in zip(value.choices, fields.get("choices") or (), strict=False):
        if type(stored) is dict and "logprobs" in stored and "logprobs" not in choice.__dict__:
            choice.logprobs = stored["logprobs"]


# -- numpy, dspy.Prediction ------------------------------------------------------------------


def _is_numpy(v) -> bool:
    cls = type(v)
    return cls.__module__ == "numpy" and (cls.__name__ == "ndarray" or hasattr(v, "dtype") and hasattr(v, "item"))


def _enc_numpy(v, d):
    import numpy as np

    if v.dtype.hasobject:
        raise EncodeError("numpy arrays of Python objects are not cached")
    scalar = type(v) is not np.ndarray
    array = np.asarray(v) if scalar else np.ascontiguousarray(v)  # (ascontiguousarray makes a scalar 1-d)
    data = {"dtype": array.dtype.str, "shape": list(array.shape), "b64": base64.b64encode(array.tobytes()).decode()}
    return {"$npscalar" if scalar else "$ndarray": data}


def _dec_numpy(data, scalar: bool):
    import numpy as np

    dtype = np.dtype(data["dtype"])
    if dtype.hasobject:
        raise DecodeError("refusing an object-dtype array")
    shape = data["shape"]
    if type(shape) is not list or len(shape) > MAX_DEPTH or not all(type(n) is int and n >= 0 for n in shape):
        raise DecodeError("a numpy entry's shape is not a list of sizes")
    array = np.frombuffer(base64.b64decode(data["b64"], validate=True), dtype=dtype).reshape(shape).copy()
    return array[()] if scalar else array


def _is_prediction(v) -> bool:
    cls = type(v)
    return cls.__name__ == "Prediction" and cls.__module__.startswith("dspy")


def _enc_prediction(v, d):
    data = {"fields": _enc(dict(v.items(include_dspy=True)), d + 1)}
    completions = getattr(v, "_completions", None)
    if completions is not None and len(completions) > 1:  # n > 1, BestOfN, majority: keep them all
        data["completions"] = [_enc(dict(c.items()), d + 2) for c in completions]
    return {"$prediction": data}


def _dec_prediction(data, depth):
    import dspy

    fields = _dec(data["fields"], depth + 1)
    if type(fields) is not dict or not all(type(k) is str for k in fields):
        raise DecodeError("a dspy.Prediction entry's fields are not a dict of names")
    if data.get("completions"):
        prediction = dspy.Prediction.from_completions([_dec(c, depth + 2) for c in data["completions"]])
        prediction._store = fields  # the chosen one may not be the first
        return prediction
    return dspy.Prediction(**fields)


def _dspy_types(safe: SafeTypes) -> None:
    """DSPy's own field types (``dspy.Image``, ``dspy.History``, ...) are allow-listed
    (pydantic models that DSPy programs return inside Predictions)."""
    try:
        import dspy.adapters.types as types
    except Exception:  # a DSPy without them: nothing to allow
        return
    for name in dir(types):
        cls = getattr(types, name)
        if isinstance(cls, type) and cls.__module__.startswith("dspy."):
            safe.add(cls)


# Checked in order for types not matched exactly (subclasses: enums before the builtins they
# derive from; numpy; pydantic before dataclass).
_BY_CHECK: list[tuple[Callable[[Any], bool], Callable[[Any, int], Any]]] = [
    (lambda v: isinstance(v, enum.Enum), _enc_enum),
    (_is_numpy, _enc_numpy),
    (_is_prediction, _enc_prediction),
    (_is_pydantic, _enc_pydantic),
    (_is_dataclass, _enc_dataclass),
]


# -- decoding ------------------------------------------------------------------------------


def _check_depth(value: Any, depth: int) -> None:
    """``DecodeError`` when plain data (a parser's output) nests past ``MAX_DEPTH``."""
    if not _shallow(value, depth):
        raise DecodeError(f"value nested deeper than {MAX_DEPTH} levels")


def _shallow(value: Any, depth: int) -> bool:
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list:
        items = value
    else:
        return True
    if depth >= MAX_DEPTH:
        return False
    depth += 1
    for v in items:
        t = type(v)
        if (t is dict or t is list) and not _shallow(v, depth):
            return False
    return True


def _dec(v: Any, depth: int) -> Any:
    t = type(v)
    if t is list:
        if depth >= MAX_DEPTH:
            raise DecodeError(f"value nested deeper than {MAX_DEPTH} levels")
        return [_dec(x, depth + 1) for x in v]
    if t is dict:
        if depth >= MAX_DEPTH:
            raise DecodeError(f"value nested deeper than {MAX_DEPTH} levels")
        if len(v) == 1:
            for key, payload in v.items():
                if key[:1] == "$":
                    decoder = _TAGS.get(key)
                    if decoder is None:
                        raise DecodeError(f"unknown type tag {key!r}")
                    return decoder(payload, depth + 1)
        out = {}
        for key, x in v.items():
            if key[:1] == "$":
                raise DecodeError(f"a stored dict has the reserved key {key!r}")
            out[key] = _dec(x, depth + 1)
        return out
    return v


def _list(payload, what: str) -> list:
    if type(payload) is not list:
        raise DecodeError(f"{what} holds {type(payload).__name__}, not a list")
    return payload


def _items(payload, depth):
    return [_dec(x, depth) for x in _list(payload, "a collection")]


def _dec_dict(payload, depth):
    out = {}
    for pair in _list(payload, "$dict"):
        if type(pair) is not list or len(pair) != 2:
            raise DecodeError("a $dict item is not a [key, value] pair")
        out[_dec(pair[0], depth)] = _dec(pair[1], depth)
    return out


def _dec_float(payload, depth):
    if payload not in ("nan", "inf", "-inf"):
        raise DecodeError(f"$float holds {payload!r}, not nan, inf or -inf")
    return float(payload)


def _dec_int(payload, depth):
    if type(payload) is not str or len(payload) > 5000:  # str -> int is quadratic; Python caps it at 4300 digits
        raise DecodeError("$int holds no digits")
    return int(payload)


def _zone(name):
    if name is None:
        return None
    from zoneinfo import ZoneInfo

    if type(name) is not str:
        raise DecodeError("a time zone name is not text")
    return ZoneInfo(name)


def _dec_clock(cls, tag):
    """A decoder for ``datetime`` or ``time``: ISO text, then its zone by name and its fold."""
    def decode(payload, depth):
        text, zone, fold = _list(payload, tag)
        value = cls.fromisoformat(text)
        if zone is not None:
            value = value.replace(tzinfo=_zone(zone))
        return value.replace(fold=fold)
    return decode


def _resolve(path) -> type:
    if type(path) is not str:
        raise DecodeError("a class path is not text")
    cls = SAFE_TYPES.resolve(path)
    if cls is None:
        raise DecodeError(f"type {path} is not on the allow-list (cache.safe_types or dspy_turbo.register_codec)")
    return cls


def _dec_enum(payload, depth):
    path, value = _list(payload, "$enum")
    cls = _resolve(path)
    if not issubclass(cls, enum.Enum):
        raise DecodeError(f"{path} is not an enum")
    return cls(_dec(value, depth))


def _dec_dataclass(payload, depth):
    path, fields = _list(payload, "$dataclass")
    cls = _resolve(path)
    if not dataclasses.is_dataclass(cls) or type(fields) is not dict:
        raise DecodeError(f"{path} is not a dataclass, or its fields are not a dict")
    values = {name: _dec(x, depth + 1) for name, x in fields.items()}
    known = {f.name: f for f in dataclasses.fields(cls)}
    if set(values) != set(known):
        raise DecodeError(f"stored fields of {path} are not its fields")
    value = cls(**{n: x for n, x in values.items() if known[n].init})
    for name, x in values.items():
        if not known[name].init:
            object.__setattr__(value, name, x)
    return value


def _dec_pydantic(payload, depth):
    path, data = _list(payload, "$pydantic")
    cls = _resolve(path)
    if not _is_pydantic_class(cls) or type(data) is not dict or type(data.get("fields")) is not dict:
        raise DecodeError(f"{path} is not a pydantic model, or its fields are not a dict")
    values = {name: _dec(x, depth + 2) for name, x in data["fields"].items()}
    extra = data.get("extra")
    if extra is not None:
        if type(extra) is not dict:
            raise DecodeError(f"the extra fields of {path} are not a dict")
        values.update({name: _dec(x, depth + 2) for name, x in extra.items()})
    value = cls.model_validate(values, by_name=True, by_alias=False)
    fields_set = data.get("set")
    if type(fields_set) is list and all(type(n) is str for n in fields_set):
        object.__setattr__(value, "__pydantic_fields_set__", set(fields_set))
    return value


def _is_pydantic_class(cls: type) -> bool:
    from pydantic import BaseModel

    return issubclass(cls, BaseModel)


def _dec_codec(payload, depth):
    tag, data = _list(payload, "$codec")
    codec = _CODECS.get(tag)
    if codec is None:
        raise DecodeError(f"no codec registered for tag {tag!r}")
    return codec.decode(_dec(data, depth))


_TAGS: dict[str, Callable[[Any, int], Any]] = {
    "$tuple": lambda p, d: tuple(_items(p, d)),
    "$set": lambda p, d: set(_items(p, d)),
    "$frozenset": lambda p, d: frozenset(_items(p, d)),
    "$dict": _dec_dict,
    "$float": _dec_float,
    "$int": _dec_int,
    "$bytes": lambda p, d: base64.b64decode(p, validate=True),
    "$bytearray": lambda p, d: bytearray(base64.b64decode(p, validate=True)),
    "$datetime": _dec_clock(_dt.datetime, "$datetime"),
    "$date": lambda p, d: _dt.date.fromisoformat(p),
    "$time": _dec_clock(_dt.time, "$time"),
    "$timedelta": lambda p, d: _dt.timedelta(*(int(x) for x in _list(p, "$timedelta"))),
    "$decimal": lambda p, d: decimal.Decimal(p if type(p) is str else "x"),
    "$uuid": lambda p, d: uuid.UUID(p),
    "$complex": lambda p, d: complex(*(float(x) for x in _items(p, d))),
    "$enum": _dec_enum,
    "$dataclass": _dec_dataclass,
    "$pydantic": _dec_pydantic,
    "$litellm": _dec_litellm,
    "$ndarray": lambda p, d: _dec_numpy(p, False),
    "$npscalar": lambda p, d: _dec_numpy(p, True),
    "$prediction": _dec_prediction,
    "$codec": _dec_codec,
}


def decode_value(tag: str, data: Any, shallow: bool = False) -> Any:
    """The value of stored ``(tag, data)``; ``DecodeError`` for anything that is not one.
    ``shallow``: the caller knows the data cannot nest past ``MAX_DEPTH`` (its bytes hold
    fewer brackets than that), so plain JSON needs no walk."""
    try:
        if tag == "json":
            if not shallow:
                _check_depth(data, 0)
            return data
        if tag == "typed":
            return _dec(data, 0)
        legacy = _LEGACY.get(tag)
        if legacy is None:
            raise DecodeError(f"unknown value tag {tag!r}")
        if not shallow:
            _check_depth(data, 0)
        return legacy(data)
    except DecodeError:
        raise
    except RecursionError:
        raise DecodeError(f"value nested deeper than {MAX_DEPTH} levels") from None
    except Exception as exc:  # a payload of the wrong shape, a constructor that refused it
        raise DecodeError(f"{tag}: {type(exc).__name__}: {str(exc)[:200]}") from exc


# -- copies --------------------------------------------------------------------------------


def _json_copy(value: Any) -> Any:
    # orjson round trip: a true deep copy of JSON data, several times faster than deepcopy.
    if type(value) is str or value is None:
        return value
    return orjson.loads(orjson.dumps(value))


def _copy_model_response(value: Any) -> Any:
    """Copy the mutable spine (choices, messages; usage lives in the copied extras).

    A full rebuild costs ~28 us; this costs ~6 us and gives the caller objects of its own
    for everything DSPy and users touch (choices, message content, usage)."""
    new = _copy.copy(value)
    fields = new.__dict__
    choices = []
    for choice in fields.get("choices") or ():
        c = _copy.copy(choice)
        message = c.__dict__.get("message")
        if message is not None:
            m = _copy.copy(message)
            if m.__dict__.get("tool_calls"):
                m.__dict__["tool_calls"] = _copy.deepcopy(m.__dict__["tool_calls"])
            c.__dict__["message"] = m
        choices.append(c)
    fields["choices"] = choices
    private = new.__pydantic_private__
    if private:  # _hidden_params: the caller's own dict
        own = dict(private)
        for k, x in own.items():
            if type(x) is dict:
                own[k] = x.copy()
        object.__setattr__(new, "__pydantic_private__", own)
    return new


_COPIER_BY_CLASS: dict[type, Callable[[Any], Any]] = {}  # decided once per class: a hit copies on every read


def _typed_copy(value: Any) -> Any:
    cls = type(value)
    copier = _COPIER_BY_CLASS.get(cls)
    if copier is None:
        copier = _copy_model_response if _litellm_kind(cls) == "ModelResponse" else _copy.deepcopy
        _COPIER_BY_CLASS[cls] = copier
    return copier(value)


def copy_any(value: Any) -> Any:
    """A copy of a value that has no tag yet (a result not read from the cache)."""
    return copy_value("json" if _is_json(value) else "typed", value)


def copy_value(tag: str, value: Any) -> Any:
    if tag == "json":
        return _json_copy(value)
    return _typed_copy(value)


# -- entries written before format 3 (read, so a cache written before stays warm) ---------


def _legacy_model_response(data):
    from litellm import ModelResponse

    if not isinstance(data, dict):
        raise DecodeError("a litellm.ModelResponse entry must hold an object")
    return ModelResponse(**data)


def _legacy_prediction(data):
    import dspy

    if data.get("completions"):
        prediction = dspy.Prediction.from_completions(list(data["completions"]))
        prediction._store = dict(data["fields"])
        return prediction
    return dspy.Prediction(**data["fields"])


_LEGACY: dict[str, Callable[[Any], Any]] = {
    "litellm.ModelResponse": _legacy_model_response,
    "numpy.ndarray": lambda data: _dec_numpy(data, False),
    "dspy.Prediction": _legacy_prediction,
}
