"""dspy-turbo batch strategies: ``thread`` and ``async`` (see ``dspy_turbo.plugin.batch``)."""

from .asynchronous import AsyncStrategy
from .thread import ThreadStrategy

__all__ = ["AsyncStrategy", "ThreadStrategy"]
