"""The identity of a DSPy program and of one batch item, for program-level cache keys.

A program-level (item) cache stores each item's *completed* result under a key made of
the program's identity and the item's inputs. Python code cannot be keyed by everything
that changes what it returns (a helper in another module, a file it reads, a live
retriever, the clock), so this cache is only sound when every step of the program is
DSPy's own code. Hence two modes:

- **automatic** (``item_cache`` unset): on only for a :func:`library_program`: a program
  made of DSPy's own ``Predict``/``ChainOfThought`` with DSPy's own LM and adapters,
  built-in field types, no callbacks, outside an optimizer's trace. Its result is then a
  function of what the key holds: the signatures (instructions, fields and their types),
  demos and config, each predictor's LM (model, parameters, credentials left out), the
  adapter and its settings, DSPy's version and the inputs. It is exactly what the LM-level
  cache would give, without formatting and parsing each item again.
- **opt-in** (``item_cache=True``) for any other program, with its risk: the key covers the
  classes of the program's modules and the *running* code of the modules that define them
  (their functions, classes and immutable module constants, and functions imported into
  them by name), ``dump_state()``, settings, LMs and the adapter. A change anywhere else
  (a helper in another module, data, outside state) is not seen: the batch would return
  an answer the program no longer gives. Clear the namespace after such a change.

Otherwise a batch is served by the LM-level cache, which is always current.
"""

from __future__ import annotations

import sys
import types
import typing
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from .keys import LM_CREDENTIALS, Unkeyable, callable_identity, credential_free

__all__ = ["Unkeyable", "item_inputs", "library_program", "program_identity"]


_PLAIN = (str, int, float, bool, type(None))
# DSPy's own per-instance bookkeeping (``stage`` is random per Predict) or parts keyed elsewhere
# (the LM, the learned state in ``dump_state()``).
_NOT_SETTINGS = frozenset({"lm", "demos", "signature", "callbacks", "history", "stage", "traces", "train"})


def _lm_identity(lm: Any) -> dict[str, Any] | None:
    if lm is None:
        return None
    if getattr(lm, "cache", True) is False:
        raise Unkeyable("an LM with cache=False must run every time")
    kwargs = credential_free({k: v for k, v in (getattr(lm, "kwargs", None) or {}).items() if k not in LM_CREDENTIALS})
    engine = getattr(lm, "engine", None)
    return {"model": getattr(lm, "model", repr(lm)), "model_type": getattr(lm, "model_type", None), "kwargs": kwargs,
            "class": _qualified(type(lm)), "engine": None if engine is None else _qualified(type(engine))}


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_dspy(cls: type) -> bool:
    return cls.__module__ == "dspy" or cls.__module__.startswith("dspy.")


# -- the running code of a module --------------------------------------------------------------

_CONSTANTS = (str, int, float, bool, type(None), bytes)


def _constant(value: Any) -> bool:
    if isinstance(value, _CONSTANTS):
        return True
    return isinstance(value, (tuple, frozenset)) and len(value) <= 1000 and all(isinstance(v, _CONSTANTS) for v in value)


def _constant_text(value: Any) -> Any:
    if isinstance(value, frozenset):  # its iteration order follows string hashing: sort it
        return ["frozenset", sorted(repr(v) for v in value)]
    if isinstance(value, (bytes, tuple)):
        return repr(value)
    return value


def _function_code(fn: types.FunctionType) -> Any:
    """Its bytecode digest, and that of every function it wraps (``functools.wraps``)."""
    from .keys import _code_digest

    digests = [_code_digest(fn.__code__)]
    inner = getattr(fn, "__wrapped__", None)
    while isinstance(inner, types.FunctionType) and len(digests) < 10:
        digests.append(_code_digest(inner.__code__))
        inner = getattr(inner, "__wrapped__", None)
    return digests[0] if len(digests) == 1 else digests


def module_code(module_name: str) -> dict[str, Any]:
    """The running code of a module: its functions and classes (by bytecode), functions
    imported into it by name, and its immutable constants. DSPy's own modules by version."""
    if module_name == "dspy" or module_name.startswith("dspy."):
        import dspy

        return {"dspy": dspy.__version__}
    module = sys.modules.get(module_name)
    if module is None:
        return {"module": module_name, "loaded": False}
    out: dict[str, Any] = {}
    for name, value in sorted(vars(module).items()):
        if name.startswith("__"):
            continue
        if isinstance(value, types.FunctionType):
            out[name] = _function_code(value)
        elif isinstance(value, type) and value.__module__ == module_name:
            out[name] = {k: _function_code(v) for k, v in _methods(value)}
        elif _constant(value):
            out[name] = _constant_text(value)
    return {"module": module_name, "code": out}


def _methods(cls: type) -> Iterator[tuple[str, types.FunctionType]]:
    for name, member in sorted(vars(cls).items()):
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property):
            for i, f in enumerate((member.fget, member.fset, member.fdel)):
                if isinstance(f, types.FunctionType):
                    yield f"{name}.{i}", f
        elif isinstance(member, types.FunctionType):
            yield name, member


# -- settings a module carries -----------------------------------------------------------------


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
        elif callable(value) and not isinstance(value, type):
            out[name] = callable_identity(value)
        else:
            out[name] = _qualified(type(value))  # e.g. a retriever object: its class at least
    return out


def _type_name(annotation: Any) -> Any:
    """A field's type as it counts for formatting and parsing: built-ins by name, a
    pydantic model by its schema, anything else by its qualified name."""
    try:
        import pydantic

        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            return {"model": _qualified(annotation), "schema": annotation.model_json_schema()}
    except Exception:
        pass
    if isinstance(annotation, type):
        return _qualified(annotation)
    return repr(annotation)


def _signature_types(predictor: Any) -> dict[str, Any]:
    signature = getattr(predictor, "signature", None)
    fields = getattr(signature, "fields", None) or {}
    return {name: _type_name(getattr(info, "annotation", None)) for name, info in fields.items()}


def _adapter_identity(adapter: Any) -> Any:
    if adapter is None:
        return None
    settings = {}
    for name, value in sorted(vars(adapter).items()):
        if name == "callbacks" or name.startswith("_"):
            continue
        if isinstance(value, _PLAIN):
            settings[name] = value
        elif isinstance(value, (list, tuple)):
            settings[name] = [_qualified(v) if isinstance(v, type) else repr(v) for v in value]
        elif isinstance(value, type):
            settings[name] = _qualified(value)
        elif hasattr(value, "model"):  # an extraction LM (TwoStepAdapter)
            settings[name] = _lm_identity(value)
        else:
            settings[name] = _qualified(type(value))
    return {"class": _qualified(type(adapter)), "settings": settings}


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


# -- which programs the item cache may serve by itself ----------------------------------------

_BUILTIN_TYPES = frozenset({str, int, float, bool, bytes, type(None), list, dict, tuple, set, frozenset})


def _library_type(annotation: Any, depth: int = 0) -> bool:
    """Built-in types, typing constructs over them, ``Literal`` values and DSPy's own types."""
    if depth > 10:
        return False
    if annotation is typing.Any or annotation in _BUILTIN_TYPES:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return all(isinstance(v, _PLAIN) for v in typing.get_args(annotation))
    if origin is not None:
        return (origin in _BUILTIN_TYPES or origin in (typing.Union, types.UnionType)) and all(
            _library_type(a, depth + 1) for a in typing.get_args(annotation) if a is not Ellipsis)
    return isinstance(annotation, type) and _is_dspy(annotation)


def _default_trace(trace: Any) -> bool:
    """No trace, or DSPy's process-wide one that nothing reads (an optimizer collects its own,
    through ``dspy.context(trace=[])``, and a cached item would add nothing to it)."""
    from dspy.dsp.utils.settings import main_thread_config

    return trace is None or trace is main_thread_config.get("trace")


def library_program(program: Any) -> str | None:
    """``None`` when every step of ``program`` is DSPy's own code (see the module docstring),
    else why not, in a few words."""
    import dspy
    from dspy.adapters import ChatAdapter, JSONAdapter, XMLAdapter

    settings = dspy.settings
    if not isinstance(program, dspy.Module):
        return f"a {type(program).__name__} is user code"
    if settings.callbacks:
        return "callbacks are configured (a cached item would not call them)"
    if not _default_trace(settings.trace) or settings.track_usage or settings.send_stream is not None:
        return "DSPy is collecting a trace (an optimizer), tracking usage or streaming"
    adapter = settings.adapter
    if adapter is not None and (type(adapter) not in (ChatAdapter, JSONAdapter, XMLAdapter) or adapter.callbacks):
        return f"the adapter {type(adapter).__name__} is not one of DSPy's own, or has callbacks"
    for name, module in _sub_modules(program):
        if type(module) not in (dspy.Predict, dspy.ChainOfThought):
            return f"{name} is a {type(module).__name__}: its code is not DSPy's own"
        if module.callbacks:
            return f"{name} has callbacks"
        if isinstance(module, dspy.Predict):
            lm = module.lm or settings.lm
            if lm is not None and (not _is_dspy(type(lm)) or getattr(lm, "callbacks", None)):
                return f"{name}'s LM is a {type(lm).__name__}, not DSPy's own, or has callbacks"
            for field, info in module.signature.fields.items():
                if not _library_type(info.annotation):
                    return f"{name}'s field {field!r} has a type of the program's own"
    return None


def program_identity(program: Any) -> dict[str, Any]:
    """What a program-level key is built from (see the module docstring); JSON-able.

    Raises ``Unkeyable`` when the program's behaviour is not visible from outside.
    """
    import dspy

    cls = type(program)
    identity: dict[str, Any] = {"class": _qualified(cls), "dspy": dspy.__version__}
    if isinstance(program, dspy.Module):
        identity["state"] = program.dump_state()
        # Every module in the tree: its class, the running code of the module defining it,
        # its own settings, and for predictors their config and field types.
        modules = {}
        code = {}
        for name, module in _sub_modules(program):
            mcls = type(module)
            for klass in mcls.__mro__:
                if klass.__module__ not in code and klass is not object:
                    code[klass.__module__] = module_code(klass.__module__)
            modules[name] = {"class": _qualified(mcls),
                             "config": getattr(module, "config", None) if isinstance(module, dspy.Predict) else None,
                             "types": _signature_types(module) if isinstance(module, dspy.Predict) else None,
                             "attributes": _attributes(module)}
        identity["modules"] = modules
        identity["code"] = code
        default_lm = dspy.settings.lm
        identity["lms"] = {name: _lm_identity(getattr(p, "lm", None) or default_lm)
                           for name, p in program.named_predictors()}
        identity["adapter"] = _adapter_identity(dspy.settings.adapter)
    else:
        identity["callable"] = callable_identity(program)
        fn = getattr(program, "__func__", program)
        module_name = getattr(fn, "__module__", None)
        identity["code"] = module_code(module_name) if isinstance(module_name, str) else None
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
