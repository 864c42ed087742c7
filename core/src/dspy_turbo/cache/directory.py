"""dspy-turbo's own directory on this machine: the file tier's default, and files it derives
once and reuses (an embedding model exported for ONNX Runtime)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$DSPY_TURBO_CACHE_DIR``, else ``$XDG_CACHE_HOME/dspy-turbo``, else ``~/.cache/dspy-turbo``."""
    explicit = os.environ.get("DSPY_TURBO_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "dspy-turbo"
