"""Every plugin reads of the host only what ``dspy_turbo.plugin.host`` declares.

A component's ``from_options(options, host)`` receives a ``Host``, a feature's lifecycle
hooks a ``FeatureHost``, the batch machinery a ``BatchHost``; the ``Turbo`` behind them has
much more, which may change between releases. This reads the sources of every plugin and
example in the repository and fails on an attribute of the host (a name or attribute called
``host``, ``turbo``, ``_turbo``, ``component_host``...) that its protocol does not declare,
and on an attribute of its ``cache``, ``bus``, ``coordinator`` or ``config`` that theirs does
not; a keyword argument a declared method does not take (``cache.get(fresh=True)``) fails too.
``getattr(turbo, "name")`` counts as reading ``name``, ``config = turbo.config`` makes
``config`` the host's config.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dspy_turbo.plugin import batch, coordination, host

REPO = Path(__file__).resolve().parents[2]
HOST_NAMES = frozenset({"host", "turbo", "_host", "_turbo", "component_host"})
"""What a plugin calls the object it received from the host (a parameter, ``self.turbo``...)."""


def declared(protocol: type) -> frozenset[str]:
    """The members a protocol declares, its bases' included (annotations, methods, properties)."""
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls is object or cls.__module__ == "typing":
            continue
        names.update(getattr(cls, "__annotations__", {}))
        names.update(n for n in vars(cls) if not n.startswith("_") or n == "__bool__")
    return frozenset(names)


TOP = (host.FeatureHost, batch.BatchHost)
"""What the host object itself declares: a feature's hooks get a FeatureHost, the batch machinery a BatchHost."""
PARTS = {"cache": (host.Tiers,), "bus": (host.EventBus,), "config": (host.HostConfig,),
         "coordinator": (coordination.Coordinator,), "component_host": (host.Host,)}


def _member(protocols: tuple[type, ...], name: str) -> tuple[bool, Any]:
    """Whether one of ``protocols`` declares ``name``, and its definition (a method's function)."""
    for protocol in protocols:
        if name in declared(protocol):
            return True, getattr(protocol, name, None)
    return False, None


def _keywords_refused(function: Any, call: ast.Call) -> list[str]:
    """The keyword arguments of ``call`` that the declared method ``function`` does not take."""
    if not callable(function) or isinstance(function, type):
        return []
    params = inspect.signature(function).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return []
    return [k.arg for k in call.keywords if k.arg is not None and k.arg not in params]


def _is_host(node: ast.AST) -> bool:
    """``turbo``, ``host``..., or ``self.turbo``, ``self.strategy.turbo``... (``options.host`` is a setting)."""
    if isinstance(node, ast.Name):
        return node.id in HOST_NAMES
    if not (isinstance(node, ast.Attribute) and node.attr in HOST_NAMES):
        return False
    root = node.value
    while isinstance(root, ast.Attribute):
        root = root.value
    return isinstance(root, ast.Name) and root.id == "self"


def _bound_to_other(function: ast.AST) -> set[str]:
    """Host names a function binds to something else (``host = options.host``: a host name, a string)."""
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in HOST_NAMES for t in node.targets):
            value = node.value
            loaded = isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "load"
            if not (_is_host(value) or loaded):  # another name for the host, or a Turbo loaded by the plugin
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _part_aliases(function: ast.AST) -> dict[str, str]:
    """Names a function binds to a part of the host (``config = turbo.config``): name -> part."""
    aliases = {}
    for node in ast.walk(function):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Attribute) and node.value.attr in PARTS and _is_host(node.value.value)):
            aliases[node.targets[0].id] = node.value.attr
    return aliases


def _getattr_name(node: ast.AST) -> tuple[ast.AST, str] | None:
    """``(obj, "name")`` for ``getattr(obj, "name"[, default])`` / ``hasattr(obj, "name")``."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
        return node.args[0], node.args[1].value
    return None


def _read(node: ast.AST) -> tuple[ast.AST, str] | None:
    """``(obj, name)`` when ``node`` reads attribute ``name`` of ``obj``."""
    if isinstance(node, ast.Attribute):
        return node.value, node.attr
    return _getattr_name(node)


class _Reads(ast.NodeVisitor):
    def __init__(self, where: str):
        self.where, self.found, self.other, self.calls, self.parts = where, [], [set()], {}, [{}]

    def _function(self, node):
        self.other.append(self.other[-1] | _bound_to_other(node))
        self.parts.append({**self.parts[-1], **_part_aliases(node)})
        self.generic_visit(node)
        self.other.pop()
        self.parts.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def _host(self, node: ast.AST) -> bool:
        return _is_host(node) and not (isinstance(node, ast.Name) and node.id in self.other[-1])

    def _check(self, node: ast.AST, protocols: tuple[type, ...], label: str, name: str, call: ast.Call | None) -> None:
        known, definition = _member(protocols, name)
        if not known:
            self.found.append(f"{self.where}:{node.lineno}: {label}.{name}")
        elif call is not None:
            for keyword in _keywords_refused(definition, call):
                self.found.append(f"{self.where}:{node.lineno}: {label}.{name}({keyword}=...)")

    def generic_visit(self, node):
        read = _read(node)
        if read is not None:
            owner, name = read
            call = self.calls.get(id(node))
            if self._host(owner):
                self._check(node, TOP, ast.unparse(owner), name, call)
            inner = _read(owner)
            if inner is not None and self._host(inner[0]) and inner[1] in PARTS:
                self._check(node, PARTS[inner[1]], f"{ast.unparse(inner[0])}.{inner[1]}", name, call)
            elif isinstance(owner, ast.Name) and owner.id in self.parts[-1]:
                self._check(node, PARTS[self.parts[-1][owner.id]], owner.id, name, call)
        if isinstance(node, ast.Call):
            self.calls[id(node.func)] = node
        super().generic_visit(node)


def undeclared_reads(source: str, where: str = "<source>") -> list[str]:
    """``where:line: host.name`` for every read of a host attribute its protocol does not declare."""
    reads = _Reads(where)
    reads.visit(ast.parse(source))
    return sorted(set(reads.found))


def plugin_sources() -> list[Path]:
    roots = [p / "src" for p in sorted((REPO / "plugins").iterdir())] + [p / "src" for p in sorted((REPO / "examples").iterdir())]
    return [f for root in roots if root.is_dir() for f in sorted(root.rglob("*.py"))]


def test_every_plugin_reads_only_what_the_host_protocols_declare():
    sources = plugin_sources()
    assert any("dspy_turbo_faiss" in str(f) for f in sources) and any("dspy_turbo_batching" in str(f) for f in sources)
    problems = [p for f in sources for p in undeclared_reads(f.read_text(encoding="utf-8"), str(f.relative_to(REPO)))]
    assert not problems, ("plugins read host attributes that dspy_turbo.plugin.host does not declare (declare them "
                          "there, documented, or read what it offers):\n" + "\n".join(problems))


@pytest.mark.parametrize("source, expected", [
    ("def f(turbo):\n    return turbo.keys.prefix", ["turbo.keys"]),
    ("class S:\n    def m(self):\n        return self.turbo.default_ttl + len(self.turbo.singleflight)", ["self.turbo.singleflight"]),
    ("def f(host):\n    host.bus.add('x', print)\n    host.bus.handlers", ["host.bus.handlers"]),
    ("def f(turbo):\n    return turbo.cache.get('k', count_miss=False), turbo.cache.failed", ["turbo.cache.failed"]),
    ("def f(self):\n    self.turbo.cache.get('k', fresh=True)\n    self.turbo.store('k', 1, model='m', level='x')",
     ["self.turbo.cache.get(fresh=...)", "self.turbo.store(level=...)"]),
    ("def f(turbo):\n    return getattr(turbo, 'pm', None), getattr(getattr(turbo, 'bus', None), 'sink_errors', 0)",
     ["turbo.bus.sink_errors", "turbo.pm"]),
    ("def f(self):\n    return self.strategy.turbo.config.components", ["self.strategy.turbo.config.components"]),
    ("def f(turbo):\n    config = turbo.config\n    return config.section('x'), config.semantic_index", ["config.semantic_index"]),
    ("def f(options):\n    host = options.host\n    return host.lower()", []),
    ("def f(turbo):\n    t = turbo\n    return turbo.key_material({}) + turbo.key_prefix.encode(), turbo.store('k', 1)", []),
])
def test_the_check_catches_an_undeclared_read(source, expected):
    assert [p.split(": ", 1)[1] for p in undeclared_reads(textwrap.dedent(source))] == expected
