"""Registration: the ``faiss`` similarity index and the ``sentence-transformers`` embedder.

Importing this module is cheap: faiss, torch and sentence-transformers are imported only
when a Turbo whose config uses them is built.
"""

from __future__ import annotations

import dspy_turbo

from .embedder import SentenceTransformerEmbedder
from .index import FaissIndex


@dspy_turbo.hookimpl
def dspy_turbo_similarity_search():
    return [FaissIndex, SentenceTransformerEmbedder]
