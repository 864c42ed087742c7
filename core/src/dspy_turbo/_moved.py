"""Old import paths of names that moved into the SDK (``dspy_turbo.plugin``).

A published plugin may still import a contract from where it used to live
(``from dspy_turbo.batching import BatchStrategy``). That keeps working for one release
and warns with a ``DeprecationWarning`` naming the new place. The old module keeps using
the name itself without a warning: its own code reads its globals, never its attributes.
"""

from __future__ import annotations

import sys
import types
import warnings


def moved(module_name: str, names: dict[str, str]) -> None:
    """Make reading ``module_name.<name>`` from outside warn that it moved to ``names[name]``."""
    module = sys.modules[module_name]
    table = dict(names)

    class _OldPath(types.ModuleType):
        def __getattribute__(self, name: str):
            target = table.get(name)
            if target is not None:
                warnings.warn(f"{module_name}.{name} moved to {target}.{name}; import it from there "
                              f"(the old path is removed in the next release)", DeprecationWarning, stacklevel=2)
            return super().__getattribute__(name)

    _OldPath.__name__ = type(module).__name__
    module.__class__ = _OldPath
