"""The ``faiss`` similarity index: one FAISS index per scope, exact or approximate by size.

A scope (see the semantic cache, ``dspy_turbo.plugin.similarity``) holds the vectors that may match each other. Small
scopes use exact inner-product search (``IndexFlatIP``); a scope that grows past
``exact_up_to`` vectors moves to an IVF index (``IndexIVFFlat``, inner product), trained on
its own vectors and searched with ``nprobe`` lists; ``bench/semantic_eval.py --speed``
measures its recall against exact search. IVF, unlike HNSW, supports removal, which TTL
expiry and invalidation need.

Every change is an operation: ``{"op": "add", ...}``, ``{"op": "remove", "id": ...}``,
``{"op": "clear"}``. :meth:`FaissIndex.apply` replays one, so a replica that receives the
same operations in order holds the same index. With a ``directory``, operations are
appended to ``journal.jsonl`` there as they happen, and ``close()`` compacts them into a
snapshot (``snapshot.npz``: vectors and a JSON list of ids and meta, no pickle). On start the snapshot is loaded
and the journal replayed, so a crash loses nothing that was written. The directory holds
the cached questions' text (the guards compare it): keep it as private as the cache tiers.
One process owns a directory at a time (a lock file); sharing across processes is the
Redis tier's job.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from dspy_turbo.plugin.components import Component, ComponentUnavailable, Options

SNAPSHOT_VERSION = 1


class IndexOptions(Options):
    exact_up_to: int = Field(default=20_000, ge=1)
    """A scope with more vectors than this uses an approximate (IVF) index."""
    nprobe: int = Field(default=16, ge=1)
    """IVF lists searched per query: more is slower and closer to exact search."""
    directory: str | None = None
    """Where the index persists (journal and snapshot); None keeps it in memory only."""
    max_entries: int | None = Field(default=None, ge=1)
    """Bound on vectors held; past it the oldest are removed."""
    threads: int | None = Field(default=1, ge=1)
    """OpenMP threads of one search (set around the search only, so torch keeps its own). One
    query gains nothing from more, and on a busy machine OpenMP's waiting makes a 0.1 ms search
    take 10 ms. None leaves OpenMP's default."""


def import_faiss():
    try:
        import faiss
        import numpy as np

        probe = faiss.IndexFlatIP(2)  # a broken install fails here, not at the first lookup
        probe.add(np.zeros((1, 2), dtype="float32"))
    except Exception as exc:
        raise ComponentUnavailable(
            f"the faiss index needs the package faiss-cpu, which failed to import or run "
            f"({type(exc).__name__}: {exc}); pip install faiss-cpu", "faiss-cpu") from None
    return faiss


class _Scope:
    """One scope's FAISS index and the ids it holds."""

    def __init__(self, faiss, dimension: int):
        self.faiss = faiss
        self.dimension = dimension
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.approximate = False
        self.trained_at = 0
        self.ids: set[int] = set()

    def vectors(self):
        """Every vector with its id (for moving to IVF and for snapshots)."""
        import numpy as np

        ids = np.array(sorted(self.ids), dtype="int64")
        if not len(ids):
            return ids, np.zeros((0, self.dimension), dtype="float32")
        return ids, np.vstack([self.index.reconstruct(int(i)) for i in ids]).astype("float32")

    def to_ivf(self, nprobe: int) -> None:
        faiss = self.faiss
        ids, vectors = self.vectors()
        # ~4 sqrt(n) lists, with at least 39 training points each (FAISS's own rule of thumb)
        nlist = max(1, min(int(4 * math.sqrt(len(ids))), len(ids) // 39))
        quantizer = faiss.IndexFlatIP(self.dimension)
        index = faiss.IndexIVFFlat(quantizer, self.dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct by id, and removal still works
        index.add_with_ids(vectors, ids)
        index.nprobe = min(nprobe, nlist)
        self.quantizer = quantizer  # the IVF index refers to it: keep it alive as long as the index
        self.index, self.approximate, self.trained_at = index, True, len(ids)


class FaissIndex(Component):
    name: ClassVar[str] = "faiss"
    kind: ClassVar[str] = "similarity_index"
    Options: ClassVar[type[Options]] = IndexOptions

    def __init__(self, options: IndexOptions | None = None):
        super().__init__(options)
        self.faiss = import_faiss()
        self._lock = threading.RLock()
        self._scopes: dict[str, _Scope] = {}
        self._meta: dict[int, tuple[str, dict[str, Any]]] = {}  # id -> (scope, meta); insertion order = age
        self.dimension: int | None = None
        self._journal = None
        self._lockfile = None
        self.directory = Path(self.options.directory).expanduser() if self.options.directory else None
        if self.directory is not None:
            self._open_directory()

    # -- operations (each one replayable) ------------------------------------------------------

    def add(self, scope: str, item_id: int, vector, meta: dict[str, Any]) -> None:
        import numpy as np

        row = np.asarray(vector, dtype="float32").reshape(1, -1)
        with self._lock:
            self._add(scope, int(item_id), row, meta)
            if self._journal is not None:
                self._log({"op": "add", "scope": scope, "id": int(item_id),
                           "vector": base64.b64encode(row.tobytes()).decode(), "meta": meta})
            limit = self.options.max_entries
            while limit is not None and len(self._meta) > limit:
                oldest = next(iter(self._meta))
                self._remove(oldest)
                self._log({"op": "remove", "id": oldest})

    def remove(self, item_id: int) -> bool:
        with self._lock:
            removed = self._remove(int(item_id))
            if removed:
                self._log({"op": "remove", "id": int(item_id)})
            return removed

    def clear(self) -> int:
        with self._lock:
            count = len(self._meta)
            self._scopes.clear()
            self._meta.clear()
            self._log({"op": "clear"})
            return count

    def apply(self, op: dict[str, Any]) -> None:
        """Replay one operation (from the journal, or from another replica)."""
        import numpy as np

        kind = op.get("op")
        with self._lock:
            if kind == "add":
                row = np.frombuffer(base64.b64decode(op["vector"]), dtype="float32").reshape(1, -1)
                self._add(op["scope"], int(op["id"]), row, op.get("meta") or {})
            elif kind == "remove":
                self._remove(int(op["id"]))
            elif kind == "clear":
                self._scopes.clear()
                self._meta.clear()
            else:
                raise ValueError(f"unknown index operation {kind!r}")

    # -- reads ---------------------------------------------------------------------------------

    def search(self, scope: str, vector, k: int) -> list[tuple[int, float, dict[str, Any]]]:
        import numpy as np

        with self._lock:
            holder = self._scopes.get(scope)
            if holder is None or not holder.ids:
                return []
            query = np.asarray(vector, dtype="float32").reshape(1, -1)
            threads = self.options.threads
            if threads is None:
                scores, ids = holder.index.search(query, min(k, len(holder.ids)))
            else:  # OpenMP's thread count is per calling thread: restore it for torch and others
                previous = self.faiss.omp_get_max_threads()
                self.faiss.omp_set_num_threads(threads)
                try:
                    scores, ids = holder.index.search(query, min(k, len(holder.ids)))
                finally:
                    self.faiss.omp_set_num_threads(previous)
            out = []
            for score, item in zip(scores[0], ids[0], strict=True):
                if item < 0:
                    continue
                found = self._meta.get(int(item))
                if found is not None:
                    out.append((int(item), float(score), found[1]))
            return out

    def __len__(self) -> int:
        return len(self._meta)

    def scope_sizes(self) -> dict[str, int]:
        with self._lock:
            return {scope: len(holder.ids) for scope, holder in self._scopes.items()}

    def is_approximate(self, scope: str) -> bool:
        holder = self._scopes.get(scope)
        return bool(holder and holder.approximate)

    # -- internals -------------------------------------------------------------------------------

    def _add(self, scope: str, item_id: int, row, meta: dict[str, Any]) -> None:
        import numpy as np

        if self.dimension is None:
            self.dimension = row.shape[1]
        elif row.shape[1] != self.dimension:
            raise ValueError(f"vector of dimension {row.shape[1]} added to an index of dimension {self.dimension} "
                             "(was the embedder model changed? clear the index directory)")
        if item_id in self._meta:
            self._remove(item_id)
        holder = self._scopes.get(scope)
        if holder is None:
            holder = self._scopes[scope] = _Scope(self.faiss, self.dimension)
        holder.index.add_with_ids(row, np.array([item_id], dtype="int64"))
        holder.ids.add(item_id)
        self._meta[item_id] = (scope, meta)
        size = len(holder.ids)
        # Move to IVF past the bound, and retrain when the scope has doubled since training.
        if size > self.options.exact_up_to and (not holder.approximate or size >= 2 * holder.trained_at):
            holder.to_ivf(self.options.nprobe)

    def _remove(self, item_id: int) -> bool:
        import numpy as np

        found = self._meta.pop(item_id, None)
        if found is None:
            return False
        holder = self._scopes.get(found[0])
        if holder is not None:
            holder.index.remove_ids(np.array([item_id], dtype="int64"))
            holder.ids.discard(item_id)
            if not holder.ids:
                del self._scopes[found[0]]
        return True

    # -- persistence -------------------------------------------------------------------------------

    def _open_directory(self) -> None:
        import fcntl

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lockfile = open(self.directory / "lock", "a+")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise ComponentUnavailable(f"cannot use directory {str(self.directory)!r}: {exc}") from None
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lockfile.close()
            self._lockfile = None
            raise ComponentUnavailable(f"directory {str(self.directory)!r} is in use by another process; "
                                       "give each process its own directory") from None
        self._load()
        self._journal = open(self.directory / "journal.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def _log(self, op: dict[str, Any]) -> None:
        if self._journal is not None:
            self._journal.write(json.dumps(op, separators=(",", ":")) + "\n")
            self._journal.flush()

    def _load(self) -> None:
        import numpy as np

        snapshot = self.directory / "snapshot.npz"
        if snapshot.exists():
            with np.load(snapshot, allow_pickle=False) as data:
                doc = json.loads(data["items"].tobytes().decode("utf-8"))
                rows = data["vectors"]
            if doc.get("version") != SNAPSHOT_VERSION:
                raise ComponentUnavailable(f"{snapshot} has format version {doc.get('version')!r}; "
                                           f"this dspy-turbo-faiss reads {SNAPSHOT_VERSION}")
            for row, item in zip(rows, doc["items"], strict=True):
                self._add(item["scope"], int(item["id"]), row.reshape(1, -1).astype("float32"), item["meta"])
        journal = self.directory / "journal.jsonl"
        if journal.exists():
            with open(journal, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        op = json.loads(line)
                    except json.JSONDecodeError:
                        break  # a torn last line after a crash: everything before it counts
                    self.apply(op)

    def save(self) -> None:
        """Compact: write a snapshot of the index and start an empty journal."""
        import numpy as np

        if self.directory is None:
            return
        with self._lock:
            items, rows = [], []
            for holder_scope, holder in self._scopes.items():
                ids, vectors = holder.vectors()
                for item, row in zip(ids, vectors, strict=True):
                    items.append({"scope": holder_scope, "id": int(item), "meta": self._meta[int(item)][1]})
                    rows.append(row)
            matrix = np.vstack(rows).astype("float32") if rows else np.zeros((0, self.dimension or 0), dtype="float32")
            # One file, replaced atomically: vectors and their ids/meta can never disagree.
            doc = json.dumps({"version": SNAPSHOT_VERSION, "items": items}).encode("utf-8")
            tmp = self.directory / "snapshot.npz.tmp"
            with open(tmp, "wb") as fh:
                np.savez(fh, vectors=matrix, items=np.frombuffer(doc, dtype="uint8"))
            os.replace(tmp, self.directory / "snapshot.npz")
            if self._journal is not None:
                self._journal.close()
            self._journal = open(self.directory / "journal.jsonl", "w", encoding="utf-8")  # noqa: SIM115

    def close(self) -> None:
        with self._lock:
            if self.directory is not None and self._lockfile is not None:
                self.save()
                if self._journal is not None:
                    self._journal.close()
                    self._journal = None
                with contextlib.suppress(OSError):
                    self._lockfile.close()
                self._lockfile = None
