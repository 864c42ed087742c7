"""Moved: the semantic cache's guards is ``dspy_turbo_faiss.guards``
(``pip install dspy-turbo-faiss``). This path works for one more release, with a
DeprecationWarning."""

from ._moved import moved_module

moved_module(__name__, "dspy_turbo_faiss.guards", "dspy-turbo-faiss")
