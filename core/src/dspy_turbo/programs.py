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
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any


def _source_hash(obj: Any) -> str | None:
    try:
        return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]
    except (OSError, TypeError):
        return None


class Unkeyable(ValueError):
    """The program's identity cannot be seen from outside: no item cache for it."""


_PLAIN = (str, int, float, bool, type(None))
# DSPy's own per-instance bookkeeping (``stage`` is random per Predict) or parts keyed elsewhere
# (the LM, the learned state in ``dump_state()``).
_NOT_SETTINGS = frozenset({"lm", "demos", "signature", "callbacks", "history", "stage", "traces", "train"})


def _lm_identity(lm: Any) -> dict[str, Any] | None:
    if lm is None:
        return None
    if getattr(lm, "cache", True) is False:
        raise Unkeyable("an LM with cache=False must run every time")
    kwargs = {k: v for k, v in (getattr(lm, "kwargs", None) or {}).items() if k not in ("api_key",)}
    return {"model": getattr(lm, "model", repr(lm)), "model_type": getattr(lm, "model_type", None), "kwargs": kwargs,
            "class": type(lm).__qualname__}


def _callable_identity(fn: Any) -> dict[str, Any]:
    """A plain function by name and source; anything whose behaviour hides in captured state
    (a closure, a partial, a callable object) cannot be keyed."""
    if not inspect.isfunction(fn) and not inspect.ismethod(fn):
        raise Unkeyable(f"a {type(fn).__name__} is not identified by its source")
    func = getattr(fn, "__func__", fn)
    if func.__closure__:
        raise Unkeyable(f"{func.__qualname__} is a closure: its captured values are not visible")
    return {"function": f"{func.__module__}.{func.__qualname__}", "source": _source_hash(func)}


def _attributes(module: Any) -> dict[str, Any]:
    """A module's own settings (``n=5``, ``N=9``, a reward function), not its sub-modules."""
    import dspy

    out: dict[str, Any] = {}
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or isinstance(value, (dspy.Module, dspy.BaseLM)) or name in _NOT_SETTINGS:
            continue
        if isinstance(value, _PLAIN):
            out[name] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, _PLAIN) for v in value):
            out[name] = list(value)
        elif isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, _PLAIN) for k, v in value.items()):
            out[name] = value
        elif callable(value):
            out[name] = _callable_identity(value)
        else:
            out[name] = type(value).__qualname__  # e.g. a retriever object: its class at least
    return out


def _sub_modules(program: Any) -> Iterator[tuple[str, Any]]:
    """``program.named_sub_modules()``: the same names in the same order, without walking
    each module's ``history``. DSPy appends every call there (up to
    ``settings.max_history_size``, 10,000 by default), and ``named_sub_modules`` walks
    every message of every entry: 0.7 s per batch for a ``Predict`` with a full history."""
    import dspy

    base = dspy.BaseModule
    queue: deque[tuple[str, Any]] = deque([("self", program)])
    seen = {id(program)}
    while queue:
        name, item = queue.popleft()
        if isinstance(item, base):
            yield name, item
            children = ((f"{name}.{k}", v) for k, v in vars(item).items() if k != "history")
        elif isinstance(item, (list, tuple)):
            children = ((f"{name}[{i}]", v) for i, v in enumerate(item))
        elif isinstance(item, dict):
            children = ((f"{name}[{k}]", v) for k, v in item.items())
        else:
            continue
        for child in children:
            if id(child[1]) not in seen:
                seen.add(id(child[1]))
                queue.append(child)


def program_identity(program: Any) -> dict[str, Any]:
    """What a program-level key is built from (see the module docstring); JSON-able.

    Raises ``Unkeyable`` when the program's behaviour is not visible from outside.
    """
    import dspy

    cls = type(program)
    identity: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    if isinstance(program, dspy.Module):
        identity["state"] = program.dump_state()
        # Every module in the tree: its class, its forward's source, its own settings.
        modules = {}
        for name, module in _sub_modules(program):
            mcls = type(module)
            forward = getattr(mcls, "forward", None)
            modules[name] = {"class": f"{mcls.__module__}.{mcls.__qualname__}",
                             "forward": _source_hash(forward) if forward is not None else None,
                             "config": getattr(module, "config", None) if isinstance(module, dspy.Predict) else None,
                             "attributes": _attributes(module)}
        identity["modules"] = modules
        default_lm = dspy.settings.lm
        identity["lms"] = {name: _lm_identity(getattr(p, "lm", None) or default_lm)
                           for name, p in program.named_predictors()}
        adapter = dspy.settings.adapter
        identity["adapter"] = None if adapter is None else type(adapter).__qualname__
    else:
        identity["callable"] = _callable_identity(program)
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
