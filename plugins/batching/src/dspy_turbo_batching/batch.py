"""One batch run of a DSPy program: ``turbo.batch(program, examples)`` and ``await turbo.abatch(...)``.

**Cache-first, and what that means.** A multi-step program's later LM requests depend on
its earlier answers, so they cannot be known, let alone looked up, before it runs. The
batch therefore caches at two levels:

1. *Per LM request*, always: every item runs the program, whose every LM call goes
   through the Turbo (hits return at once, concurrent identical requests make one call).
   This level is always current: an item returns what the program returns now.
2. *Per item*: each item's completed result stored under a program-level key (the
   program's identity and the item's inputs, see ``dspy_turbo.programs``). Before
   anything runs, a window of items is looked up in bulk (``TieredCache.get_many``: one
   ``get_many`` per tier, an ``MGET`` on Redis); hits are returned at once, only misses
   run. Python code cannot be keyed by everything that changes its result, so by default
   (``item_cache`` unset) this level serves only programs made entirely of DSPy's own
   code (``dspy_turbo.programs.library_program``: ``Predict``/``ChainOfThought`` with DSPy's LM and
   adapters), where it gives exactly what the LM-level cache would, without formatting
   and parsing each item again. ``item_cache=True`` turns it on for any program, at the
   risk described in ``dspy_turbo.programs`` (an edit the key cannot see serves the
   old answer); ``item_cache=False`` turns it off.

Items with the same key inside the window run once (the others get copies of its
result). Results come back in input order. The input may be any iterable, a generator of
millions included: at most ``window`` items are read ahead of the oldest unfinished one
(backpressure), so memory stays bounded (use ``batch_iter``/``abatch_iter`` to consume
results as a stream).

**Strategies** (the YAML ``batching: {type: ...}``) only *run* items; this module does
the rest (reading, lookup, de-duplication, order, errors, timeouts, progress, events).
A strategy is a :class:`~dspy_turbo.plugin.batch.BatchStrategy` component (the contract lives in the SDK,
``dspy_turbo.plugin.batch``); plugin authors implement
:meth:`BatchStrategy.runner` returning a :class:`Runner` (see their docstrings). This
distribution provides ``thread`` and ``async``. What the batch needs from the core it gets
from its :class:`~dspy_turbo.plugin.batch.BatchHost` (the item cache, the strategies).

Each real LM call an item makes goes through the batch's rate limit and retry policy
(:mod:`dspy_turbo_batching.policy`, set through ``dspy_turbo.plugin.calls``).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from functools import partial
from typing import Any

from dspy_turbo.plugin import calls
from dspy_turbo.plugin.backend import Entry
from dspy_turbo.plugin.batch import BatchError, BatchHost, BatchOptions, BatchStrategy
from dspy_turbo.plugin.events import Event
from dspy_turbo.plugin.values import copy_value

from .item import Item
from .policy import CallPolicy
from .progress import Progress
from .ratelimit import RateLimiter
from .retry import RetryPolicy
from .source import Source
from .workers import WorkerPool

BATCH = "batch"  # the event kind one finished batch emits

__all__ = ["BATCH", "Batch", "Item"]


# -- one batch -------------------------------------------------------------------------------


class _Outcome:
    __slots__ = ("ok", "value", "shared")

    def __init__(self, ok: bool, value: Any, shared: bool = False):
        self.ok = ok
        self.value = value
        self.shared = shared


def _own_copy(value: Any) -> Any:
    """A duplicate item's own copy of the leader's result, so mutating one never changes the other."""
    try:
        return copy_value(value)
    except Exception:
        return value


class Batch:
    """One batch: its options, counters and item cache; ``chunks`` runs it."""


    def __init__(self, host: BatchHost, program: Any, options: BatchOptions, strategy: BatchStrategy, total: int | None):
        import dspy

        self.host = host
        self.program = program
        self.options = options
        self.strategy = strategy
        self.window = options.window or max(4 * options.max_concurrency, 256)
        self.chunk = max(1, min(self.window // 4, 1024))
        if options.max_errors is not None:
            self.max_errors = options.max_errors
        else:
            self.max_errors = None if options.return_exceptions else (dspy.settings.max_errors or None)
        limiter = RateLimiter(options.rate_limit, host.coordinator) if options.rate_limit else None
        self.policy = CallPolicy(host, limiter, RetryPolicy(options.retry))
        self.prefix = None
        if host.uses_item_cache(options.item_cache, program):
            try:
                self.prefix = host.program_key(program)
            except Exception:  # an identity we cannot key: no item cache, LM requests are still cached
                self.prefix = None
        self.item_cache = self.prefix is not None
        with self.policy.active():
            self.context = contextvars.copy_context()
        self.io = WorkerPool(max_workers=2, thread_name_prefix="dspy-turbo-batch-io")
        # Every tier in this process's memory and no store hook that may do I/O: item lookups
        # and stores take microseconds, less than handing them to the I/O threads.
        self.inline_io = host.inline_io
        self.progress = Progress(options.progress, total)
        self.items = self.hits = self.coalesced = self.errors = self.executed = self.finished = 0
        self.first_error: BaseException | None = None
        self.stopping = False

    def key(self, inputs: dict[str, Any]) -> str | None:
        return None if self.prefix is None else self.host.item_key(self.program, inputs, self.prefix)

    def keep_later(self, item: Item, value: Any, spent: calls.Spent) -> None:
        """Store an item's result on the batch's I/O threads: the worker goes on to the next
        item at once (the store is off the path between two LM calls). The batch waits for
        pending stores before it ends. With every tier in memory (``inline_io``) the store
        takes microseconds and is made here, cheaper than the hand-off."""
        if item.key is not None and self.item_cache and value is not None:
            if self.inline_io:
                self.keep(item, value, spent)
                return
            try:
                # In the batch's context (the caller's `turbo.tagged(...)` tags, for one)
                self.io.submit(self.context.copy().run, self.keep, item, value, spent)
            except RuntimeError:  # the batch is over (cancelled): store here instead
                self.keep(item, value, spent)

    def keep(self, item: Item, value: Any, spent: calls.Spent | None = None) -> None:
        if item.key is not None and self.item_cache and value is not None:
            self.host.store_item(item.key, value, spent.usage() if spent else None, spent.cost if spent else None)

    def lookup(self, keys: list[str]) -> dict[str, tuple[Any, Entry]]:
        """The cached items among ``keys``: their values (own copies) and entries (none inside
        a scope that reads nothing: ``bypass()``, ``refresh()``, record mode)."""
        return self.host.lookup_items(keys)

    # -- one pass over the input: ``chunks`` and its pieces ----------------------------------
    #
    # A window of slots, in input order: each holds an outcome (a hit, a bad example) or the
    # future of one (an item running, or a duplicate waiting on the item with its key). The
    # oldest slots are handed out as soon as they are done; the input is read while the
    # window has room.

    async def chunks(self, examples: Iterable[Any] | Any) -> AsyncIterator[list[_Outcome]]:
        """Outcomes in input order, in lists of those ready together."""
        started = time.perf_counter()
        self._begin(examples)
        try:
            while True:
                await self._fill()
                if not self._slots:
                    break
                await self._wait_for_head()
                yield self._ready()
        finally:
            await self._end(started)

    def _begin(self, examples: Iterable[Any] | Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._runner = runner = self.strategy.runner(self.options.max_concurrency)
        self._source = Source(examples)
        self._slots: deque[tuple[Any, bool]] = deque()  # (an _Outcome or a future of one, is a duplicate)
        self._inflight: dict[str, asyncio.Future] = {}  # key -> the future of the item running it
        self._leaders: dict[int, str] = {}  # input position -> the key its item runs
        self._tasks: set[asyncio.Task] = set()
        self._abort: asyncio.Future = self._loop.create_future()  # done: max_errors reached
        self._slots_free = asyncio.Semaphore(self.options.max_concurrency)
        self._index = 0  # the next example's position
        self._position = 0  # the position of the oldest slot
        # A bounded runner with submit(): no coroutine per item, one callback into the loop when it is done.
        self._submit = getattr(runner, "submit", None) if runner.bounded and self.options.timeout is None else None
        self._pending: set = set()  # what was submitted and is not settled
        # Items finished by the pool's threads wait here for the loop. One wake-up of the loop
        # settles all those finished meanwhile: a wake-up is a thread switch under the GIL.
        self._settled: deque[tuple[asyncio.Future, Any]] = deque()
        self._wake = False  # a drain is scheduled and has not started yet

    async def _fill(self) -> None:
        """Read and admit examples while the window has room for another chunk."""
        while not self._source.exhausted and len(self._slots) <= self.window - self.chunk:
            got = await self._source.take(self.chunk)
            if got:
                await self._admit(got)

    async def _wait_for_head(self) -> None:
        """Wait until the oldest slot is done; ``BatchError`` once ``max_errors`` items failed."""
        head, _ = self._slots[0]
        if isinstance(head, asyncio.Future) and not head.done():
            await asyncio.wait([head, self._abort], return_when=asyncio.FIRST_COMPLETED)
        if self._abort.done():
            raise BatchError(self.errors, self.finished + self.hits, self.first_error) from self.first_error

    def _ready(self) -> list[_Outcome]:
        """Take the done slots at the head of the window, in order."""
        ready: list[_Outcome] = []
        slots = self._slots
        while slots and (not isinstance(slots[0][0], asyncio.Future) or slots[0][0].done()):
            slot, duplicate = slots.popleft()
            outcome = slot.result() if isinstance(slot, asyncio.Future) else slot
            if duplicate:
                outcome = _Outcome(outcome.ok, _own_copy(outcome.value) if outcome.ok else outcome.value, True)
                self.progress.update(errors=0 if outcome.ok else 1)
            key = self._leaders.pop(self._position, None)
            if key is not None:
                self._inflight.pop(key, None)
            self._position += 1
            ready.append(outcome)
        return ready

    # -- admitting a chunk of examples: bulk lookup, then a slot each

    async def _admit(self, examples: list[Any]) -> None:
        prepared = self._prepare(examples)
        found = await self._find(prepared)
        handed: set[str] = set()  # keys already served from ``found`` in this chunk
        for index, key, inputs in prepared:
            self._place(index, key, inputs, found, handed)

    def _prepare(self, examples: list[Any]) -> list[tuple[int, str | None, Any]]:
        """(position, item key, inputs, or the TypeError of an example that has none) of each."""
        prepared = []
        for example in examples:
            index = self._index
            try:
                inputs = self.host.item_inputs(example)
            except TypeError as exc:
                prepared.append((index, None, TypeError(f"batch item {index}: {exc}")))
            else:
                prepared.append((index, self.key(inputs), inputs))
            self._index += 1
        self.items += len(prepared)
        return prepared

    async def _find(self, prepared: list[tuple[int, str | None, Any]]) -> dict[str, tuple[Any, Entry]]:
        """The cached items among the chunk's keys (those not running already), in one lookup."""
        keys = [k for _, k, _ in prepared if k is not None and k not in self._inflight]
        if not keys:
            return {}
        if self.inline_io:
            return self.lookup(keys)
        return await self._loop.run_in_executor(self.io, self.lookup, keys)

    def _place(self, index: int, key: str | None, inputs: Any, found: dict[str, tuple[Any, Entry]],
               handed: set[str]) -> None:
        """The slot of one example: its error, its cached result, the running item it duplicates, or a new item."""
        if isinstance(inputs, BaseException):
            outcome = _Outcome(False, inputs)
            self._slots.append((outcome, False))
            self._finished(outcome)
        elif key is not None and key in found:
            self._slots.append((self._hit(key, found[key], handed), False))
        elif key is not None and key in self._inflight:
            self.coalesced += 1
            self.host.report_coalesced(key)  # every request counts once in turbo.stats()
            self._slots.append((self._inflight[key], True))
        else:
            self._slots.append((self._start(index, key, inputs), False))

    def _hit(self, key: str, found: tuple[Any, Entry], handed: set[str]) -> _Outcome:
        self.hits += 1
        value, entry = found
        if key in handed:  # the same key twice in this chunk: each gets its own copy
            value = _own_copy(value)
            # the bulk lookup counted the key once; this copy saved the same call
            self.host.report_coalesced(key, entry)
        handed.add(key)
        self.progress.update(hits=1)
        return _Outcome(True, value)

    def _start(self, index: int, key: str | None, inputs: dict[str, Any]) -> asyncio.Future:
        """Hand a new item to the runner; the future of its outcome."""
        future = self._loop.create_future()
        if key is not None:
            self._inflight[key] = future
            self._leaders[index] = key
        self.executed += 1
        item = Item(index, key, inputs, self)
        if self._submit is not None:
            submitted = self._submit(item)
            self._pending.add(submitted)
            submitted.add_done_callback(partial(self._from_thread, future))
        else:
            task = self._loop.create_task(self._execute(item, future))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return future

    # -- running items and settling their outcomes

    def _finished(self, outcome: _Outcome) -> None:
        """Count a finished item; stop the batch when ``max_errors`` items have failed."""
        self.progress.update(errors=0 if outcome.ok else 1)
        self.finished += 1
        if not outcome.ok and not self._abort.done():
            self.errors += 1
            if self.first_error is None:
                self.first_error = outcome.value
            if self.max_errors is not None and self.errors >= self.max_errors and not self._abort.done():
                self.stopping = True
                self._abort.set_result(None)

    async def _execute(self, item: Item, future: asyncio.Future) -> None:
        """Run one item in a task of its own (a runner without ``submit``, or a ``timeout``)."""
        calls.set_policy(self.policy)  # this task's own context: LM calls see the batch's policy
        runner = self._runner
        try:
            if runner.bounded and self.options.timeout is None:
                value = await runner.run(item)
            else:
                async with self._slots_free:
                    if self._abort.done():  # the batch is stopping: start nothing new
                        return
                    started = getattr(runner, "started", None)
                    if started is not None and self.options.timeout is not None:
                        await started(item)  # the workers' start-up is not the item's running time
                    value = await self._run_timed(item)
            outcome = _Outcome(True, value)
        except asyncio.TimeoutError as exc:
            outcome = _Outcome(False, self._timeout_error(item, exc))
        except Exception as exc:
            outcome = _Outcome(False, exc)
        except BaseException as exc:  # KeyboardInterrupt in an item: the batch must not wait for it forever
            if not _cancelled_by_the_program(exc):
                if not isinstance(exc, asyncio.CancelledError) and not future.done():
                    future.set_result(_Outcome(False, exc))
                raise
            # The program raised CancelledError itself (an inner task it cancelled): that
            # item failed; the batch goes on and must not wait for it forever.
            outcome = _Outcome(False, exc)
        future.set_result(outcome)
        self._finished(outcome)

    async def _run_timed(self, item: Item) -> Any:
        if self.options.timeout is not None:
            return await asyncio.wait_for(self._runner.run(item), self.options.timeout)
        return await self._runner.run(item)

    def _timeout_error(self, item: Item, exc: asyncio.TimeoutError) -> BaseException:
        if isinstance(exc.__cause__, asyncio.CancelledError):  # wait_for's deadline, not the program's own
            return TimeoutError(f"batch item {item.index} ran longer than its timeout of {self.options.timeout:g}s")
        return exc

    def _from_thread(self, future: asyncio.Future, done) -> None:
        """A submitted item is done (called on the pool's thread): settle it on the loop."""
        self._settled.append((future, done))
        if self._wake:
            return
        self._wake = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: the batch is over, nobody waits for this item
            pass

    def _drain(self) -> None:
        self._wake = False  # before popping: an item appended after this schedules the next drain
        settled = self._settled
        while settled:
            self._settle(*settled.popleft())

    def _settle(self, future: asyncio.Future, done) -> None:
        self._pending.discard(done)
        if future.done() or done.cancelled():
            return
        exc = done.exception()
        if isinstance(exc, asyncio.CancelledError) and self.stopping:  # stopped with the batch
            return
        outcome = _Outcome(True, done.result()) if exc is None else _Outcome(False, exc)
        future.set_result(outcome)
        self._finished(outcome)

    # -- the end: whatever way it ended

    async def _end(self, started: float) -> None:
        for submitted in list(self._pending):
            submitted.cancel()  # not started yet: never starts; running: finishes in its thread
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._runner.aclose()
        await self._source.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.io.shutdown, True)  # pending stores land
        self.progress.close()
        self.host.bus.emit(Event(BATCH, latency=time.perf_counter() - started, namespace=self.host.namespace,
                                 extra={"items": self.items, "hits": self.hits,
                                        "misses": self.executed + self.coalesced, "coalesced": self.coalesced,
                                        "executed": self.executed, "errors": self.errors,
                                        "retries": self.policy.retries, "strategy": self.strategy.name}))

    def result(self, outcome: _Outcome) -> Any:
        if outcome.ok:
            return outcome.value
        return outcome.value if self.options.return_exceptions else None


def _cancelled_by_the_program(exc: BaseException) -> bool:
    """A CancelledError the item's program raised itself, not a cancel of the item's task."""
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and not (task is not None and task.cancelling())
