"""The semantic cache's two components: a similarity index and an embedder.

Both are components (``kind = "similarity_index"`` under ``cache.semantic.index``,
``kind = "embedder"`` under ``cache.semantic.embedder``) registered through
``dspy_turbo_similarity_search``; their instances provide the protocols below. They only
store vectors and embed text: what is embedded, the scope, the guards, the threshold,
micro-batching and the embedding cache are the semantic cache's (``dspy_turbo_faiss.semantic``).
``dspy_turbo.testing.SimilarityIndexSuite`` and ``EmbedderSuite`` check every rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .components import ComponentUnavailable

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ComponentUnavailable", "Embedder", "SimilarityIndex", "WordVectorEmbedder"]


@runtime_checkable
class Embedder(Protocol):
    """What an ``embedder`` component provides. The verifier, when switched on, also needs
    ``word_vectors`` (:class:`WordVectorEmbedder`)."""

    dimension: int
    max_tokens: int
    """Inputs longer than this (in the model's tokens) are not embedded: the model would cut them."""
    vector_space: str
    """Optional (default ``""``): names what its vectors depend on (model, precision), the same
    on every host. It is part of every scope, so vectors of two embedders are never compared:
    changing the model or its precision starts the semantic cache afresh instead of matching
    new queries against the old model's vectors (same dimension, other meaning)."""

    def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dimension)`` float32 rows, L2-normalised (inner product = cosine)."""

    def count_tokens(self, text: str) -> int:
        """How many tokens the model reads for ``text`` (special tokens included)."""


@runtime_checkable
class SimilarityIndex(Protocol):
    """What a ``similarity_index`` component provides. Every change is an operation
    (``add``, ``remove``, ``clear``) that another replica can replay in order."""

    def add(self, scope: str, item_id: int, vector: np.ndarray, meta: dict[str, Any]) -> None:
        """Insert (or replace) one vector in ``scope``; ``meta`` is JSON-able and comes back from search."""

    def remove(self, item_id: int) -> bool:
        """Take one vector out; False when it was not there."""

    def search(self, scope: str, vector: np.ndarray, k: int) -> list[tuple[int, float, dict[str, Any]]]:
        """Up to ``k`` ``(item_id, cosine, meta)`` in ``scope``, best first."""

    def clear(self) -> int:
        """Remove everything; returns how many vectors were removed."""

    def __len__(self) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class WordVectorEmbedder(Protocol):
    """What the verifier needs from the ``embedder`` component."""

    def word_vectors(self, text: str) -> tuple[list[str], np.ndarray]:
        """The words of ``text`` and one L2-normalised contextual vector per word."""

    def embed(self, texts: list[str]) -> np.ndarray: ...
