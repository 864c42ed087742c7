"""Moved: the semantic index's replication across processes is ``dspy_turbo_faiss.replication``
(``pip install dspy-turbo-faiss``). This path works for one more release, with a
DeprecationWarning."""

from ._moved import moved_module

moved_module(__name__, "dspy_turbo_faiss.replication", "dspy-turbo-faiss")
