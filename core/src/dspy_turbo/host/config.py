"""YAML (or a dict) -> validated, typed settings.

Validation happens up front, in two passes: the document's own shape, then every
component's options against the class that a plugin registered for its ``type``. All
problems are collected and reported together; each names its YAML path
(``cache.tiers[1].ttl``), suggests the closest valid name, lists what is available and,
for a well-known component that is not installed, names the package that provides it.

``${VAR}`` and ``${VAR:-default}`` in any string are replaced from the environment
before validation; a missing variable without a default is an error at its path. The
values themselves are never echoed in messages (they are often secrets).

Nothing in a config can hurt the process reading it: YAML is read with a safe loader
bounded in nesting depth and in size once aliases are expanded (a recursive alias or an
"alias bomb" is an error with its line), and every number is checked against what the
runtime can hold (see ``units``). Secrets (``SecretURL``, ``SecretStr`` options, URL
credentials) are masked in ``Settings``, reprs, dumps, messages and the schema; the
components get the real values through their validated options.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, get_args

import yaml
from pydantic import Field, SecretStr, ValidationError, create_model, field_validator

from .._moved import moved_to_plugin
from ..plugin.sections import ConfigSection
from ..routing.costs import CostSettings, unpriced
from .components import Component, Options
from .plugin_manager import KNOWN_PROVIDERS, KNOWN_SECTIONS, Registry
from .redaction import SECRET_TYPES, redact_text, scrub
from .units import TTL, Duration

# -- the document's shape ------------------------------------------------------------------


class KeySettings(Options):
    include_endpoint: bool = True
    """Two endpoints (``api_base``) serving one model name never share entries. Off: they do."""
    ignore_fields: list[str] = []
    """Request fields that never count for identity (e.g. ``user``, a tracing id)."""


class AdmissionSettings(Options):
    """Which responses are stored. By default only complete, non-empty answers are."""

    store_errors: bool = False
    store_empty: bool = False
    store_truncated: bool = False
    """A response cut off by ``max_tokens`` (``finish_reason == "length"``)."""


class BreakerSettings(Options):
    failures: int = Field(default=3, ge=1)
    """Consecutive failures after which a tier is skipped."""
    cooldown: Duration = 30.0
    """How long a tripped tier is skipped before one trial call."""


class SingleFlightSettings(Options):
    enabled: bool = True
    lease: Duration = Field(default=30.0, gt=0)
    """Across processes (a shared tier configured): how long a leader's lease lasts unless
    renewed; the leader renews it every third of this while its call runs. A leader that
    crashes blocks the others at most this long, then one of them takes over."""
    wait: Duration = Field(default=30.0, ge=0)
    """Across processes: how long a waiter waits for a leader's call before making the call
    itself (for the leader that took over from a crashed one, as long again)."""


class CacheSettings(Options):
    tiers: list[dict[str, Any]] = Field(default_factory=lambda: [{"type": "memory"}])
    """Each tier's block as written, secrets masked (the validated options: ``Config.tiers``)."""
    ttl: TTL | None = None
    """Default lifetime of an entry, across tiers (a tier's own ``ttl`` may be shorter).
    ``null`` (the default): entries never expire. 0 is refused: no ttl means no expiry, and a
    tier that should store nothing is removed."""
    mode: Literal["normal", "record", "replay"] = "normal"
    """``record``: every call reaches the LM and its answer is written (no reads); ``replay``:
    answers come from the cache only, and a miss raises ``dspy_turbo.ReplayMiss`` naming the
    request instead of calling the LM (deterministic tests from a recorded cache). The
    ``DSPY_TURBO_MODE`` environment variable, when set, wins (see ``controls.py``)."""
    admission: AdmissionSettings = AdmissionSettings()
    breaker: BreakerSettings = BreakerSettings()
    singleflight: SingleFlightSettings = SingleFlightSettings()
    safe_types: list[str] = []
    """Classes whose instances may be cached, by import path (``"myapp.models:Answer"`` or
    ``"myapp.models.Answer"``): enums, dataclasses and pydantic models, stored field by field
    and rebuilt only from a class on this list (the counterpart of DSPy's ``safe_types``;
    ``dspy_turbo.register_codec`` adds to it in code). A value of any other class is not
    cached (a ``skip_store`` event naming the type). A module is imported only when an entry
    names one of these classes."""
    stream_hits: bool = False
    """Inside ``dspy.streamify``, a cache hit sends the cached answer to the stream listeners as
    chunks (DSPy sends none on a hit; a call served by another caller's LM call always does)."""
    sync_interval: Duration = Field(default=0.1, ge=0)
    """With a shared tier: how often a process applies other processes' ``invalidate()`` to
    its memory tier (before a read, at most this often; see ``invalidation.py``)."""
    signing_key: SecretStr | None = None
    """Sign every entry of the tiers that store bytes (redis, file) with this secret, an HMAC
    over the entry and its key (``integrity.py``): an entry that does not verify is a miss, an
    error event, and is deleted. ``${DSPY_TURBO_SIGNING_KEY}``; empty: no signing. Secret."""

    @field_validator("safe_types")
    @classmethod
    def _safe_types(cls, value: list[str]) -> list[str]:
        from ..cache.codec import valid_type_path

        for path in value:
            if not valid_type_path(path):
                raise ValueError(f"{path!r} is not an import path like 'package.module:ClassName'")
        return value

    @field_validator("signing_key")
    @classmethod
    def _signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 16:  # never echo it
            raise ValueError("signing_key must be at least 16 characters (e.g. python -c "
                             "'import secrets; print(secrets.token_urlsafe(32))')")
        return value


class MetricsSettings(Options):
    sinks: list[dict[str, Any]] = []
    # -- monitoring: event handoff and alert rules (see events/sink_queue.py, events/alerts.py)
    queue_size: int = Field(default=10_000, ge=1)
    """Events each sink may have waiting (sinks drain every 50 ms); past that, events for it are dropped and counted."""
    flush_timeout: Duration = 5.0
    """How long ``close()`` waits for sinks to handle pending events."""


class Settings(Options):
    """The document, validated. Component blocks (``cache.tiers``, ``metrics.sinks``,
    ``batching``, ``routing``, those inside plugins' sections such as
    ``cache.semantic.index/embedder``) are kept as written, with every secret masked:
    components read their real values from ``Config``'s specs.

    The plugins' sections (``dspy_turbo_config_sections``: ``cache.semantic``,
    ``metrics.alerts``...) are fields of a subclass built per set of sections
    (:func:`document_model`); ``Config.settings`` is an instance of it."""

    namespace: str = Field(default="dspy-turbo", pattern=r"^[A-Za-z0-9_.\-]+$", max_length=64)
    key: KeySettings = KeySettings()
    cache: CacheSettings = CacheSettings()
    batching: dict[str, Any] | None = None
    routing: dict[str, Any] | None = None
    metrics: MetricsSettings = MetricsSettings()
    costs: CostSettings = CostSettings()
    """Price overrides for private models or negotiated rates (see ``costs.py``)."""


@dataclass(frozen=True)
class ComponentSpec:
    """One ``type: ...`` block, resolved to its class and validated options."""

    kind: str
    cls: type[Component]
    options: Options
    path: str


@dataclass(frozen=True)
class Config:
    """What ``load`` assembles a Turbo from."""

    settings: Settings
    tiers: tuple[ComponentSpec, ...]
    sinks: tuple[ComponentSpec, ...]
    batching: ComponentSpec | None
    routing: ComponentSpec | None
    source: str
    warnings: tuple[ConfigIssue, ...] = ()
    """Problems that do not stop loading (e.g. a model with no known price), with their YAML paths."""
    components: Mapping[str, ComponentSpec] = field(default_factory=dict)
    """The component blocks inside plugins' sections, by YAML path (``"cache.semantic.index"``)."""

    def section(self, path: str) -> Any:
        """The validated value of a plugin's section (``"cache.semantic"``), or None when the
        loaded plugins declare no such section."""
        node: Any = self.settings
        for part in path.split("."):
            node = getattr(node, part, None)
        return node

    def component(self, path: str) -> ComponentSpec | None:
        """The resolved component block at ``path`` inside a section, or None when not configured."""
        return self.components.get(path)

    # Read by plugins written before sections (dspy-turbo-ray's driver document).
    @property
    def semantic_index(self) -> ComponentSpec | None:
        return self.components.get("cache.semantic.index")

    @property
    def semantic_embedder(self) -> ComponentSpec | None:
        return self.components.get("cache.semantic.embedder")


# -- plugins' sections -------------------------------------------------------------------


def section_problem(section: ConfigSection) -> str | None:
    """Why ``section`` cannot join the document (a key the core has, a parent that is not
    one of the core's mappings), or None."""
    if section.parent is None:
        return "is a key of the core's own" if section.key in Settings.model_fields else None
    parents = [name for name, f in Settings.model_fields.items() if _options_model(f.annotation) is f.annotation]
    if section.parent not in parents:
        return f"must be a top-level key or a key inside one of: {', '.join(parents)}"
    if section.key in Settings.model_fields[section.parent].annotation.model_fields:
        return "is a key of the core's own"
    return None


def document_model(registry: Registry) -> type[Settings]:
    """The model of the whole document: ``Settings`` with every registered section added."""
    sections = sorted(registry.sections.values(), key=lambda s: s.path)
    return _document_model(tuple((s.path, s.model, _Default(s.default), s.doc) for s in sections))


@dataclass(frozen=True)
class _Default:
    """A section's default as a cache key (lists and dicts compare by value)."""

    value: Any

    def __hash__(self) -> int:
        return hash(repr(self.value))


@functools.lru_cache(maxsize=64)
def _document_model(sections: tuple[tuple[str, Any, _Default, str], ...]) -> type[Settings]:
    def declared(model: Any, default: Any, doc: str) -> tuple[Any, Any]:
        annotation = Optional[model] if default is None else model  # noqa: UP045 - model may be a generic alias
        return annotation, Field(default=default, description=doc or None)

    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, model, default, doc in sections:
        parent, _, key = path.rpartition(".")
        (nested.setdefault(parent, {}) if parent else top)[key] = declared(model, default.value, doc)
    for parent, fields in nested.items():
        base = Settings.model_fields[parent].annotation
        sub = create_model(base.__name__, __base__=base, __module__=base.__module__, **fields)
        sub.__qualname__ = base.__qualname__
        top[parent] = (sub, Field(default_factory=sub, description=Settings.model_fields[parent].description))
    if not top:
        return Settings
    model = create_model("Settings", __base__=Settings, __module__=Settings.__module__, **top)
    model.__qualname__ = Settings.__qualname__
    return model


# -- errors --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str

    def __post_init__(self) -> None:
        # A message that quotes a value never shows a URL's password (e.g. ${REDIS_URL} in the wrong key).
        object.__setattr__(self, "message", redact_text(self.message))

    def __str__(self) -> str:
        return f"{self.path or '<top>'}: {self.message}"


class ConfigError(ValueError):
    """One or more problems in a config; ``issues`` has each with its YAML path."""

    def __init__(self, issues: list[ConfigIssue], source: str = "<config>"):
        self.issues = issues
        self.source = source
        lines = "\n".join(f"  - {issue}" for issue in issues)
        super().__init__(f"{source}: {len(issues)} problem{'s' if len(issues) != 1 else ''} in the configuration:\n{lines}")


def _path(loc: tuple[Any, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _closest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}? " if close else ""


def _issues_from(exc: ValidationError, model: type[Options], prefix: str = "",
                 registry: Registry | None = None) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = _path(loc, prefix)
        if err["type"] == "extra_forbidden":
            owner = model
            for part in loc[:-1]:  # walk to the model that owns the unknown key
                field = owner.model_fields.get(part) if isinstance(part, str) else None
                ann = getattr(field, "annotation", None) if field else None
                if not (isinstance(ann, type) and issubclass(ann, Options)):  # list[Rule], Rule | None
                    ann = next((a for a in get_args(ann) if isinstance(a, type) and issubclass(a, Options)), ann)
                owner = ann if isinstance(ann, type) and issubclass(ann, Options) else owner
            valid = sorted(owner.model_fields)
            known = KNOWN_SECTIONS.get(path)
            if known is not None:  # a plugin's section, the plugin not installed
                what, package = known
                missing = registry.why_missing(package) if registry is not None else None  # installed, not loaded
                issues.append(ConfigIssue(path, f"{what} ({path}) is provided by {package}; {missing}" if missing else
                                                f"{what} ({path}) is provided by {package}, which is not installed: "
                                                f"pip install {package}"))
                continue
            issues.append(ConfigIssue(path, f"unknown key {loc[-1]!r}; {_closest(str(loc[-1]), valid)}valid keys: {', '.join(valid)}"))
        else:
            msg = _plain(err)
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            issues.append(ConfigIssue(path, msg))
    return issues


# What a pattern-checked string may hold, in words (pydantic would show the regular expression).
_PATTERN_WORDS = {r"^[A-Za-z0-9_.\-]+$": "only letters, digits, '_', '.' and '-' (no spaces, no ':')",
                  r"^[A-Za-z0-9_.:\-]+$": "only letters, digits, '_', '.', ':' and '-' (no spaces)"}


def _plain(err: dict[str, Any]) -> str:
    """A validation error in the words of a config file, not of pydantic's classes: the
    expected kind of value and the kind given (never the value itself: it may be a secret)."""
    kind, given = err["type"], _kind_of(err.get("input"))
    ctx = err.get("ctx") or {}
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping of settings (key: value lines), got {given}"
    if kind == "list_type":
        return f"expected a list (one '- item' line each), got {given}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {given}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {given}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {given}"
    if kind == "string_type":
        return f"expected text, got {given}"
    if kind == "string_pattern_mismatch":
        return f"may hold {_PATTERN_WORDS.get(str(ctx.get('pattern')), 'only the characters its format allows')}"
    if kind == "literal_error":
        options = [o.strip().strip("'") for o in str(ctx.get("expected", "")).replace(" or ", ", ").split(",")]
        value = err.get("input")
        hint = _closest(value, options) if isinstance(value, str) else ""
        return f"expected one of {', '.join(options)}; {hint}".rstrip("; ")
    return err["msg"]


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text" if value else "empty text"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "nothing (null)" if value is None else f"a {type(value).__name__}"


# -- environment ---------------------------------------------------------------------------

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(node: Any, path: str, issues: list[ConfigIssue], environ=os.environ) -> Any:
    if isinstance(node, dict):
        return {k: interpolate(v, _path((k,), path), issues, environ) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, _path((i,), path), issues, environ) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        def sub(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            issues.append(ConfigIssue(path, f"environment variable {name} is not set (use ${{{name}:-default}} for a fallback)"))
            return ""
        return _ENV.sub(sub, node)
    return node


# -- loading -------------------------------------------------------------------------------

MAX_DEPTH = 32
"""Nesting levels a config may have (the deepest setting is at about 6)."""
MAX_VALUES = 100_000
"""Values (scalars, lists, mappings) a config may have once its aliases are expanded: a
generous bound (a full config has a few hundred) that keeps reading it within milliseconds
and megabytes, whatever the file does with anchors."""


class _TooLarge(yaml.YAMLError):
    def __init__(self, problem: str, mark: yaml.Mark):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


# libyaml when PyYAML has it (parsing 10x faster); the safe loader either way (no tags that build objects).
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_events(text: str) -> None:
    """Refuse, from the parser's events and before anything is built, a recursive alias,
    nesting deeper than ``MAX_DEPTH`` and more than ``MAX_VALUES`` values counting each alias
    as the values it repeats. Stops at the first event past a bound, so a long document costs
    no more than its first ``MAX_VALUES`` values."""
    open_: list[list] = []  # [anchor, values so far] of each collection being read
    sizes: dict[str, int] = {}  # anchor -> values of its node, aliases expanded
    total = 0

    def add(values: int, mark: yaml.Mark) -> None:
        nonlocal total
        total += values
        if total > MAX_VALUES:
            raise _TooLarge(f"the document holds more than {MAX_VALUES} values once its aliases are expanded "
                            "(each *alias repeats its anchor's whole value)", mark)
        if open_:
            open_[-1][1] += values

    mappings: list[list | None] = []  # per open collection: [keys seen, next node is a key] for a mapping

    def node(event: yaml.Event) -> None:
        """A node starts: in a mapping, every other one is a key, which must not repeat."""
        top = mappings[-1] if mappings else None
        if top is None:
            return
        if top[1] and isinstance(event, yaml.ScalarEvent):
            if event.value in top[0]:
                raise _TooLarge(f"the key {event.value!r} appears twice in one mapping (YAML would keep only the "
                                "last one); remove or merge one of them", event.start_mark)
            top[0].add(event.value)
        top[1] = not top[1]

    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, (yaml.AliasEvent, yaml.ScalarEvent, yaml.CollectionStartEvent)):
            node(event)
        if isinstance(event, yaml.MappingStartEvent):
            mappings.append([set(), True])
        elif isinstance(event, yaml.SequenceStartEvent):
            mappings.append(None)
        elif isinstance(event, yaml.CollectionEndEvent):
            mappings.pop()
        if isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in open_):
                raise _TooLarge(f"the alias *{event.anchor} is inside the value it names (a recursive alias)",
                                event.start_mark)
            add(sizes.get(event.anchor, 1), event.start_mark)  # an unknown anchor: the loader reports it
        elif isinstance(event, yaml.ScalarEvent):
            add(1, event.start_mark)
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(open_) >= MAX_DEPTH:
                raise _TooLarge(f"values nested more than {MAX_DEPTH} levels deep", event.start_mark)
            add(1, event.start_mark)
            open_.append([event.anchor, 0])
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, inner = open_.pop()
            if anchor:
                sizes[anchor] = 1 + inner
            if open_:
                open_[-1][1] += inner


def _load_yaml(text: str) -> Any:
    _check_events(text)
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - the safe loader, C or Python


def _check_bounds(raw: Any, name: str) -> None:
    """A document given as Python objects: no cycle, nesting and expanded size as for YAML."""
    sizes: dict[int, int] = {}

    def walk(node: Any, path: str, open_ids: set[int]) -> int:
        if not isinstance(node, (dict, list, tuple)):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_ids:
            raise ConfigError([ConfigIssue(path, "this value contains itself (a cycle)")], name)
        if len(open_ids) >= MAX_DEPTH:
            raise ConfigError([ConfigIssue(path, f"values nested more than {MAX_DEPTH} levels deep")], name)
        open_ids.add(id(node))
        items = node.items() if isinstance(node, dict) else enumerate(node)
        size = 1 + sum(walk(value, _path((key,), path), open_ids) for key, value in items)
        open_ids.discard(id(node))
        if size > MAX_VALUES:
            raise ConfigError([ConfigIssue(path, f"more than {MAX_VALUES} values (shared ones counted each time)")], name)
        sizes[id(node)] = size
        return size

    walk(raw, "", set())


def read_source(source: str | os.PathLike | dict | None) -> tuple[dict[str, Any], str]:
    """The raw document and a name for messages."""
    if source is None:
        return {}, "<default>"
    if isinstance(source, dict):
        _check_bounds(source, "<dict>")
        return source, "<dict>"
    path = Path(source).expanduser()
    name = str(source)
    if not path.is_file():
        raise ConfigError([ConfigIssue("", f"config file not found: {path}")], name)
    try:
        raw = _load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        what = "YAML refused" if isinstance(exc, _TooLarge) and "appears twice" not in problem else \
            "duplicate key" if isinstance(exc, _TooLarge) else "malformed YAML"
        raise ConfigError([ConfigIssue("", f"{what} at {where}: {problem}")], name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue("", f"cannot read the file: {exc}")], name) from None
    except (ValueError, OverflowError) as exc:  # a scalar PyYAML cannot convert (an int of 5,000 digits)
        raise ConfigError([ConfigIssue("", f"malformed YAML: {str(exc)[:200]}")], name) from None
    if raw is None:
        return {}, name
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue("", f"the top level must be a mapping of settings, not a {type(raw).__name__}")], name)
    _check_bounds(raw, name)  # the loader bounded it; this names the path of a problem in what it built
    return raw, name


def _component(raw: Any, kind: str, path: str, registry: Registry, issues: list[ConfigIssue]) -> ComponentSpec | None:
    if not isinstance(raw, dict):
        issues.append(ConfigIssue(path, f"expected a mapping with a 'type' key, got {type(raw).__name__}"))
        return None
    available = registry.names(kind)
    label = kind.replace("_", " ")
    if "type" not in raw:
        issues.append(ConfigIssue(path, f"missing 'type'; available {label} types: {', '.join(available) or 'none installed'}"))
        return None
    name = raw["type"]
    if not isinstance(name, str):
        issues.append(ConfigIssue(f"{path}.type", f"expected the {label} type as a string, got {type(name).__name__}; "
                                                  f"available: {', '.join(available) or 'none installed'}"))
        return None
    cls = registry.get(kind, name)
    if cls is None:
        hint = _closest(str(name), available)
        package = KNOWN_PROVIDERS.get((kind, name))
        missing = registry.why_missing(package)  # installed but broken, or left out by DSPY_TURBO_PLUGINS
        install = f"{missing}; " if missing else f"it is provided by {package}: pip install {package}; " if package \
            else registry.unloaded_note()
        issues.append(ConfigIssue(f"{path}.type", f"unknown {label} type {name!r}; {install}{hint}"
                                                  f"available: {', '.join(available) or 'none installed'}"))
        return None
    options = {k: v for k, v in raw.items() if k != "type"}
    try:
        opts = cls.Options.model_validate(options)
    except ValidationError as exc:
        issues.extend(_issues_from(exc, cls.Options, path))
        return None
    return ComponentSpec(kind, cls, opts, path)


def default_document(registry: Registry) -> dict[str, Any]:
    """The embedded default: memory, plus a local disk tier when one is installed."""
    tiers: list[dict[str, Any]] = [{"type": "memory"}]
    if registry.get("cache_backend", "file") is not None:
        tiers.append({"type": "file"})
    return {"cache": {"tiers": tiers}}


def over_default(document: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    """``document`` laid over the embedded ``default``: what the document leaves out keeps the
    default's value. Mappings merge key by key, at every level; any other value the document
    gives (a list such as ``cache.tiers``, a scalar, ``null``) replaces the default's whole.
    So ``{"namespace": "x"}`` keeps the default tiers, and a ``tiers:`` list is the tiers."""
    merged = dict(default)
    for key, value in document.items():
        below = default.get(key)
        merged[key] = over_default(value, below) if isinstance(value, dict) and isinstance(below, dict) else value
    return merged


def parse(source: str | os.PathLike | dict | None, registry: Registry, environ=os.environ) -> Config:
    raw, name = read_source(source)
    raw = over_default(raw, default_document(registry))  # an unspecified section keeps its default
    issues: list[ConfigIssue] = []
    raw = interpolate(raw, "", issues, environ)
    model = document_model(registry)
    try:
        settings = model.model_validate(raw)
    except ValidationError as exc:
        settings = None
        issues.extend(_issues_from(exc, model, registry=registry))

    # Components are checked from the raw document, so their problems are reported
    # together with any problem in the document's own shape.
    def section(*path: str) -> Any:
        node: Any = raw
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def listed(node: Any, default: list) -> list:
        return node if isinstance(node, list) else default

    blocks: list[tuple[Any, Any, ComponentSpec]] = []  # (container, key, spec): masked in the settings below
    tiers = []
    names: dict[str, str] = {}
    tier_docs = listed(section("cache", "tiers"), Settings().cache.tiers)
    if not tier_docs:
        issues.append(ConfigIssue("cache.tiers", "at least one tier is needed (e.g. - type: memory)"))
    for i, tier in enumerate(tier_docs):
        spec = _component(tier, "cache_backend", f"cache.tiers[{i}]", registry, issues)
        if spec is None:
            continue
        tier_name = getattr(spec.options, "name", None) or spec.cls.name
        if tier_name in names:
            issues.append(ConfigIssue(f"cache.tiers[{i}]", f"tier name {tier_name!r} is already used by {names[tier_name]}; "
                                                            "give one of them a distinct 'name'"))
        names[tier_name] = f"cache.tiers[{i}]"
        tiers.append(spec)
        blocks.append((tier_docs, i, spec))
    sinks = []
    sink_docs = listed(section("metrics", "sinks"), [])
    for i, sink in enumerate(sink_docs):
        if (spec := _component(sink, "metric_sink", f"metrics.sinks[{i}]", registry, issues)) is not None:
            sinks.append(spec)
            blocks.append((sink_docs, i, spec))
    batching, routing = section("batching"), section("routing")
    batching = _component(batching, "batch_strategy", "batching", registry, issues) if batching else None
    routing = _component(routing, "model_selector", "routing", registry, issues) if routing else None
    blocks += [(raw, key, spec) for key, spec in (("batching", batching), ("routing", routing)) if spec is not None]
    components: dict[str, ComponentSpec] = {}  # the blocks inside plugins' sections
    for declared in registry.sections.values():
        node = section(*declared.path.split("."))
        if not isinstance(node, dict):  # a missing block is reported by the shape check
            continue
        for key, kind in declared.components.items():
            if node.get(key) is not None:
                spec = _component(node[key], kind, f"{declared.path}.{key}", registry, issues)
                if spec is not None:
                    components[spec.path] = spec
                    blocks.append((node, key, spec))
    for _, _, spec in blocks:  # can each component be built here? (what load() would find out later)
        try:
            spec.cls.check_available(spec.options)
        except Exception as exc:
            issues.append(ConfigIssue(spec.path, str(exc) or type(exc).__name__))
    if issues or settings is None:
        raise ConfigError(issues, name)
    bare: list[ConfigIssue] = []
    if isinstance(source, (str, os.PathLike)):  # a file: a bare duration or size reads as seconds or bytes
        _bare_numbers(model, raw, "", bare)
        for container, key, spec in blocks:
            _bare_numbers(type(spec.options), container[key], spec.path, bare)
    if blocks:
        # `raw` is interpolate()'s copy, never the caller's dict: mask the blocks in it, and
        # validate again so the settings show them masked (their own fields keep real values).
        for container, key, spec in blocks:
            container[key] = _masked(container[key], spec.options)
        settings = model.model_validate(raw)
    return Config(settings, tuple(tiers), tuple(sinks), batching, routing, name,
                  (*bare, *_price_warnings(settings, routing)), components)


def _unit_of(field: Any) -> str | None:
    """``duration`` or ``size`` for a field typed ``Duration``/``TTL``/``ByteSize`` (or ``... | None``)."""
    from .units import parse_duration, parse_size, parse_ttl

    metadata = list(field.metadata)
    for arg in get_args(field.annotation):
        metadata += list(getattr(arg, "__metadata__", ()))
    for item in metadata:
        func = getattr(item, "func", None)
        if func in (parse_duration, parse_ttl):
            return "duration"
        if func is parse_size:
            return "size"
    return None


def _options_model(annotation: Any) -> type[Options] | None:
    if isinstance(annotation, type) and issubclass(annotation, Options):
        return annotation
    return next((a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, Options)), None)


def _bare_numbers(model: type[Options], raw: Any, path: str, out: list[ConfigIssue]) -> None:
    """A warning for each bare number in a duration or size field of ``raw``: ``timeout: 250``
    is 250 seconds and ``max_bytes: 256`` 256 bytes, which is rarely what was meant."""
    if not isinstance(raw, dict):
        return
    for name, value in raw.items():
        field = model.model_fields.get(name) if isinstance(name, str) else None
        if field is None:
            continue
        where = _path((name,), path)
        unit = _unit_of(field)
        if unit is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value:
            shown = f"{value:g}"
            if unit == "duration":
                out.append(ConfigIssue(where, f"a bare {shown} is {shown} seconds; write the unit: '{shown}s' "
                                              f"(or '{shown}ms' if milliseconds were meant)"))
            else:
                out.append(ConfigIssue(where, f"a bare {shown} is {shown} bytes; write the unit: '{shown}B' "
                                              f"(or '{shown}MB' if megabytes were meant)"))
            continue
        inner = _options_model(field.annotation)
        if inner is not None and isinstance(value, dict):
            _bare_numbers(inner, value, where, out)
        elif inner is not None and isinstance(value, list):
            for i, item in enumerate(value):
                _bare_numbers(inner, item, _path((i,), where), out)


def _masked(raw: Any, options: Any) -> Any:
    """A component block as written, with every value its validated options hold as a
    secret masked (and URL credentials, credential-named keys: ``redaction.scrub``)."""
    if isinstance(options, SECRET_TYPES):
        return str(options)
    if isinstance(raw, dict) and isinstance(options, Options):
        fields = type(options).model_fields
        return scrub({key: _masked(value, getattr(options, key) if key in fields else None)
                      for key, value in raw.items()})
    if isinstance(raw, list) and isinstance(options, (list, tuple)) and len(raw) == len(options):
        return [_masked(r, o) for r, o in zip(raw, options, strict=True)]
    return scrub(raw)


def _price_warnings(settings: Settings, routing: ComponentSpec | None) -> tuple[ConfigIssue, ...]:
    """A routed model with no price: its cost, savings and budget would all read $0."""
    tiers = getattr(routing.options, "tiers", None) or [] if routing is not None else []
    models = [(f"routing.tiers[{i}].model", tier.model) for i, tier in enumerate(tiers)]
    return tuple(ConfigIssue(path, f"no price known for model {model!r}: its calls count as $0 in stats, routing savings "
                                   f"and budgets; add it under costs.prices, e.g. costs: {{prices: {{{model}: "
                                   "{input_per_million: 0.5, output_per_million: 1.5}}}")
                 for path, model in unpriced(models, settings.costs.prices))


SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(registry: Registry) -> dict[str, Any]:
    """A JSON Schema (Draft 2020-12) of the document with every installed component's options:
    durations and sizes as numbers or unit strings, every ``$ref`` resolving from the root,
    unknown keys rejected at every level."""
    schema = document_model(registry).model_json_schema()
    defs = schema.setdefault("$defs", {})

    def one_of(kind: str) -> dict[str, Any]:
        variants = []
        for comp_name in registry.names(kind):
            cls = registry.get(kind, comp_name)
            opts = _hoisted(cls.Options.model_json_schema(), defs, f"{kind}-{comp_name}")
            opts.setdefault("properties", {})["type"] = {"const": comp_name}
            opts["required"] = ["type", *opts.get("required", [])]
            opts["title"] = f"{kind}:{comp_name}"
            variants.append(opts)
        return {"oneOf": variants} if variants else {"not": {}, "description": f"no {kind} installed"}

    defs["CacheSettings"]["properties"]["tiers"] = {"type": "array", "items": one_of("cache_backend")}
    defs["MetricsSettings"]["properties"]["sinks"] = {"type": "array", "items": one_of("metric_sink")}
    schema["properties"]["batching"] = {"anyOf": [one_of("batch_strategy"), {"type": "null"}]}
    schema["properties"]["routing"] = {"anyOf": [one_of("model_selector"), {"type": "null"}]}
    for declared in registry.sections.values():  # the component blocks inside plugins' sections
        if declared.components:
            properties = _section_schema(schema, defs, declared.path).setdefault("properties", {})
            for key, kind in declared.components.items():
                properties[key] = one_of(kind)
    defs["Interpolated"] = {"type": "string", "pattern": _ENV.pattern,
                            "description": "${VAR} or ${VAR:-default}: replaced from the environment before validation"}
    return {"$schema": SCHEMA_DIALECT, **_masked_defaults(_interpolable(schema))}


def _section_schema(schema: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    """The object schema (in ``defs``) of the section at ``path``, followed from the root."""
    node = schema
    for part in path.split("."):
        node = node["properties"][part]
        while "$ref" not in node and (node.get("anyOf") or node.get("allOf")):
            node = next(b for b in node.get("anyOf") or node["allOf"] if b.get("type") != "null")
        if "$ref" in node:
            node = defs[node["$ref"].removeprefix("#/$defs/")]
    return node


_SCALARS = {"string", "number", "integer", "boolean", "null"}


def _scalar(node: Any) -> bool:
    """Does ``node`` (a property's schema) only ever take scalar values?"""
    if not isinstance(node, dict) or "$ref" in node:
        return False
    branches = node.get("anyOf") or node.get("oneOf")
    if branches:
        return all(_scalar(b) for b in branches)
    kinds = node.get("type")
    if kinds is not None:
        return set(kinds if isinstance(kinds, list) else [kinds]) <= _SCALARS
    return "const" in node or "enum" in node


def _interpolable(node: Any, key: str | None = None) -> Any:
    """Every scalar setting (but a component's ``type``) also takes a ``${VAR}`` string, as the
    loader does: the schema judges the file as written, before the environment fills it in."""
    if isinstance(node, list):
        return [_interpolable(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "properties" and isinstance(v, dict):
            out[k] = {name: _with_env(_interpolable(sub)) if name != "type" and _scalar(sub) else _interpolable(sub)
                      for name, sub in v.items()}
        else:
            out[k] = _interpolable(v)
    return out


def _with_env(node: dict[str, Any]) -> dict[str, Any]:
    keep = {k: node[k] for k in ("title", "description", "default", "examples") if k in node}
    inner = {k: v for k, v in node.items() if k not in keep}
    return {**keep, "anyOf": [inner, {"$ref": "#/$defs/Interpolated"}]}


def _hoisted(schema: dict[str, Any], defs: dict[str, Any], owner: str) -> dict[str, Any]:
    """``schema`` with its own ``$defs`` moved into the root's (its ``$ref`` s point at the root:
    left nested they resolve nowhere); a name the root holds with another meaning is renamed."""
    own = schema.pop("$defs", {})
    renames = {}
    for name, definition in own.items():
        if name in defs and defs[name] != definition:
            renames[name] = f"{owner}-{name}"
    for name, definition in own.items():
        defs[renames.get(name, name)] = _renamed(definition, renames)
    return _renamed(schema, renames)


def _renamed(node: Any, renames: dict[str, str]) -> Any:
    if not renames:
        return node
    if isinstance(node, dict):
        out = {k: _renamed(v, renames) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in renames:
            out["$ref"] = "#/$defs/" + renames[ref[8:]]
        return out
    if isinstance(node, list):
        return [_renamed(v, renames) for v in node]
    return node


def _masked_defaults(schema: Any) -> Any:
    """Defaults and examples in a schema with URL credentials and credential-named values masked
    (a secret-typed default is already shown masked by its type)."""
    if isinstance(schema, dict):
        return {k: scrub(v) if k in ("default", "examples", "const") else _masked_defaults(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_masked_defaults(v) for v in schema]
    return schema


# Moved to the semantic cache's feature (dspy_turbo_faiss.feature, in dspy-turbo-faiss); the old path warns
# for one release and imports the plugin only when read.
__getattr__ = moved_to_plugin(__name__, "dspy_turbo_faiss.feature", "dspy-turbo-faiss",
                              ("SemanticGuards", "SemanticVerifier", "SemanticJudge", "SemanticOverride", "SemanticSettings"))
