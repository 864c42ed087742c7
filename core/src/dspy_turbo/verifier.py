"""Moved: the semantic cache's verifier is ``dspy_turbo_faiss.verifier``
(``pip install dspy-turbo-faiss``). This path works for one more release, with a
DeprecationWarning."""

from ._moved import moved, moved_module
from .plugin.similarity import WordVectorEmbedder  # noqa: F401 (old path)

moved(__name__, {"WordVectorEmbedder": "dspy_turbo.plugin.similarity"})
moved_module(__name__, "dspy_turbo_faiss.verifier", "dspy-turbo-faiss")
