"""Old import paths of names that moved into the SDK (``dspy_turbo.plugin``).

A published plugin may still import a contract from where it used to live
(``from dspy_turbo.batching import BatchStrategy``). That keeps working for one release
and warns with a ``DeprecationWarning`` naming the new place. The old module keeps using
the name itself without a warning: its own code reads its globals, never its attributes.
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
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name is None or not target.startswith(exc.name):
                raise
            raise ModuleNotFoundError(f"{module_name}.{name} moved to {target}, in the {distribution} distribution, "
                                      f"which is not installed: pip install {distribution}", name=exc.name) from None
        return getattr(module, name)

    return __getattr__
