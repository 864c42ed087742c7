"""What crosses between a batch and a worker in another process or host: JSON bytes, never a pickle.

For batch strategies that run items elsewhere (``process`` in dspy-turbo-batching, ``ray``
in dspy-turbo-ray). An item's inputs go out and its result comes back encoded by the
cache's own value codec (``dspy_turbo.cache.codec``: JSON with a type tag; ``dspy.Prediction``,
LiteLLM responses and numpy arrays keep their type), so nothing a worker sends can run
code in the batch when it is read. A failed item comes back as its exception's type name,
message and the worker's traceback text: a built-in exception type is rebuilt as itself,
any other as :class:`RemoteItemError` naming the original type (classes are never
imported by a name that came over the wire).

``peer`` names the other side in error messages ("a Ray worker", "a worker process").
"""

from __future__ import annotations

import builtins
import traceback
from typing import Any

import orjson

from .values import DecodeError, EncodeError, decode_value, encode_value

__all__ = ["FORMAT", "RemoteItemError", "decode_inputs", "decode_result", "encode_error", "encode_inputs",
           "encode_result", "rebuild_error"]

FORMAT = 1  # bump when the layout below changes: a worker and a batch must agree


class RemoteItemError(RuntimeError):
    """An item failed in a worker with an exception that is not a built-in type.

    ``remote_type`` is the original's qualified name, ``remote_traceback`` the worker's
    traceback as text.
    """

    def __init__(self, remote_type: str, message: str, remote_traceback: str = ""):
        super().__init__(f"{remote_type}: {message}")
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback


def encode_inputs(inputs: dict[str, Any], peer: str = "a worker", hint: str = "the 'thread' strategy") -> bytes:
    """An item's inputs, or ``EncodeError`` (a ``TypeError``) naming the field that cannot cross."""
    fields = {}
    for name, value in inputs.items():
        try:
            fields[name] = encode_value(value)
        except EncodeError as exc:
            raise EncodeError(f"input field {name!r} cannot be sent to {peer} ({exc}); "
                              f"use JSON values, dspy.Prediction, numpy arrays, or {hint}") from None
    return orjson.dumps({"v": FORMAT, "inputs": fields})


def decode_inputs(payload: bytes, peer: str = "a worker") -> dict[str, Any]:
    doc = _document(payload, "inputs", peer)
    return {name: decode_value(tag, data) for name, (tag, data) in doc["inputs"].items()}


def encode_result(value: Any, usage: dict[str, int] | None = None, cost: float | None = None,
                  peer: str = "the worker") -> bytes:
    """A finished item's value with what its LM calls used (``usage``, ``cost``)."""
    try:
        tag, data = encode_value(value)
    except EncodeError as exc:
        return encode_error(EncodeError(f"the program's result cannot be sent back from {peer}: {exc}"))
    return orjson.dumps({"v": FORMAT, "ok": True, "tag": tag, "value": data, "usage": usage or {}, "cost": cost})


def encode_error(exc: BaseException) -> bytes:
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    text = "".join(traceback.format_exception(kind, exc, exc.__traceback__))
    return orjson.dumps({"v": FORMAT, "ok": False, "type": name, "message": str(exc)[:10_000], "traceback": text[-20_000:]})


def decode_result(payload: bytes, peer: str = "a worker") -> tuple[Any, dict[str, int], float | None]:
    """``(value, usage, cost)``, or raises the item's error (see the module docstring)."""
    doc = _document(payload, "result", peer)
    if doc.get("ok"):
        return decode_value(doc["tag"], doc["value"]), doc.get("usage") or {}, doc.get("cost")
    raise rebuild_error(str(doc.get("type")), str(doc.get("message", "")), str(doc.get("traceback", "")))


def rebuild_error(name: str, message: str, remote_traceback: str) -> BaseException:
    kind = getattr(builtins, name, None) if "." not in name else None
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            exc = kind(message)
        except Exception:  # a built-in that wants other arguments (UnicodeDecodeError)
            return RemoteItemError(name, message, remote_traceback)
        exc.remote_traceback = remote_traceback  # type: ignore[attr-defined]
        return exc
    return RemoteItemError(name, message, remote_traceback)


def _document(payload: Any, what: str, peer: str) -> dict[str, Any]:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise DecodeError(f"{peer}'s {what} is {type(payload).__name__}, expected encoded bytes")
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"{peer}'s {what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != FORMAT:
        raise DecodeError(f"{peer}'s {what} has format {doc.get('v') if isinstance(doc, dict) else None!r}, "
                          f"expected {FORMAT}: install the same dspy-turbo on both sides")
    return doc
