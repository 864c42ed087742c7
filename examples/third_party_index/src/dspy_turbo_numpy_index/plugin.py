"""Registration: the ``numpy`` similarity index, for ``cache.semantic.index: {type: numpy}``.

Importing this module is cheap: numpy is imported when a Turbo whose config uses the index
builds it.
"""

from __future__ import annotations

from dspy_turbo.plugin import hookimpl


@hookimpl
def dspy_turbo_similarity_search():
    from .index import NumpyIndex

    return [NumpyIndex]
