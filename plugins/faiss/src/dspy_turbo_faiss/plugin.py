"""Registration: the ``faiss`` similarity index, the ``sentence-transformers`` embedder, the
semantic cache that uses them (the ``cache.semantic`` section, ``turbo.semantic``: ``feature``)
and ``dspy-turbo calibrate``.

Importing this module is cheap: faiss, torch and sentence-transformers are imported only
when a Turbo whose config uses them is built.
"""

from __future__ import annotations

import dspy_turbo

from .embedder import SentenceTransformerEmbedder
from .feature import (  # noqa: F401 (the semantic cache's hooks, registered with this module)
    dspy_turbo_clear,
    dspy_turbo_config_sections,
    dspy_turbo_invalidate,
    dspy_turbo_reset_stats,
    dspy_turbo_shutdown,
    dspy_turbo_startup,
    dspy_turbo_stats,
)
from .index import FaissIndex


@dspy_turbo.hookimpl
def dspy_turbo_similarity_search():
    return [FaissIndex, SentenceTransformerEmbedder]


@dspy_turbo.hookimpl
def dspy_turbo_commands(cli):
    from .commands import add_commands

    add_commands(cli)
