"""What crosses between the batch and a Ray worker: JSON bytes, never a pickle.

The format is the SDK's (``dspy_turbo.plugin.wire``, shared with dspy-turbo-batching's
``process`` strategy): an item's inputs go out and its result comes back encoded by the
cache's own value codec (``dspy_turbo.cache.codec``: JSON with a type tag; ``dspy.Prediction``,
LiteLLM responses and numpy arrays keep their type). Ray moves the bytes as an opaque
object, so nothing the worker sends can run code in the driver when it is read. A failed
item comes back as its exception's type name, message and the worker's traceback text: a
built-in exception type is rebuilt as itself, any other as :class:`RemoteItemError`
naming the original type (classes are never imported by a name that came over the wire).
This module names the Ray worker in the messages.
"""

from __future__ import annotations

from typing import Any

from dspy_turbo.plugin import wire
from dspy_turbo.plugin.wire import FORMAT, RemoteItemError, encode_error, rebuild_error

__all__ = ["FORMAT", "RemoteItemError", "decode_inputs", "decode_result", "encode_error", "encode_inputs",
           "encode_result", "rebuild_error"]

PEER = "a Ray worker"


def encode_inputs(inputs: dict[str, Any]) -> bytes:
    """An item's inputs, or ``EncodeError`` naming the field that cannot cross."""
    return wire.encode_inputs(inputs, PEER)


def decode_inputs(payload: bytes) -> dict[str, Any]:
    return wire.decode_inputs(payload, PEER)


def encode_result(value: Any, usage: dict[str, int] | None = None, cost: float | None = None) -> bytes:
    """A finished item's value with what its LM calls used (``usage``, ``cost``)."""
    return wire.encode_result(value, usage, cost, peer="the Ray worker")


def decode_result(payload: bytes) -> tuple[Any, dict[str, int], float | None]:
    """``(value, usage, cost)``, or raises the item's error (see the module docstring)."""
    return wire.decode_result(payload, PEER)
