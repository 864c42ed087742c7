"""Example dspy-turbo similarity index: exact cosine search over numpy arrays (``type: numpy``)."""

from .index import NumpyIndex, NumpyIndexOptions

__all__ = ["NumpyIndex", "NumpyIndexOptions"]
