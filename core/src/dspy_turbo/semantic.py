"""Moved: the semantic cache (``SemanticCache``, ``extract``, ``pick``, ``rejection``) is ``dspy_turbo_faiss.semantic``
(``pip install dspy-turbo-faiss``). This path works for one more release, with a
DeprecationWarning."""

from ._moved import moved, moved_module
from .plugin.similarity import ComponentUnavailable, Embedder, SimilarityIndex  # noqa: F401 (old paths)

moved(__name__, {"SimilarityIndex": "dspy_turbo.plugin.similarity", "Embedder": "dspy_turbo.plugin.similarity",
                 "ComponentUnavailable": "dspy_turbo.plugin.components"})
moved_module(__name__, "dspy_turbo_faiss.semantic", "dspy-turbo-faiss")
