"""Markdown for the generated parts of the docs: configuration, CLI, hooks, events, contracts, API.

Each ``*_reference`` function returns the Markdown a page marker is replaced with (see
``mkdocs_hooks.py``); the ``*_keys``/``*_names`` functions list what a page must document,
for ``tests/docs``. Everything is read through ``docs_sources``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import os
import re
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

import docs_sources as src
import yaml
from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined

NOTES_FILE = Path(__file__).with_name("field_notes.yml")

# -- docstrings ------------------------------------------------------------------------------

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`~?([^`<]+?)(?:\s*<([^>]+)>)?`")


def _role(match: re.Match) -> str:
    text, target = match.group(1).strip(), match.group(2)
    if target is None and not match.group(0).startswith(":mod:") and "~" in match.group(0):
        text = text.rsplit(".", 1)[-1]
    return f"`{text}`"


def md_doc(doc: str | None) -> str:
    """A reST-flavoured docstring as Markdown: roles become code, ``::`` blocks become fenced code."""
    if not doc:
        return ""
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            out.append(_ROLE.sub(_role, line.rstrip()[:-1].rstrip(" :") + ":") if line.strip() != "::" else "")
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            code = textwrap.dedent("\n".join(block)).strip("\n")
            lang = "yaml" if re.match(r"^\s*[\w.]+:\s", code) and "(" not in code.split("\n")[0] else \
                "toml" if code.lstrip().startswith("[") else "python"
            out += ["", f"```{lang}", code, "```", ""]
            continue
        out.append(_ROLE.sub(_role, line))
        i += 1
    return "\n".join(out).strip()


def first_paragraph(doc: str | None) -> str:
    text = md_doc(doc)
    return text.split("\n\n", 1)[0].replace("\n", " ") if text else ""


def attribute_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string right after ``name: T = ...``) of a class and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or klass.__module__ in ("builtins", "typing", "pydantic.main"):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        node = tree.body[0]
        if not isinstance(node, ast.ClassDef):
            continue
        for a, b in zip(node.body, node.body[1:], strict=False):
            target = a.target if isinstance(a, ast.AnnAssign) else a.targets[0] if isinstance(a, ast.Assign) else None
            if (isinstance(target, ast.Name) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)
                    and isinstance(b.value.value, str)):
                docs[target.id] = b.value.value
    return docs


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# -- types and values ------------------------------------------------------------------------


def _validator_unit(meta: Any) -> str | None:
    func = getattr(meta, "func", None)
    name = getattr(func, "__name__", "")
    return "duration" if "duration" in name else "size" if "size" in name else None


def _unit_of(ann: Any, metadata: list | None = None) -> str | None:
    for meta in metadata or ():
        if _validator_unit(meta):
            return _validator_unit(meta)
    if typing.get_origin(ann) is typing.Annotated:
        for meta in ann.__metadata__:
            if _validator_unit(meta):
                return _validator_unit(meta)
    for arg in typing.get_args(ann):
        unit = _unit_of(arg) if typing.get_origin(ann) is not typing.Annotated else None
        if unit:
            return unit
    return None


def models_in(ann: Any) -> list[type[BaseModel]]:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    return [m for arg in typing.get_args(ann) for m in models_in(arg)]


def type_name(ann: Any, metadata: list | None = None, link: dict[type, str] | None = None) -> str:
    unit = _validator_unit(next((m for m in metadata or () if _validator_unit(m)), None))
    if unit:
        return unit
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Annotated:
        return type_name(args[0], list(ann.__metadata__), link)
    if ann is type(None):
        return "null"
    if ann is typing.Any:
        return "any"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(type_name(a, None, link) for a in args))
    if origin is typing.Literal:
        return " | ".join(f"`{json.dumps(a)}`" for a in args)
    if origin in (list, tuple, set, frozenset):
        return f"list of {type_name(args[0], None, link)}" if args else "list"
    if origin is dict:
        return f"mapping: name → {type_name(args[1], None, link)}" if len(args) == 2 else "mapping"
    if isinstance(ann, type):
        if issubclass(ann, BaseModel):
            anchor = (link or {}).get(ann)
            return f"[mapping](#{anchor})" if anchor else "mapping"
        if issubclass(ann, SecretStr):
            return "string (secret)"
        return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(ann, ann.__name__)
    return str(ann).replace("typing.", "")


def _human(seconds_or_bytes: float, unit: str) -> str:
    if unit == "duration":
        for suffix, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001)):
            amount = seconds_or_bytes / size
            if amount >= 1 and abs(amount - round(amount)) < 1e-9:
                return f"{round(amount)}{suffix}"
        return f"{seconds_or_bytes:g}s"
    for suffix, size in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if seconds_or_bytes >= size and seconds_or_bytes % size == 0:
            return f"{int(seconds_or_bytes // size)}{suffix}"
    return f"{int(seconds_or_bytes)}B"


def default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except Exception:
            return "computed"
        if not isinstance(value, (list, dict)):
            return "computed"
    else:
        value = field.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, BaseModel):
        return "see below"
    unit = _unit_of(field.annotation, field.metadata)
    if unit and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"`{_human(value, unit)}`"
    text = json.dumps(value, default=str)
    home = os.path.expanduser("~")
    return f"`{text.replace(home, '~')}`" if home != "~" else f"`{text}`"


def constraints(field: Any) -> str:
    parts = []
    for meta in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if getattr(meta, attr, None) is not None:
                parts.append(f"{sign} {getattr(meta, attr)}")
        if getattr(meta, "min_length", None) is not None:
            parts.append(f"length ≥ {meta.min_length}")
        if getattr(meta, "max_length", None) is not None:
            parts.append(f"length ≤ {meta.max_length}")
        if getattr(meta, "pattern", None):
            parts.append(f"pattern `{meta.pattern}`")
    return ", ".join(parts)


# -- the configuration -----------------------------------------------------------------------


@dataclasses.dataclass
class ConfigKey:
    path: str  # as the reference shows it: cache.breaker.failures, cache.tiers[memory].max_bytes
    model: type[BaseModel]
    name: str
    field: Any
    description: str
    source: str  # "code", "notes" or "" (undocumented)


def notes() -> dict[str, str]:
    data = yaml.safe_load(NOTES_FILE.read_text(encoding="utf-8")) if NOTES_FILE.exists() else None
    return {str(k): str(v) for k, v in (data or {}).items()}


def _description(model: type[BaseModel], name: str, field: Any, doc: dict[str, str], extra: dict[str, str]) -> tuple[str, str]:
    text = field.description or doc.get(name)
    if not text:
        nested = models_in(field.annotation)
        if nested and nested[0].__doc__ and nested[0].__doc__ is not BaseModel.__doc__ \
                and not _inherited_doc(nested[0]):
            text = first_paragraph(nested[0].__doc__)
    if text:
        return md_doc(text), "code"
    for klass in model.__mro__:
        note = extra.get(f"{klass.__qualname__}.{name}")
        if note:
            return note, "notes"
    return "", ""


def _inherited_doc(model: type) -> bool:
    """True when a model's docstring is only its base's (``Options``' generic one)."""
    return "__doc__" not in vars(model) or vars(model)["__doc__"] is None


def _component_sections() -> dict[str, str]:
    return {path.removesuffix("[]"): kind for kind, (path, _) in src.KIND_SECTIONS.items()}


def walk_model(model: type[BaseModel], prefix: str, extra: dict[str, str], seen: frozenset = frozenset()):
    """(path, model, name, field, description, source, nested models) for every field, depth first."""
    doc = attribute_docs(model)
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        text, source = _description(model, name, field, doc, extra)
        yield ConfigKey(path, model, name, field, text, source)
        for nested in models_in(field.annotation):
            if nested not in seen and not issubclass(nested, SecretStr):
                many = "[]" if typing.get_origin(_strip_optional(field.annotation)) in (list, dict) else ""
                key = "{name}" if typing.get_origin(_strip_optional(field.annotation)) is dict else ""
                sub = f"{path}{many if not key else ''}{'.' + key if key else ''}."
                yield from walk_model(nested, sub, extra, seen | {nested})


def _strip_optional(ann: Any) -> Any:
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if typing.get_origin(ann) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return ann


def config_keys() -> list[ConfigKey]:
    """Every key a YAML document may have: the settings model's, then each installed component's."""
    extra = notes()
    keys = list(walk_model(src.host().settings_model, "", extra))
    for kind, comps in src.components().items():
        section = src.KIND_SECTIONS[kind][0]
        for name, cls in comps.items():
            keys += walk_model(cls.Options, f"{section.removesuffix('[]')}[{name}].", extra)
    return keys


def _anchor(path: str) -> str:
    return "cfg-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def _table(rows: list[ConfigKey], links: dict[type, str], component_links: dict[str, str]) -> list[str]:
    out = ["| key | type | default | description |", "|---|---|---|---|"]
    for key in rows:
        kind = component_links.get(key.path)
        many = typing.get_origin(_strip_optional(key.field.annotation)) is list
        typ = (f"list of [components](#{kind})" if many else f"[component](#{kind})") if kind else \
            type_name(key.field.annotation, key.field.metadata, links)
        if _strip_optional(key.field.annotation) is not key.field.annotation and kind:
            typ += " or null"
        limits = constraints(key.field)
        if limits:
            typ += f" ({limits})"
        out.append(f"| `{key.name}` | {_cell(typ)} | {_cell(default_text(key.field))} | "
                   f"{_cell(key.description) or '**undocumented**'} |")
    return out


def _render_model_sections(keys: list[ConfigKey], top_model: type, top_prefix: str, level: int,
                           title: str | None, component_links: dict[str, str]) -> list[str]:
    """A table per model, in document order, each nested model under its own heading."""
    groups: dict[str, list[ConfigKey]] = {}
    owner: dict[str, type] = {}
    for key in keys:
        parent = key.path[: -len(key.name)]
        groups.setdefault(parent, []).append(key)
        owner[parent] = key.model
    links = {}
    for parent, model in owner.items():
        links.setdefault(model, _anchor(top_prefix + parent if parent else top_prefix or "top"))
    out: list[str] = []
    for parent, rows in groups.items():
        path = parent.rstrip(".")
        heading = title if not parent else f"`{path}`"
        anchor = _anchor(top_prefix + parent if parent else top_prefix or "top")
        if heading:
            out += ["", f"{'#' * (level if not parent else level + 1)} {heading} {{ #{anchor} }}", ""]
        model_doc = vars(owner[parent]).get("__doc__")
        if parent and model_doc:
            out += [md_doc(model_doc), ""]
        out += _table(rows, links, component_links)
    return out


def config_reference() -> str:
    keys = config_keys()
    model = src.host().settings_model
    sections = _component_sections()
    kind_anchor = {kind: f"components-{kind.replace('_', '-')}" for kind in src.KIND_SECTIONS}
    component_links = {path: kind_anchor[kind] for path, kind in sections.items()}
    doc_keys = [k for k in keys if not any(k.path.startswith(f"{p}[") for p in sections)]
    out = _render_model_sections(doc_keys, model, "", 2, "The document", component_links)
    for kind, comps in src.components().items():
        path, label = src.KIND_SECTIONS[kind]
        out += ["", f"## {label}: `{path}` {{ #{kind_anchor[kind]} }}", ""]
        out += [f"Chosen with `type:`. Installed: {', '.join(f'`{n}`' for n in comps) or 'none'}.", ""]
        for name, cls in comps.items():
            dist = src.distribution_of(cls)
            prefix = f"{path.removesuffix('[]')}[{name}]."
            out += ["", f"### `{name}` {{ #{_anchor(prefix)} }}", "",
                    f"`type: {name}` · from **{dist}** · class `{cls.__module__}.{cls.__qualname__}`", ""]
            if vars(cls).get("__doc__"):
                out += [first_paragraph(cls.__doc__), ""]
            comp_keys = [k for k in keys if k.path.startswith(prefix)]
            rel = [dataclasses.replace(k, path=k.path[len(prefix):]) for k in comp_keys]
            out += _render_model_sections(rel, cls.Options, prefix, 3, None, {})
    return "\n".join(out).strip() + "\n"


# -- the CLI ---------------------------------------------------------------------------------


def cli_reference() -> str:
    out = ["```console", f"$ {src.CONSOLE_SCRIPT} --help", src.cli_help().rstrip(), "```"]
    for command in src.cli_commands():
        out += ["", f"## `{src.CONSOLE_SCRIPT} {command.name}` {{ #{command.name} }}", "",
                _cell(command.help) or "**undocumented**", "",
                *([f"Comes with the `{command.distribution}` plugin (`pip install {command.distribution}`).", ""]
                  if command.distribution else []),
                "```console", f"$ {src.CONSOLE_SCRIPT} {command.name} --help", src.cli_help(command.name).rstrip(), "```"]
    return "\n".join(out) + "\n"


# -- hooks -----------------------------------------------------------------------------------


def _hook_group(caller: Any) -> str:
    fn = caller.spec.function
    ret = str(inspect.signature(fn).return_annotation)
    if ret.startswith("list[type"):
        return "Registration hooks"
    if caller.spec.opts.get("firstresult") or ret not in ("None", "<class 'NoneType'>"):
        return "Policy hooks"
    return "Observation hooks"


def _combine(caller: Any) -> str:
    opts = caller.spec.opts
    if opts.get("firstresult"):
        return "the first non-`None` result wins; later implementations are not called"
    if _hook_group(caller) == "Registration hooks":
        return "every implementation is called; the lists are merged"
    return "every implementation is called (broadcast)"


def hook_reference(callers: dict[str, Any] | None = None) -> str:
    callers = sorted((src.hooks() if callers is None else callers).values(),
                     key=lambda c: c.spec.function.__code__.co_firstlineno)
    groups: dict[str, list[Any]] = {}
    for caller in callers:
        groups.setdefault(_hook_group(caller), []).append(caller)
    module = inspect.getmodule(callers[0].spec.function) if callers else None
    out = [md_doc(module.__doc__ if module else ""), ""]
    for group in ("Registration hooks", "Policy hooks", "Observation hooks"):
        if group not in groups:
            continue
        out += ["", f"## {group}", ""]
        for caller in groups[group]:
            fn = caller.spec.function
            impls = sorted({impl.plugin_name for impl in caller.get_hookimpls()})
            out += ["", f"### `{caller.name}` {{ #{caller.name} }}", "", "```python", "@hookimpl",
                    f"def {caller.name}{_signature(fn)}: ...", "```", "",
                    md_doc(fn.__doc__) or "**undocumented**", "",
                    f"- **Results:** {_combine(caller)}.",
                    f"- **Implemented by the installed plugins:** {', '.join(f'`{p}`' for p in impls) or 'none'}."]
    return "\n".join(out) + "\n"


def hook_names() -> list[str]:
    return sorted(src.hooks())


# -- events ----------------------------------------------------------------------------------


def event_fields() -> str:
    event = src.contract("Event")
    docs, extra = attribute_docs(event), notes()
    out = ["| field | type | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(event):
        text = md_doc(docs.get(f.name, "")) or extra.get(f"{event.__qualname__}.{f.name}", "")
        out.append(f"| `{f.name}` | {_cell(str(f.type).replace(' | ', ' or '))} | {_cell(text) or '**undocumented**'} |")
    return "\n".join(out) + "\n"


def event_kinds() -> dict[str, str]:
    return src.event_kinds()


def event_kinds_table() -> str:
    out = ["| kind | defined in |", "|---|---|"]
    for kind, module in sorted(event_kinds().items()):
        out.append(f"| [`{kind}`](#{kind}) | `{module}` |")
    return "\n".join(out) + "\n"


def event_table() -> str:
    """Every kind of the SDK's event table with the fields it sets, its ``extra`` keys and reasons."""
    out = ["| kind | area | sets | `extra` keys | `reason` is one of |", "|---|---|---|---|---|"]
    for name, kind in src.event_table().items():
        codes = lambda names: ", ".join(f"`{n}`" for n in sorted(names)) or "none"  # noqa: E731
        reasons = codes(kind.reasons) if kind.reasons else "free-form" if "reason" in kind.fields else "unused"
        out.append(f"| [`{name}`](#{name}) | {kind.area} | {codes(kind.fields)} | {codes(kind.extra)} | {reasons} |")
    return "\n".join(out) + "\n"


# -- the SDK -----------------------------------------------------------------------------------


def sdk_reference() -> str:
    """The SDK package's docstring, then one section per submodule: its docstring and its names."""
    package, *modules = src.sdk_modules()
    out = [md_doc(package.__doc__), ""]
    for module in modules:
        names = ", ".join(f"`{n}`" for n in getattr(module, "__all__", ()))
        out += ["", f"## `{module.__name__}`", "", md_doc(module.__doc__) or "**undocumented**", "",
                f"**Names:** {names}." if names else ""]
    return "\n".join(out) + "\n"


def undocumented_sdk_modules() -> list[str]:
    """SDK modules without a docstring or an ``__all__``."""
    return [m.__name__ for m in src.sdk_modules() if not (m.__doc__ or "").strip() or not getattr(m, "__all__", None)]


# -- classes and functions -------------------------------------------------------------------


class _Raw(str):
    """An annotation kept as written (``from __future__ import annotations``), shown without quotes."""

    def __repr__(self) -> str:
        return str(self)


def _signature(obj: Any, wrap: bool = True) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    raw = lambda a: _Raw(a) if isinstance(a, str) else a  # noqa: E731
    params = [p.replace(annotation=raw(p.annotation)) for p in sig.parameters.values()]
    text = str(sig.replace(parameters=params, return_annotation=raw(sig.return_annotation)))
    if len(text) <= 80 or not wrap:
        return text
    parts, kinds = [], [p.kind for p in params]
    for i, param in enumerate(params):
        if param.kind is param.KEYWORD_ONLY and param.VAR_POSITIONAL not in kinds and \
                (i == 0 or kinds[i - 1] is not param.KEYWORD_ONLY):
            parts.append("*")
        parts.append(str(param))
        if param.kind is param.POSITIONAL_ONLY and (i + 1 == len(params) or kinds[i + 1] is not param.POSITIONAL_ONLY):
            parts.append("/")
    ret = "" if sig.return_annotation is sig.empty else f" -> {raw(sig.return_annotation)!r}"
    return "(\n" + "".join(f"    {part},\n" for part in parts) + ")" + ret


def _members(cls: type) -> list[tuple[str, Any]]:
    own = vars(cls)
    names = [n for n in own if not n.startswith("_") or n in ("__call__", "__len__", "__init__")]
    return [(n, own[n]) for n in names if n not in ("model_config", "model_fields")]


def api(name: str, *, level: int = 3, members: bool = True) -> str:
    """One class or function: signature, docstring, and (classes) its own documented members."""
    obj = src.contract(name) if name in src.CONTRACTS else getattr(__import__("dspy_turbo"), name)
    where = f"{obj.__module__}.{getattr(obj, '__qualname__', name)}"
    hashes = "#" * level
    if not inspect.isclass(obj) and not inspect.isroutine(obj):  # an instance, such as the hookimpl marker
        return "\n".join([f"{hashes} `{name}` {{ #{name.lower()} }}", "", md_doc(type(obj).__doc__), "",
                          f"An instance of `{type(obj).__module__}.{type(obj).__qualname__}`.", ""])
    if not inspect.isclass(obj):
        doc = obj.__doc__
        module = inspect.getmodule(obj)
        if not doc and module is not None and module.__name__.rsplit(".", 1)[-1] == obj.__name__:
            doc = module.__doc__  # a module named after its one function documents it
        return "\n".join([f"{hashes} `{name}` {{ #{name.lower()} }}", "", "```python",
                          f"{name}{_signature(obj)}", "```", "", md_doc(doc), "", f"Defined in `{where}`.", ""])
    bases = ", ".join(b.__name__ for b in obj.__bases__ if b is not object)
    doc = vars(obj).get("__doc__")
    module = inspect.getmodule(obj)
    if not doc and module is not None and module.__doc__:
        doc = module.__doc__  # a class without a docstring of its own: its module describes it
    out = [f"{hashes} `{name}` {{ #{name.lower()} }}", "", "```python", f"class {name}({bases})" if bases else f"class {name}",
           "```", "", md_doc(doc), "", f"Defined in `{where}`.", ""]
    if not members:
        return "\n".join(out)
    docs = attribute_docs(obj)
    fields = getattr(obj, "model_fields", None)
    rows = []
    for attr, text in docs.items():
        if attr in vars(obj) or attr in getattr(obj, "__annotations__", {}):
            if fields and attr in fields:
                continue
            rows.append(f"- `{attr}`: {_cell(md_doc(text))}")
    for member, value in _members(obj):
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            doc = value.fget.__doc__ if value.fget else None
            rows.append(f"- `{member}` (property){': ' + _cell(md_doc(doc)) if doc else ''}")
        elif inspect.isfunction(value):
            if member == "__init__" and not value.__doc__:
                continue
            sig = _signature(value, wrap=False).replace("(self, ", "(").replace("(self)", "()").replace("(cls, ", "(")
            doc = md_doc(value.__doc__)
            rows.append(f"- `{member}{sig}`" + (f"\n\n{textwrap.indent(doc, '    ')}\n" if doc else ""))
    if fields:
        rows.append("")
        rows += _table(list(walk_model(obj, "", notes()))[: len(fields)], {}, {})
    return "\n".join(out + rows) + "\n"


def public_api() -> str:
    import dspy_turbo

    names = sorted(dspy_turbo.__all__, key=lambda n: (not inspect.isfunction(getattr(dspy_turbo, n, None)), n))
    out = []
    for name in names:
        if name.startswith("__"):
            continue
        out.append(api(name, level=2, members=name in ("Turbo",)))
    return "\n".join(out)


def conformance(suite: str) -> str:
    cls = src.contract(suite)
    out = ["| test | what it checks |", "|---|---|"]
    for name, value in vars(cls).items():
        if name.startswith("test_") and inspect.isfunction(value):
            doc = first_paragraph(value.__doc__) or name.removeprefix("test_").replace("_", " ")
            out.append(f"| `{name}` | {_cell(doc)} |")
    fixtures = [n for n, v in vars(cls).items() if not n.startswith("test_") and hasattr(v, "_fixture_function_marker")
                or getattr(v, "_pytestfixturefunction", None)]
    if fixtures:
        out += ["", "Fixtures a subclass provides or overrides: " + ", ".join(f"`{f}`" for f in fixtures) + "."]
    return "\n".join(out) + "\n"


def components_table() -> str:
    out = ["| kind | YAML | `type:` | distribution | class |", "|---|---|---|---|---|"]
    for kind, comps in src.components().items():
        for name, cls in comps.items():
            out.append(f"| {kind} | `{src.KIND_SECTIONS[kind][0]}` | `{name}` | {src.distribution_of(cls)} | "
                       f"`{cls.__module__}.{cls.__qualname__}` |")
    return "\n".join(out) + "\n"


GENERATORS = {
    "config-reference": config_reference,
    "cli-reference": cli_reference,
    "hook-reference": lambda: hook_reference(),
    "event-fields": event_fields,
    "event-kinds": event_kinds_table,
    "event-table": event_table,
    "sdk-reference": sdk_reference,
    "public-api": public_api,
    "components": components_table,
}


REPO = Path(__file__).resolve().parents[2]


def source(spec: str) -> str:
    """``path`` or ``path:Name``: a file of the repository, or one top-level class or function of it."""
    path, _, name = spec.partition(":")
    text = (REPO / path).read_text(encoding="utf-8")
    lang = {".py": "python", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}.get(Path(path).suffix, "text")
    if name:
        lines = text.splitlines()
        node = next((n for n in ast.parse(text).body
                     if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name), None)
        if node is None:
            raise KeyError(f"{path} has no top-level class or function {name!r}")
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        text = "\n".join(lines[start - 1:node.end_lineno])
    return f"```{lang} title=\"{path}\"\n{text.rstrip()}\n```\n"


def generate(spec: str) -> str:
    """``name`` or ``name arg``: ``api CacheBackend``, ``conformance CacheBackendSuite``."""
    name, _, arg = spec.strip().partition(" ")
    if name == "api":
        return api(arg.strip())
    if name == "conformance":
        return conformance(arg.strip())
    if name == "source":
        return source(arg.strip())
    if name not in GENERATORS:
        raise KeyError(f"unknown generated block {name!r}; known: api NAME, conformance NAME, {', '.join(GENERATORS)}")
    return GENERATORS[name]()


# -- what is undocumented (tests/docs) -------------------------------------------------------

DOCS = REPO / "docs"


def undocumented_hooks(callers: dict[str, Any] | None = None) -> list[str]:
    """Hook specs without a docstring, or missing from the rendered hook reference."""
    callers = src.hooks() if callers is None else callers
    page = hook_reference(callers)
    return [name for name, caller in sorted(callers.items())
            if not inspect.getdoc(caller.spec.function) or f"### `{name}`" not in page]


def undocumented_keys(keys: list[ConfigKey] | None = None) -> list[str]:
    """Configuration keys without a description (in the code or in field_notes.yml)."""
    keys = config_keys() if keys is None else keys
    return [key.path for key in keys if not key.description.strip()]


def undocumented_event_fields() -> list[str]:
    event = src.contract("Event")
    docs, extra = attribute_docs(event), notes()
    return [f.name for f in dataclasses.fields(event)
            if not docs.get(f.name) and not extra.get(f"{event.__qualname__}.{f.name}")]


def stale_notes() -> list[str]:
    """Entries of field_notes.yml that name no field of an options model or of Event."""
    event = src.contract("Event")
    known = {f"{event.__qualname__}.{f.name}" for f in dataclasses.fields(event)}
    for key in config_keys():
        for klass in key.model.__mro__:
            if key.name in getattr(klass, "model_fields", {}):
                known.add(f"{klass.__qualname__}.{key.name}")
    return sorted(set(notes()) - known)


def undocumented_commands(commands: list[Any] | None = None) -> list[str]:
    """CLI subcommands without help text, or whose own --help does not run."""
    commands = src.cli_commands() if commands is None else commands
    missing = []
    for command in commands:
        try:
            ok = bool(command.help.strip()) and bool(src.cli_help(command.name).strip())
        except Exception:
            ok = False
        if not ok:
            missing.append(command.name)
    return missing


def documented_event_kinds(page: Path | None = None) -> set[str]:
    text = (page or DOCS / "plugins" / "events.md").read_text(encoding="utf-8")
    return set(re.findall(r"^#### `([a-z_]+)`", text, re.M))


def undocumented_event_kinds(kinds: set[str] | None = None, page: Path | None = None) -> list[str]:
    """Event kinds the installed packages define that the event reference has no section for."""
    kinds = set(event_kinds()) if kinds is None else kinds
    return sorted(kinds - documented_event_kinds(page))


def markers() -> list[tuple[Path, str]]:
    """Every generated block the pages ask for."""
    from mkdocs_hooks import MARKER

    return [(path, m.group(1)) for path in sorted(DOCS.rglob("*.md")) if "_drafts" not in path.parts
            for m in MARKER.finditer(path.read_text(encoding="utf-8"))]
