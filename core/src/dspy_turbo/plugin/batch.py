"""The batch strategy contract: how the items of ``turbo.batch(program, examples)`` are run.

A strategy only *runs* items. The batch machinery (dspy-turbo-batching) does everything else (reading the input with
backpressure, bulk cache lookup, de-duplication, order, errors, timeouts, rate limits,
retries, progress, events), so every strategy behaves the same. Subclass
:class:`BatchStrategy` (its ``Options`` should subclass :class:`BatchOptions`), return a
:class:`Runner` from ``runner(max_concurrency)``; the runner's ``async run(item)`` runs one
:class:`Item` (``item.call()`` on a thread, or ``await item.acall()``), ``aclose()`` releases
what it holds. ``dspy_turbo_batching.workers.WorkerPool`` is a thread pool that suits a
thread-based runner. ``dspy_turbo.testing.BatchStrategySuite`` checks every rule.

**Who runs batches.** ``turbo.batch``/``batch_iter``/``abatch``/``abatch_iter`` (and
``dspy_turbo.batch``) hand the whole batch to the :class:`BatchRunner` the
``dspy_turbo_batch_runner`` hook returns; dspy-turbo-batching provides it (the batch
machinery: cache-first lookup, windows, dedup, retries, rate limits, progress). The hook
receives a :class:`BatchHost`: what the machinery needs from the core, no more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import Field

from .._moved import moved_to_plugin
from ..host.components import Component, Options
from ..host.units import Duration
from .host import Host

if TYPE_CHECKING:
    from ..cache.entry import Entry

__all__ = ["BatchError", "BatchHost", "BatchOptions", "BatchRunner", "BatchStrategy", "Item", "Limit",
           "RateLimitSettings", "RetrySettings", "Runner"]


class Limit(Options):
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    burst: Duration = 1.0
    """Seconds' worth of the rate that may be spent at once (the bucket's size).
    Small keeps the rate even, as providers measure it over short windows."""


class RateLimitSettings(Limit):
    """``batching.rate_limit``: a limit applied to each model on its own, with overrides."""

    per_model: dict[str, Limit] = {}
    """A different limit for some models, by the LM's model name (``openai/gpt-4o``)."""


class RetrySettings(Options):
    attempts: int | None = Field(default=None, ge=1)
    """Attempts per LM call, the first included. Default: the LM's ``num_retries`` + 1."""
    initial: Duration = 1.0
    """Backoff before the first retry; it doubles (``multiplier``) each time."""
    multiplier: float = Field(default=2.0, ge=1.0)
    max_delay: Duration = 60.0
    """Longest backoff between two attempts (a longer ``Retry-After`` is still honoured)."""
    jitter: bool = True
    """Wait a random time between half and all of the backoff, so callers do not retry in step."""
    max_retry_after: Duration = 600.0
    """A ``Retry-After`` longer than this is not waited for: the error is raised."""


class BatchOptions(Options):
    """``batching:`` options every strategy understands; each may be overridden per call."""

    max_concurrency: int = Field(default=16, ge=1, le=100_000)
    """Items running at once."""
    window: int | None = Field(default=None, ge=1)
    """Items read ahead of the oldest unfinished one (default: 4 x max_concurrency, at least 256)."""
    timeout: Duration | None = None
    """Per item: an item still running after this many seconds fails with ``TimeoutError``."""
    return_exceptions: bool = False
    """A failed item's result is its exception (default: ``None``, as ``dspy.Parallel`` does)."""
    max_errors: int | None = Field(default=None, ge=1)
    """Stop the batch and raise :class:`BatchError` when this many items have failed.
    Default: DSPy's ``settings.max_errors``, or no limit with ``return_exceptions``."""
    item_cache: bool | None = None
    """Cache each item's completed result under a program-level key (see module docstring):
    unset, only for programs made entirely of DSPy's own code; ``True``, for any program
    (a code change the key cannot see then serves old answers); ``False``, never."""
    progress: bool | None = None
    """A progress bar: ``None`` shows it when stderr is a terminal."""
    rate_limit: RateLimitSettings | None = None
    retry: RetrySettings = RetrySettings()




@runtime_checkable
class Item(Protocol):
    """One example of a batch, as a runner receives it: ``program(**inputs)``.

    ``call()`` runs it on the calling thread (for thread-based strategies), ``acall()``
    on the running event loop (``program.acall``). Both run inside the batch's context
    (DSPy settings such as ``dspy.context(lm=...)``, the rate limit and retry policy) and
    store the completed result in the item cache, so a strategy only has to call one.
    """

    index: int
    """The example's position in the input."""
    key: str | None
    """Its item-cache key, or ``None`` when it cannot be keyed."""
    inputs: dict[str, Any]
    """The keyword arguments the program is called with."""

    @property
    def program(self) -> Any:
        """The program being run."""

    def call(self) -> Any:
        """Run the item here (a worker thread) and return its result, or raise what it raised."""

    async def acall(self) -> Any:
        """Run the item on the running event loop (``await program.acall(**inputs)``)."""


class Runner:
    """Runs the items of one batch; made by :meth:`BatchStrategy.runner`, one per batch.

    Every method is called on the batch's event loop.
    """

    bounded: bool = False
    """True when ``run`` itself lets at most ``max_concurrency`` items run at once (a pool
    of that many threads): the batch then hands items over without waiting for a slot,
    so a worker that finishes picks the next item without a round trip through the event
    loop. With a per-item ``timeout`` the batch still hands out slots itself, so that the
    timeout counts running time, not time spent waiting for a slot. (A thread cannot be
    stopped: a timed-out item's thread runs on in the background and keeps its pool thread
    busy, so an item handed to that pool meanwhile may wait for it, and that wait counts.)
    A bounded runner may also
    offer ``submit(item) -> concurrent.futures.Future`` (the same as ``run``, without a
    coroutine per item); the batch then uses it when there is no ``timeout``."""

    async def run(self, item: Item) -> Any:
        """Run ``item`` once and return its result, or raise what it raised.

        Unless ``bounded``, the batch calls this for at most ``max_concurrency`` items
        at once, so a runner needs no queue of its own. If the awaiting task is cancelled (a timeout, a
        cancelled batch), stop the item when that is possible (a coroutine) or let it
        finish in the background (a thread cannot be interrupted; a pool of
        ``max_concurrency`` threads still bounds how many run).
        """
        raise NotImplementedError

    async def started(self, item: Item) -> None:
        """Return once the runner can start ``item`` at once: workers it starts for the batch
        are up and hold the batch's program. With a per-item ``timeout`` the batch awaits
        this before it starts an item's clock, so start-up (worker processes, a Ray pool) is
        not counted as the item's running time. Runners that start nothing keep this no-op."""

    async def aclose(self) -> None:
        """The batch is over (finished, failed or cancelled): release threads and loops."""


class BatchStrategy(Component):
    """Base of batch strategy components (``kind = "batch_strategy"``).

    Register subclasses through ``dspy_turbo_batch_strategies``; their ``Options`` should
    subclass :class:`BatchOptions` so the common options stay valid in every strategy.
    """

    kind = "batch_strategy"
    Options = BatchOptions

    def runner(self, max_concurrency: int) -> Runner:
        raise NotImplementedError


class BatchError(RuntimeError):
    """A batch stopped because ``max_errors`` items failed; the first failure is ``__cause__``."""

    def __init__(self, errors: int, done: int, first: BaseException):
        super().__init__(f"batch stopped after {errors} failed items ({done} finished); "
                         f"first failure: {type(first).__name__}: {str(first)[:200]}")
        self.errors = errors
        self.done = done


@runtime_checkable
class BatchHost(Host, Protocol):
    """What the batch machinery receives from the core (``dspy_turbo_batch_runner(host)``).

    Besides the :class:`~dspy_turbo.plugin.host.Host` parts (``namespace``, ``key``,
    ``cache``, ``bus``, ``coordinator``): the ``batching`` section, the strategies, the item
    cache (the program-level keys under which completed results are stored, shared with
    ``dspy_turbo.CachedModule``) and installing the Turbo into DSPy for a batch's duration.
    """

    component_host: Host
    """What a strategy's ``from_options(options, host)`` receives (the ``Turbo``)."""
    inline_io: bool
    """Item lookups and stores take microseconds (every tier in this process's memory, no
    store hook): cheaper made on the calling thread than handed to I/O threads."""

    def settings(self) -> tuple[str | None, dict[str, Any]]:
        """The YAML ``batching`` section: the strategy's name (``None``: no section) and the
        options it sets."""

    def strategy(self, name: str) -> type[BatchStrategy]:
        """The strategy class named ``name``; ``ValueError`` naming the package that provides it."""

    def item_inputs(self, example: Any) -> dict[str, Any]:
        """The keyword arguments of one example (a ``dspy.Example``, a dict); ``TypeError`` if none."""

    def program_key(self, program: Any) -> str:
        """The key of a program's identity (its code, predictors, demos, LM); raises if unkeyable."""

    def item_key(self, program: Any, inputs: dict[str, Any], prefix: str | None = None) -> str | None:
        """The item-cache key of ``program(**inputs)`` (``prefix``: its ``program_key``), or ``None``."""

    def uses_item_cache(self, setting: bool | None, program: Any) -> bool:
        """Whether ``program``'s completed results are cached (``item_cache``, see BatchOptions)."""

    def lookup_items(self, keys: list[str]) -> dict[str, tuple[Any, Entry]]:
        """The cached items among ``keys`` (one bulk read per tier): their values (own copies)
        and entries; none inside a scope that reads nothing (``bypass()``, ``refresh()``)."""

    def store_item(self, key: str, value: Any, usage: dict[str, int] | None = None, cost: float | None = None) -> None:
        """Store an item's completed result; ``usage``/``cost``: what its LM calls spent."""

    def report_coalesced(self, key: str, entry: Entry | None = None) -> None:
        """Count one item served by another's result (a duplicate; ``entry``: the one it was served from)."""

    def installed(self) -> Callable[[], None] | None:
        """Install this Turbo into DSPy if none is, for as long as its batches run: the undo, or None."""

    def runs_inline(self, task: Any) -> bool:
        """For a thread pool that may run some tasks on the submitting thread: DSPy's cheap helpers."""


@runtime_checkable
class BatchRunner(Protocol):
    """Runs whole batches for one host: what ``dspy_turbo_batch_runner`` returns. The
    arguments are those of ``Turbo.batch`` (``strategy``, then per-call options that
    override the YAML ``batching`` section)."""

    def batch(self, program: Any, examples: Iterable[Any], *, strategy: str | None = None, **options: Any) -> list[Any]:
        """Every result, in input order."""

    def batch_iter(self, program: Any, examples: Iterable[Any], *, strategy: str | None = None,
                   **options: Any) -> Iterator[Any]:
        """Results in input order as they are ready (bounded memory)."""

    async def abatch(self, program: Any, examples: Any, *, strategy: str | None = None, **options: Any) -> list[Any]:
        """The async form of ``batch``; ``examples`` may be an async iterable."""

    def abatch_iter(self, program: Any, examples: Any, *, strategy: str | None = None,
                    **options: Any) -> AsyncIterator[Any]:
        """The async form of ``batch_iter`` (an async generator)."""


# The batch machinery's thread pool moved with it (the old path warns for one release).
__getattr__ = moved_to_plugin(__name__, "dspy_turbo_batching.workers", "dspy-turbo-batching", ("WorkerPool",))
