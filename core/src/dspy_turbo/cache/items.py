"""The item cache's keys: a completed result of ``program(**inputs)`` under a program-level key.

``turbo.batch`` (the batch machinery of dspy-turbo-batching, through ``dspy_turbo.host.batching``)
and ``dspy_turbo.CachedModule`` store a program's completed results under the same keys, so a
result computed by either is a hit for the other. Which programs may be served this way,
and the identity the key is made of: :mod:`dspy_turbo.cache.program_identity`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .program_identity import library_program, program_identity

if TYPE_CHECKING:
    from ..host.turbo import Turbo


def item_key(turbo: Turbo, program: Any, inputs: dict[str, Any], prefix: str | None = None) -> str | None:
    """The program-level key of one item (``None`` when the program or inputs cannot be keyed)."""
    try:
        if prefix is None:
            prefix = program_key(turbo, program)
        return turbo.key({"_fn_identifier": "dspy_turbo.batch_item", "program": prefix, "inputs": inputs})
    except Exception:  # unkeyable: run without the item cache; LM requests are still cached
        return None


def uses_item_cache(setting: bool | None, program: Any) -> bool:
    """Whether a program's completed results are cached (``item_cache``: see BatchOptions)."""
    return setting if setting is not None else library_program(program) is None


def program_key(turbo: Turbo, program: Any) -> str:
    return turbo.key({"_fn_identifier": "dspy_turbo.program", "program": program_identity(program)})


_installed_by_batches: dict[int, int] = {}
_install_lock = threading.Lock()


def ensure_installed(turbo: Turbo) -> Callable[[], None] | None:
    """LM requests go through a Turbo only when one is installed: with none installed, this
    one is, for as long as any of its batches runs. Returns the undo, or None."""
    from ..integration.dspy_cache import active

    with _install_lock:
        current = active()
        if current is None:
            turbo.install()
            _installed_by_batches[id(turbo)] = 1
        elif current is turbo and id(turbo) in _installed_by_batches:
            _installed_by_batches[id(turbo)] += 1
        else:
            return None

    def undo() -> None:
        with _install_lock:
            left = _installed_by_batches.get(id(turbo), 1) - 1
            if left > 0:
                _installed_by_batches[id(turbo)] = left
                return
            _installed_by_batches.pop(id(turbo), None)
            turbo.uninstall()

    return undo
