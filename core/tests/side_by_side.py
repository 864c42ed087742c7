"""Plain DSPy's ``Cache`` and a Turbo on one tier, for tests that make the same calls and
assert the same things on both (the values must come back as they went in, whichever
cache and whichever tier served them).

``dspy-memory`` / ``dspy-disk``: DSPy's own cache with only that level on. ``memory``,
``file``, ``redis``: a Turbo installed with only that tier, so every hit comes from it.
"""

from __future__ import annotations

import dspy
from dspy.clients.cache import Cache

import dspy_turbo

SIDES = ["dspy-memory", "dspy-disk", "memory", "file", "redis"]


class Side:
    def __init__(self, name: str, tmp_path, request):
        self.name = name
        self.turbo = None
        self._previous = dspy.__dict__.get("cache")
        self._own = None
        if name.startswith("dspy-"):
            memory = name == "dspy-memory"
            self._own = Cache(enable_disk_cache=not memory, enable_memory_cache=memory,
                              disk_cache_dir=str(tmp_path / "dspy-disk"))
            dspy.cache = self._own
            return
        tier = {"type": name}
        if name == "file":
            tier["directory"] = str(tmp_path / "turbo-file")
        if name == "redis":
            tier["url"] = request.getfixturevalue("redis_url")
        namespace = request.getfixturevalue("namespace")
        self.turbo = dspy_turbo.load({"namespace": namespace, "cache": {"tiers": [tier]}}).install()

    @property
    def dspy(self) -> bool:
        return self.turbo is None

    def close(self) -> None:
        if self.turbo is not None:
            self.turbo.clear()  # a shared Redis keeps nothing of the test's
            self.turbo.close()
        else:
            close = getattr(self._own.disk_cache, "close", None)
            if close is not None:
                close()
        if self._previous is None:
            dspy.__dict__.pop("cache", None)
        else:
            dspy.cache = self._previous
