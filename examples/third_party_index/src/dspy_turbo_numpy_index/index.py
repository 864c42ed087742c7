"""The ``numpy`` similarity index: every scope's vectors in one array, searched exactly.

The semantic cache hands the index L2-normalised vectors (its embedder's rows), so the inner
product is the cosine: a search is one matrix-vector product over the scope's rows. That is
exact and fast enough for tens of thousands of vectors per scope; past that, an approximate
index (faiss's IVF, hnswlib) is the better trade. Nothing persists: the index starts empty
with the process, and the semantic cache refills it as responses are stored.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from pydantic import Field

from dspy_turbo.plugin.components import Component, ComponentUnavailable, Options


class NumpyIndexOptions(Options):
    max_entries: int | None = Field(default=None, ge=1)
    """Bound on vectors held; past it the oldest are removed. None: no bound."""


class _Scope:
    """One scope's rows, with the id of each row."""

    def __init__(self, np, dimension: int):
        self.rows = np.empty((0, dimension), dtype="float32")
        self.ids: list[int] = []


class NumpyIndex(Component):
    name: ClassVar[str] = "numpy"
    kind: ClassVar[str] = "similarity_index"
    Options: ClassVar[type[Options]] = NumpyIndexOptions

    @classmethod
    def check_available(cls, options: Options) -> None:
        try:
            import numpy  # noqa: F401
        except ImportError as exc:
            raise ComponentUnavailable(f"the numpy index needs numpy ({exc}); pip install numpy", "numpy") from None

    def __init__(self, options: NumpyIndexOptions | None = None):
        super().__init__(options)
        import numpy

        self.np = numpy
        self._lock = threading.Lock()
        self._scopes: dict[str, _Scope] = {}
        self._meta: dict[int, tuple[str, dict[str, Any]]] = {}  # id -> (scope, meta); insertion order = age

    def add(self, scope: str, item_id: int, vector, meta: dict[str, Any]) -> None:
        row = self.np.asarray(vector, dtype="float32").reshape(1, -1)
        item_id = int(item_id)
        with self._lock:
            self._remove(item_id)  # adding an id again replaces it
            held = self._scopes.get(scope)
            if held is None:
                held = self._scopes[scope] = _Scope(self.np, row.shape[1])
            held.rows = self.np.vstack([held.rows, row])
            held.ids.append(item_id)
            self._meta[item_id] = (scope, dict(meta))
            limit = self.options.max_entries
            while limit is not None and len(self._meta) > limit:
                self._remove(next(iter(self._meta)))

    def search(self, scope: str, vector, k: int) -> list[tuple[int, float, dict[str, Any]]]:
        query = self.np.asarray(vector, dtype="float32").reshape(-1)
        with self._lock:
            held = self._scopes.get(scope)
            if held is None or not held.ids or k < 1:
                return []
            scores = held.rows @ query
            best = self.np.argsort(-scores, kind="stable")[:k]
            return [(held.ids[i], float(scores[i]), dict(self._meta[held.ids[i]][1])) for i in best]

    def remove(self, item_id: int) -> bool:
        with self._lock:
            return self._remove(int(item_id))

    def _remove(self, item_id: int) -> bool:
        found = self._meta.pop(item_id, None)
        if found is None:
            return False
        held = self._scopes[found[0]]
        position = held.ids.index(item_id)
        held.rows = self.np.delete(held.rows, position, axis=0)
        del held.ids[position]
        if not held.ids:
            del self._scopes[found[0]]
        return True

    def clear(self) -> int:
        with self._lock:
            removed = len(self._meta)
            self._scopes.clear()
            self._meta.clear()
            return removed

    def __len__(self) -> int:
        return len(self._meta)

    def close(self) -> None:
        self.clear()
