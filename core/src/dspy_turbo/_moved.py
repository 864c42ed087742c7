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


def _import_moved(old: str, target: str, distribution: str):
    """``target`` (in a plugin distribution), or an ImportError that says what to install."""
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is None or not target.startswith(exc.name):
            raise  # the plugin is there but something it imports is not: its own error
        raise ModuleNotFoundError(f"{old} moved to {target}, in the {distribution} distribution, which is not "
                                  f"installed: pip install {distribution}", name=exc.name) from None


def moved_to_plugin(module_name: str, target: str, distribution: str, names: tuple[str, ...]):
    """The ``__getattr__`` of an old core module whose ``names`` moved into a plugin distribution's
    module ``target``: reading one warns, then imports ``target`` (only then: the core imports no
    plugin when it is imported); with the distribution missing, an ImportError says what to install."""
    wanted = frozenset(names)

    def __getattr__(name: str):
        if name not in wanted:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        warnings.warn(f"{module_name}.{name} moved to {target}.{name} (the {distribution} distribution); import it "
                      f"from there (the old path is removed in the next release)", DeprecationWarning, stacklevel=2)
        return getattr(_import_moved(f"{module_name}.{name}", target, distribution), name)

    return __getattr__


def moved_module(module_name: str, target: str, distribution: str) -> None:
    """Make ``module_name`` (a whole module that moved into a plugin distribution) read its
    names from ``target``, warning that it moved; ``target`` is imported on the first read."""
    module = sys.modules[module_name]

    def __getattr__(name: str):
        if name.startswith("__"):  # import machinery and introspection: not a moved name
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        warnings.warn(f"{module_name} moved to {target} (the {distribution} distribution); import it from there "
                      f"(the old path is removed in the next release)", DeprecationWarning, stacklevel=2)
        return getattr(_import_moved(module_name, target, distribution), name)

    module.__getattr__ = __getattr__
