"""What the forkserver of the ``process`` strategy imports before it forks any worker.

DSPy, dspy-turbo, the worker's own code and every installed dspy-turbo plugin's module
(the ``dspy_turbo`` entry points: what a worker's ``dspy_turbo.load`` imports first, a
Redis client or FAISS among them). A worker forked from there finds them imported and
builds its Turbo in milliseconds instead of importing them again. Nothing is registered
or started here: importing a module is all this does.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points

from . import processworker  # noqa: F401  (DSPy and dspy-turbo with it)


def _plugins() -> None:
    for entry in entry_points(group="dspy_turbo"):
        try:
            importlib.import_module(entry.module)
        except Exception as exc:  # the worker's own load reports a broken plugin; a preload only saves time
            logging.getLogger("dspy_turbo.batching").debug("preloading plugin %s: %s", entry.name, exc)


_plugins()
