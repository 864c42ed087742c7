"""Moved: the embedder's micro-batcher is ``dspy_turbo_faiss.micro_batcher``
(``pip install dspy-turbo-faiss``). This path works for one more release, with a
DeprecationWarning."""

from ._moved import moved_module

moved_module(__name__, "dspy_turbo_faiss.micro_batcher", "dspy-turbo-faiss")
