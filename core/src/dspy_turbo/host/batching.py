"""The core's side of ``turbo.batch(program, examples)``: it finds the batch runner and gives it the host.

The batch machinery (cache-first lookup, windows, de-duplication, retries, rate limits,
progress) and the ``thread`` and ``async`` strategies live in the ``dspy-turbo-batching``
distribution. ``Turbo.batch``/``batch_iter``/``abatch``/``abatch_iter`` and
``dspy_turbo.batch`` hand each batch to the runner the first-result hook
``dspy_turbo_batch_runner(host)`` returns; ``host`` is a :class:`TurboBatchHost`, the
narrow :class:`~dspy_turbo.plugin.batch.BatchHost` interface (the ``batching`` section, the
strategies, the item cache, installing the Turbo), not the whole ``Turbo``. With no
runner installed a batch fails with :class:`BatchingUnavailable`, which says what to install.

The machinery's names that used to live here keep working from this path for one release
(with a ``DeprecationWarning``): the contracts from ``dspy_turbo.plugin.batch``, the rest
from ``dspy_turbo_batching.batch`` (imported only when read).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .._moved import moved, moved_to_plugin
from ..cache import items
from ..cache import program_identity as programs
from ..cache.entry import Entry
from ..plugin.batch import BatchError, BatchOptions, BatchRunner, BatchStrategy, Runner  # noqa: F401 (old paths)

if TYPE_CHECKING:
    from .turbo import Turbo

PACKAGE = "dspy-turbo-batching"


class BatchingUnavailable(RuntimeError):
    """``turbo.batch`` was called and no installed plugin runs batches."""

    def __init__(self):
        super().__init__(f"turbo.batch needs the batch runner of {PACKAGE}, which is not installed: "
                         f"pip install {PACKAGE} (it provides the batch machinery and the thread and async strategies)")
        self.package = PACKAGE


class TurboBatchHost:
    """What the batch machinery gets from a Turbo (:class:`dspy_turbo.plugin.batch.BatchHost`)."""

    __slots__ = ("turbo",)

    def __init__(self, turbo: Turbo):
        self.turbo = turbo

    # -- the Host parts
    @property
    def namespace(self) -> str:
        return self.turbo.namespace

    @property
    def cache(self):
        return self.turbo.cache

    @property
    def bus(self):
        return self.turbo.bus

    @property
    def coordinator(self):
        return self.turbo.coordinator

    def key(self, request: dict[str, Any], ignored: Iterable[str] | None = None) -> str:
        return self.turbo.key(request, ignored)

    @property
    def key_prefix(self) -> str:
        return self.turbo.key_prefix

    @property
    def default_ttl(self) -> float | None:
        return self.turbo.default_ttl

    def key_material(self, request: dict[str, Any], ignored: Iterable[str] | None = None) -> bytes:
        return self.turbo.key_material(request, ignored)

    def store(self, key: str, value: Any, *, request: dict[str, Any] | None = None, model: str | None = None,
              ttl: float | None = None, tags: Iterable[str] = ()) -> bool:
        return self.turbo.store(key, value, request=request, model=model, ttl=ttl, tags=tags)

    # -- what a batch needs
    @property
    def component_host(self) -> Turbo:
        return self.turbo

    @property
    def inline_io(self) -> bool:
        return self.turbo.cache.in_process and not self.turbo._has_store_hooks

    def settings(self) -> tuple[str | None, dict[str, Any]]:
        spec = self.turbo.config.batching
        if spec is None:
            return None, {}
        return spec.cls.name, spec.options.model_dump(exclude_unset=True)

    def strategy(self, name: str) -> type[BatchStrategy]:
        registry = self.turbo.registry
        cls = registry.get("batch_strategy", name)
        if cls is None:
            from .plugin_manager import KNOWN_PROVIDERS

            available = ", ".join(registry.names("batch_strategy")) or "none installed"
            package = KNOWN_PROVIDERS.get(("batch_strategy", name))
            hint = f"; it is provided by {package}: pip install {package}" if package else ""
            raise ValueError(f"unknown batch strategy {name!r}{hint} (available: {available})")
        return cls

    def item_inputs(self, example: Any) -> dict[str, Any]:
        return programs.item_inputs(example)

    def program_key(self, program: Any) -> str:
        return items.program_key(self.turbo, program)

    def item_key(self, program: Any, inputs: dict[str, Any], prefix: str | None = None) -> str | None:
        return items.item_key(self.turbo, program, inputs, prefix)

    def uses_item_cache(self, setting: bool | None, program: Any) -> bool:
        return items.uses_item_cache(setting, program)

    def lookup_items(self, keys: list[str]) -> dict[str, tuple[Any, Entry]]:
        control = self.turbo.control()
        if control is not None and control.read is False:
            return {}
        entries = self.turbo.cache.get_many(keys, report_misses=False, level="item")
        out = {}
        for key, entry in entries.items():
            try:
                out[key] = (entry.copy_value(), entry)
            except Exception:  # undecodable: run the item instead
                continue
        return out

    def store_item(self, key: str, value: Any, usage: dict[str, int] | None = None, cost: float | None = None) -> None:
        self.turbo.store(key, value, usage=usage, cost=cost, level="item")  # counted as batch items (stats()["batch_items"])

    def report_coalesced(self, key: str, entry: Entry | None = None) -> None:
        if entry is None:
            self.turbo.report_coalesced(key, lookup=False)  # a batch's event loop must not wait on a tier
        else:
            self.turbo.report_coalesced(key, entry.model, entry.usage, entry.cost, lookup=False)

    def installed(self) -> Callable[[], None] | None:
        return items.ensure_installed(self.turbo)

    @property
    def runs_inline(self) -> Callable[[Any], bool]:
        from ..integration.dspy_cache import runs_inline  # read once per batch: it is called per executor task

        return runs_inline


def runner(turbo: Turbo) -> BatchRunner:
    """The batch runner for ``turbo`` (``dspy_turbo_batch_runner``); ``BatchingUnavailable`` if none."""
    found = turbo.pm.hook.dspy_turbo_batch_runner(host=TurboBatchHost(turbo))
    if found is None:
        raise BatchingUnavailable()
    return found


def batch(turbo: Turbo, program: Any, examples: Iterable[Any], *, strategy: str | None = None, **overrides: Any) -> list[Any]:
    return runner(turbo).batch(program, examples, strategy=strategy, **overrides)


def batch_iter(turbo: Turbo, program: Any, examples: Iterable[Any], *, strategy: str | None = None,
               **overrides: Any) -> Iterator[Any]:
    return runner(turbo).batch_iter(program, examples, strategy=strategy, **overrides)


async def abatch(turbo: Turbo, program: Any, examples: Any, *, strategy: str | None = None, **overrides: Any) -> list[Any]:
    return await runner(turbo).abatch(program, examples, strategy=strategy, **overrides)


def abatch_iter(turbo: Turbo, program: Any, examples: Any, *, strategy: str | None = None,
                **overrides: Any) -> AsyncIterator[Any]:
    return runner(turbo).abatch_iter(program, examples, strategy=strategy, **overrides)


# their old paths
item_key, program_key, uses_item_cache = items.item_key, items.program_key, items.uses_item_cache
_ensure_installed = items.ensure_installed

moved(__name__, {**{name: "dspy_turbo.plugin.batch" for name in ("BatchError", "BatchOptions", "BatchStrategy", "Runner")},
                 **{name: "dspy_turbo.cache.items" for name in ("item_key", "program_key", "uses_item_cache")}})
__getattr__ = moved_to_plugin(__name__, "dspy_turbo_batching.batch", PACKAGE, ("BATCH", "Item"))
