"""Old import paths of names and modules that moved: into the SDK (``dspy_turbo.plugin``),
into a plugin distribution, or into the core's own subpackages.

A published plugin may still import a contract from where it used to live
(``from dspy_turbo.batching import BatchStrategy``). That keeps working for one release
and warns with a ``DeprecationWarning`` naming the new place. The old module keeps using
the name itself without a warning: its own code reads its globals, never its attributes.
A whole module that moved into a plugin distribution (``dspy_turbo.dashboard``) keeps a
stub at its old path that reads its names from the new one (:func:`moved_module`).

A core module that moved into a subpackage (``dspy_turbo.cache.keys`` is ``dspy_turbo.cache.keys``)
is listed in :data:`MODULES`; a finder (installed when ``dspy_turbo/__init__.py`` imports this
module, first) serves the old path from that table: ``import dspy_turbo.cache.keys`` and ``from dspy_turbo import
keys`` give the very module object of the new path (so patching one patches the other),
with one ``DeprecationWarning`` per process naming the new path. Where the old module's
name is now a package (``dspy_turbo.events``), the package reads the old module's names
from the new one, warning (:func:`moved_into`).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
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


# old module path -> new module path, for the core modules that moved into subpackages
MODULES: dict[str, str] = {
    "dspy_turbo.plugins": "dspy_turbo.host.plugin_manager",
    "dspy_turbo.config": "dspy_turbo.host.config",
    "dspy_turbo.components": "dspy_turbo.host.components",
    "dspy_turbo.units": "dspy_turbo.host.units",
    "dspy_turbo.redaction": "dspy_turbo.host.redaction",
    "dspy_turbo.turbo": "dspy_turbo.host.turbo",
    "dspy_turbo.batching": "dspy_turbo.host.batching",
    "dspy_turbo.keys": "dspy_turbo.cache.keys",
    "dspy_turbo.entry": "dspy_turbo.cache.entry",
    "dspy_turbo.codec": "dspy_turbo.cache.codec",
    "dspy_turbo.memory": "dspy_turbo.cache.memory",
    "dspy_turbo.tiered": "dspy_turbo.cache.tiered",
    "dspy_turbo.breaker": "dspy_turbo.cache.breaker",
    "dspy_turbo.backend": "dspy_turbo.cache.backend",
    "dspy_turbo.integrity": "dspy_turbo.cache.integrity",
    "dspy_turbo.admission": "dspy_turbo.cache.admission",
    "dspy_turbo.controls": "dspy_turbo.cache.controls",
    "dspy_turbo.transfer": "dspy_turbo.cache.transfer",
    "dspy_turbo.cache_dir": "dspy_turbo.cache.directory",
    "dspy_turbo.items": "dspy_turbo.cache.items",
    "dspy_turbo.programs": "dspy_turbo.cache.program_identity",
    "dspy_turbo.cached": "dspy_turbo.cache.cached_functions",
    "dspy_turbo.cached_module": "dspy_turbo.cache.cached_module",
    "dspy_turbo.dspy_integration": "dspy_turbo.integration.dspy_cache",
    "dspy_turbo.callpolicy": "dspy_turbo.integration.call_dispatch",
    "dspy_turbo.metadata_memo": "dspy_turbo.integration.metadata_memo",
    "dspy_turbo.signature_text": "dspy_turbo.integration.signature_text",
    "dspy_turbo.handoff": "dspy_turbo.events.sink_queue",
    "dspy_turbo.stats": "dspy_turbo.events.stats",
    "dspy_turbo.alerts": "dspy_turbo.events.alerts",
    "dspy_turbo.profiling": "dspy_turbo.events.profiling",
    "dspy_turbo.singleflight": "dspy_turbo.coordination.singleflight",
    "dspy_turbo.shared_log": "dspy_turbo.coordination.shared_log",
    "dspy_turbo.invalidation": "dspy_turbo.coordination.invalidation",
    "dspy_turbo.router": "dspy_turbo.routing.router",
    "dspy_turbo.costs": "dspy_turbo.routing.costs",
    "dspy_turbo.budget": "dspy_turbo.routing.budget",
    "dspy_turbo.context": "dspy_turbo.routing.context",
    "dspy_turbo.offline": "dspy_turbo.engines.offline",
    "dspy_turbo.openai_server": "dspy_turbo.engines.openai_server",
    "dspy_turbo.demo": "dspy_turbo.cli.demo",
    "dspy_turbo.hookspecs": "dspy_turbo.plugin.hookspecs",
}


def _warn(message: str) -> None:
    """A DeprecationWarning attributed to the code that imported or read the old path
    (not to the import machinery, this module or the package's ``__getattr__``)."""
    # warnings.warn itself passes over the frozen import machinery's frames (stacklevel > 1)
    frame, level = sys._getframe(0), 1
    while frame is not None and (frame.f_code.co_filename in _OURS
                                 or frame.f_code.co_filename.startswith("<frozen importlib")):
        if not frame.f_code.co_filename.startswith("<frozen"):
            level += 1
        frame = frame.f_back
    warnings.warn(message, DeprecationWarning, stacklevel=level)


_OURS = frozenset({__file__, importlib.__file__, os.path.join(os.path.dirname(__file__), "__init__.py")})


def _moved_message(old: str, new: str) -> str:
    return f"{old} moved to {new}; import it from there (the old path is removed in the next release)"


class _OldModulePaths:
    """A ``sys.meta_path`` finder and loader for the old paths in :data:`MODULES`: the module
    "loaded" under an old path is the new path's module itself (its ``__spec__`` kept)."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname not in MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        new = MODULES[spec.name]
        _warn(_moved_message(spec.name, new))
        module = importlib.import_module(new)
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # the import system set the old path's spec on the module: give it back its own
        own = module.__spec__.loader_state
        if own is not None:
            module.__spec__ = own

    def get_code(self, fullname: str):
        """``python -m <old path>``: warns, then runs the new module as ``__main__`` (with its own
        package, so its relative imports are the new paths)."""
        new = MODULES[fullname]
        source = (f"import runpy, warnings\nwarnings.warn({_moved_message(fullname, new)!r}, DeprecationWarning)\n"
                  f"runpy.run_module({new!r}, run_name='__main__', alter_sys=True)\n")
        return compile(source, f"<{fullname}: moved to {new}>", "exec")


_FINDER = _OldModulePaths()


def install_finder() -> None:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


install_finder()  # on import: dspy_turbo/__init__.py imports this module first


def keep_public_names(package: str) -> None:
    """The import system sets each submodule it imports as an attribute of its package. An old
    path named like a public name of the package (``dspy_turbo.cached``, also the decorator)
    must not replace that name with the module when it is imported."""
    module = sys.modules[package]

    class _Package(type(module)):
        def __setattr__(self, name: str, value) -> None:
            if isinstance(value, types.ModuleType) and f"{package}.{name}" in MODULES \
                    and not isinstance(self.__dict__.get(name, value), types.ModuleType):
                return
            super().__setattr__(name, value)

    _Package.__name__ = type(module).__name__
    module.__class__ = _Package


def old_module(package: str, name: str):
    """``package.name`` read as an attribute (``dspy_turbo.cache.keys`` without importing it first):
    the moved module, imported through its old path (so it warns), or None."""
    old = f"{package}.{name}"
    return importlib.import_module(old) if old in MODULES else None


def moved_into(package: str, target: str):
    """The ``__getattr__`` of a package that took the name of a moved module: reading one of
    that module's names (``dspy_turbo.events.Event``) warns and gives ``target``'s name
    (``dspy_turbo.events.bus.Event``). The package's own submodules are never shadowed."""
    folder = os.path.dirname(sys.modules[package].__file__)

    def __getattr__(name: str):
        if name.startswith("__") or os.path.exists(os.path.join(folder, f"{name}.py")) \
                or os.path.isdir(os.path.join(folder, name)):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(target)
        try:
            value = getattr(module, name)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        _warn(_moved_message(f"{package}.{name}", f"{target}.{name}"))
        return value

    return __getattr__
