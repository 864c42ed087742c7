"""Old import paths of names that moved into the SDK (``dspy_turbo.plugin``).

A published plugin may still import a contract from where it used to live
(``from dspy_turbo.batching import BatchStrategy``). That keeps working for one release
and warns with a ``DeprecationWarning`` naming the new place. The old module keeps using
the name itself without a warning: its own code reads its globals, never its attributes.
A whole module that moved into a plugin distribution (``dspy_turbo.dashboard``) keeps a
stub at its old path that reads its names from the new one (:func:`moved_module`).
"""

from __future__ import annotations

import importlib
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


def moved_module(module_name: str, target: str, distribution: str) -> None:
    """Make ``module_name`` (a module that moved into a plugin distribution) read its names
    from ``target``, warning that it moved. ``target`` is imported on the first read of a
    name, never when the old module is imported: the core does not import a plugin, and
    without the plugin installed the read says what to install."""
    module = sys.modules[module_name]

    def __getattr__(name: str):
        if name.startswith("__"):  # import machinery and introspection: not a moved name
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        warnings.warn(f"{module_name} moved to {target} (the {distribution} distribution); import it from there "
                      f"(the old path is removed in the next release)", DeprecationWarning, stacklevel=2)
        try:
            new = importlib.import_module(target)
        except ImportError:
            raise ImportError(f"{module_name} moved to {target}: pip install {distribution}", name=target) from None
        return getattr(new, name)

    module.__getattr__ = __getattr__
