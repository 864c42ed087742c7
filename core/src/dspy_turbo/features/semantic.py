"""Moved: the semantic cache's feature (the ``cache.semantic`` section and its hooks) is ``dspy_turbo_faiss.feature``
(``pip install dspy-turbo-faiss``). This path works for one more release, with a
DeprecationWarning."""

from .._moved import moved_module

moved_module(__name__, "dspy_turbo_faiss.feature", "dspy-turbo-faiss")
