"""Values <-> JSON-able data, with a type tag, and never pickle.

Every cached value is stored as ``(tag, data)``: ``tag`` names a registered codec,
``data`` is plain JSON. Decoding looks the tag up in this registry only, so bytes read
from a shared tier can never name a class to import or code to run. A value no codec
accepts is not cached (``EncodeError``); the call still returns its result.

Built in: plain JSON (``json``), LiteLLM ``ModelResponse`` (``litellm.ModelResponse``),
``numpy.ndarray`` (``numpy.ndarray``), ``dspy.Prediction`` (``dspy.Prediction``).
Register more with :func:`register_codec`.

Each codec also knows how to *copy* a value cheaply: a hit hands the caller its own copy,
so a caller that mutates a result never changes the cache.
"""

from __future__ import annotations

import base64
import copy as _copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson


class EncodeError(TypeError):
    """The value has no codec (or its codec refused it): it is not cached."""


class DecodeError(ValueError):
    """Stored data cannot be turned back into a value: treated as a miss."""


@dataclass(frozen=True)
class Codec:
    tag: str
    matches: Callable[[Any], bool]
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]
    copy: Callable[[Any], Any]


_CODECS: dict[str, Codec] = {}
_ORDER: list[Codec] = []


def register_codec(codec: Codec) -> None:
    """Add a codec; later registrations are tried first (more specific types win)."""
    if codec.tag in _CODECS:
        _ORDER.remove(_CODECS[codec.tag])
    _CODECS[codec.tag] = codec
    _ORDER.insert(0, codec)


_JSON_SCALARS = (str, int, float, bool, type(None))


def _is_json(value: Any, depth: int = 0) -> bool:
    # Every LM response stored is checked here, so leaves (most values) are decided inline
    # by their exact type, without a call each; subclasses take the isinstance path.
    kind = type(value)
    if kind is dict:
        for k in value:
            if type(k) is not str:
                return False
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return isinstance(value, _JSON_SCALARS)
    if depth > 64:
        return False
    for v in items:
        leaf = type(v)
        if leaf is str or leaf is int or leaf is float or leaf is bool or v is None:
            continue
        if not _is_json(v, depth + 1):
            return False
    return True


def _json_copy(value: Any) -> Any:
    # orjson round trip: a true deep copy of JSON data, several times faster than deepcopy.
    if isinstance(value, _JSON_SCALARS):
        return value
    return orjson.loads(orjson.dumps(value))


def _identity(value: Any) -> Any:
    return value


def _json_decode(data: Any) -> Any:
    return data


# -- LiteLLM ModelResponse -------------------------------------------------------------


def _is_model_response(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "ModelResponse" and cls.__module__.startswith("litellm")


def _encode_model_response(value: Any) -> Any:
    return value.model_dump(mode="json")


def _decode_model_response(data: Any) -> Any:
    from litellm import ModelResponse

    if not isinstance(data, dict):
        raise DecodeError("a litellm.ModelResponse entry must hold an object")
    return ModelResponse(**data)


def _copy_model_response(value: Any) -> Any:
    """Copy the mutable spine (choices, messages; usage lives in the copied extras).

    A full rebuild costs ~28 us; this costs ~6 us and gives the caller objects of its own
    for everything DSPy and users touch (choices, message content, usage).
    """
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
    return new


# -- numpy -----------------------------------------------------------------------------


def _is_ndarray(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "ndarray" and cls.__module__ == "numpy"


def _encode_ndarray(value: Any) -> Any:
    if value.dtype.hasobject:
        raise EncodeError("numpy arrays of Python objects are not cached")
    import numpy as np

    contiguous = np.ascontiguousarray(value)
    return {"dtype": contiguous.dtype.str, "shape": list(contiguous.shape), "b64": base64.b64encode(contiguous.tobytes()).decode()}


def _decode_ndarray(data: Any) -> Any:
    import numpy as np

    dtype = np.dtype(data["dtype"])
    if dtype.hasobject:
        raise DecodeError("refusing an object-dtype array")
    return np.frombuffer(base64.b64decode(data["b64"]), dtype=dtype).reshape(data["shape"]).copy()


# -- dspy.Prediction -------------------------------------------------------------------


def _is_prediction(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "Prediction" and cls.__module__.startswith("dspy")


def _encode_prediction(value: Any) -> Any:
    store = dict(value.items(include_dspy=True)) if hasattr(value, "items") else dict(value._store)
    data = {"fields": encode_value(store)[1]}
    completions = getattr(value, "_completions", None)
    if completions is not None and len(completions) > 1:  # n > 1, BestOfN, majority: keep them all
        data["completions"] = [encode_value(dict(c.items()))[1] for c in completions]
    return data


def _decode_prediction(data: Any) -> Any:
    import dspy

    if data.get("completions"):
        prediction = dspy.Prediction.from_completions([decode_value("json", c) for c in data["completions"]])
        prediction._store = decode_value("json", data["fields"])  # the chosen one may not be the first
        return prediction
    return dspy.Prediction(**decode_value("json", data["fields"]))


def _copy_prediction(value: Any) -> Any:
    return _decode_prediction(_encode_prediction(value))


register_codec(Codec("dspy.Prediction", _is_prediction, _encode_prediction, _decode_prediction, _copy_prediction))
register_codec(Codec("numpy.ndarray", _is_ndarray, _encode_ndarray, _decode_ndarray, lambda a: a.copy()))
register_codec(Codec("litellm.ModelResponse", _is_model_response, _encode_model_response, _decode_model_response, _copy_model_response))
# Plain JSON is the common case; check it first by putting it last into the registry.
register_codec(Codec("json", _is_json, _identity, _json_decode, _json_copy))


def codec_for(value: Any) -> Codec:
    for codec in _ORDER:
        if codec.matches(value):
            return codec
    raise EncodeError(f"no codec for a value of type {type(value).__module__}.{type(value).__qualname__}")


def encode_value(value: Any) -> tuple[str, Any]:
    """``(tag, json_data)`` for a value, or ``EncodeError``."""
    codec = codec_for(value)
    try:
        return codec.tag, codec.encode(value)
    except EncodeError:
        raise
    except Exception as exc:  # a codec that cannot handle this particular value
        raise EncodeError(f"{codec.tag}: {exc}") from exc


def decode_value(tag: str, data: Any) -> Any:
    codec = _CODECS.get(tag)
    if codec is None:
        raise DecodeError(f"unknown value tag {tag!r}")
    try:
        return codec.decode(data)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"{tag}: {exc}") from exc


def copy_value(tag: str, value: Any) -> Any:
    return _CODECS[tag].copy(value)
