"""Moved: the semantic cache's judge is ``dspy_turbo_faiss.judge``
(``pip install dspy-turbo-faiss``). This path works for one more release, with a
DeprecationWarning."""

from ._moved import moved_module

moved_module(__name__, "dspy_turbo_faiss.judge", "dspy-turbo-faiss")
