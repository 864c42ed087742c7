"""The identity of a DSPy program and of one batch item, for program-level cache keys.

A batch caches each item's *completed* result under a key made of the program's
identity and the item's inputs. The identity is everything that changes what the
program answers and that can be seen from outside: its class and the source of its
``forward``, its learned state (instructions, signatures, demos: ``dump_state()``), the
LM each predictor will use (model and generation parameters, as DSPy's request cache
sees them) and the adapter. Anything the program reads from elsewhere at run time (a
live retriever, the clock, a random draw) is not in it: such programs batch with
``item_cache=False`` and are still cache-first per LM request.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Mapping
from typing import Any


def _source_hash(obj: Any) -> str | None:
    try:
        return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]
    except (OSError, TypeError):
        return None


def _lm_identity(lm: Any) -> dict[str, Any] | None:
    if lm is None:
        return None
    kwargs = {k: v for k, v in (getattr(lm, "kwargs", None) or {}).items() if k not in ("api_key",)}
    return {"model": getattr(lm, "model", repr(lm)), "model_type": getattr(lm, "model_type", None), "kwargs": kwargs,
            "class": type(lm).__qualname__}


def program_identity(program: Any) -> dict[str, Any]:
    """What a program-level key is built from (see the module docstring); JSON-able."""
    import dspy

    cls = type(program)
    identity: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    if isinstance(program, dspy.Module):
        forward = getattr(cls, "forward", None)
        if forward is not None and not cls.__module__.startswith("dspy."):
            identity["forward"] = _source_hash(forward)
        identity["state"] = program.dump_state()
        default_lm = dspy.settings.lm
        identity["lms"] = {name: _lm_identity(getattr(p, "lm", None) or default_lm)
                           for name, p in program.named_predictors()}
        adapter = dspy.settings.adapter
        identity["adapter"] = None if adapter is None else type(adapter).__qualname__
    else:
        identity["source"] = _source_hash(program)
        identity["lm"] = _lm_identity(dspy.settings.lm)
    return identity


def item_inputs(example: Any) -> dict[str, Any]:
    """The keyword arguments one example passes to the program.

    A ``dspy.Example`` with input keys (``.with_inputs(...)``) passes only those, as
    ``dspy.Evaluate`` and ``dspy.Parallel`` do; otherwise all its fields. A mapping passes
    its items.
    """
    import dspy

    if isinstance(example, dspy.Example):
        if getattr(example, "_input_keys", None):
            return dict(example.inputs().items())
        return dict(example.items())
    if isinstance(example, Mapping):
        return dict(example)
    raise TypeError(f"expected a dict or a dspy.Example, got {type(example).__name__}")
