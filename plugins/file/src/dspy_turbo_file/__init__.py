"""dspy-turbo-file: the ``file`` cache tier (diskcache on local disk)."""

from .backend import FileBackend, FileOptions, default_directory

__all__ = ["FileBackend", "FileOptions", "default_directory"]
