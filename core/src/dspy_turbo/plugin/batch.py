"""The batch strategy contract: how the items of ``turbo.batch(program, examples)`` are run.

A strategy only *runs* items. The batch does everything else (reading the input with
backpressure, bulk cache lookup, de-duplication, order, errors, timeouts, rate limits,
retries, progress, events), so every strategy behaves the same. Subclass
:class:`BatchStrategy` (its ``Options`` should subclass :class:`BatchOptions`), return a
:class:`Runner` from ``runner(max_concurrency)``; the runner's ``async run(item)`` runs one
:class:`Item` (``item.call()`` on a thread, or ``await item.acall()``), ``aclose()`` releases
what it holds. :class:`WorkerPool` is a thread pool that suits a thread-based runner.
``dspy_turbo.testing.BatchStrategySuite`` checks every rule.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from ..components import Component, Options
from ..ratelimit import RateLimitSettings
from ..retry import RetrySettings
from ..units import Duration
from ..workers import WorkerPool

__all__ = ["BatchOptions", "BatchStrategy", "Item", "RateLimitSettings", "RetrySettings", "Runner", "WorkerPool"]


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


