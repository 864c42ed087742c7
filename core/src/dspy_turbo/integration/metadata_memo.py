"""DSPy's model metadata lookup, memoised per model name while a Turbo is installed.

DSPy looks a model up in its price and capability table (``model_metadata.model_info``)
about three times per LM call: twice to price the response, once for the adapter's
capability hints. For a name the table lacks (every self-hosted model) each lookup scans
the whole table, ~0.65 ms, so an unknown name costs ~2 ms more per call than a known
one. The answer depends only on the arguments and the loaded table, so it is kept per
``(provider, model, namespaces)`` for the table it came from (a reloaded table starts
afresh), and every caller gets its own copy, as from DSPy.

``install()`` puts the memo where DSPy's modules call ``model_info`` (each holds its own
reference) and ``uninstall()`` puts DSPy's function back; a module where someone else
replaced the function meanwhile is left as it is.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

MAX_ENTRIES = 1024  # distinct (provider, model, namespaces) kept; the oldest goes first

_ATOMS = (str, int, float, bool, type(None))
_MODULES = ("dspy.clients.model_metadata", "dspy.clients.costs", "dspy.clients.capabilities")


def _fresh(value: Any) -> Any:
    """A copy of JSON-shaped data as ``copy.deepcopy`` makes it, for a fraction of its cost."""
    kind = type(value)
    if kind is dict:
        return {key: _fresh(item) for key, item in value.items()}
    if kind is list:
        return [_fresh(item) for item in value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value)


class MetadataMemo:
    """``model_info`` with the answers kept per arguments, for one loaded table at a time."""

    def __init__(self, metadata_module: Any, original: Any, max_entries: int = MAX_ENTRIES):
        self._metadata = metadata_module
        self.original = original
        self.max_entries = max_entries
        self._entries: dict[tuple, dict] = {}
        self._table: Any = None  # the table the entries were read from
        self._lock = threading.Lock()

        @functools.wraps(original)
        def model_info(provider, model, *, namespaces=None):
            return self.lookup(provider, model, namespaces)

        self.function = model_info

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, provider: Any, model: Any, namespaces: Any = None) -> dict:
        try:
            key = (provider, model, None if namespaces is None else tuple(namespaces))
            hash(key)
        except TypeError:  # arguments DSPy itself would choke on: its own answer (or error)
            return self.original(provider, model, namespaces=namespaces)
        table = self._metadata._data
        if table is not None and table is self._table:
            found = self._entries.get(key)
            if found is not None:
                return _fresh(found)
        result = self.original(provider, model, namespaces=namespaces)
        table = self._metadata._data  # the lookup loads the table on first use
        if table is None or not isinstance(result, dict):
            return result
        kept = _fresh(result)
        with self._lock:
            if table is not self._table:
                self._entries.clear()
                self._table = table
            if key not in self._entries and len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = kept
        return result


_lock = threading.Lock()
_memo: MetadataMemo | None = None
_patched: list[Any] = []  # the modules whose model_info is the memo's


def _modules() -> list[Any]:
    import importlib

    found = []
    for name in _MODULES:
        try:
            found.append(importlib.import_module(name))
        except ImportError:  # a DSPy without this module: nothing to memoise there
            continue
    return found


def install() -> MetadataMemo | None:
    """Memoise DSPy's ``model_info`` in every DSPy module that calls it (idempotent)."""
    global _memo
    with _lock:
        if _memo is not None:
            return _memo
        modules = _modules()
        metadata = next((m for m in modules if m.__name__ == _MODULES[0]), None)
        original = getattr(metadata, "model_info", None)
        if metadata is None or not callable(original) or not hasattr(metadata, "_data"):
            return None  # not the DSPy this memo knows
        memo = MetadataMemo(metadata, original)
        for module in modules:
            if getattr(module, "model_info", None) is original:
                module.model_info = memo.function
                _patched.append(module)
        _memo = memo
        return memo


def uninstall() -> None:
    """DSPy's own ``model_info`` back where the memo stood; the kept answers are dropped."""
    global _memo
    with _lock:
        memo, _memo = _memo, None
        if memo is None:
            return
        for module in _patched:
            if getattr(module, "model_info", None) is memo.function:
                module.model_info = memo.original
        _patched.clear()


def active() -> MetadataMemo | None:
    return _memo
