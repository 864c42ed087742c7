"""Batch runs of a DSPy program: ``turbo.batch(program, examples)`` and ``await turbo.abatch(...)``.

**Cache-first, and what that means.** A multi-step program's later LM requests depend on
its earlier answers, so they cannot be known, let alone looked up, before it runs. The
batch therefore caches at two levels:

1. *Per LM request*, always: every item runs the program, whose every LM call goes
   through the Turbo (hits return at once, concurrent identical requests make one call).
   This level is always current: an item returns what the program returns now.
2. *Per item*: each item's completed result stored under a program-level key (the
   program's identity and the item's inputs, see :mod:`dspy_turbo.programs`). Before
   anything runs, a window of items is looked up in bulk (``TieredCache.get_many``: one
   ``get_many`` per tier, an ``MGET`` on Redis); hits are returned at once, only misses
   run. Python code cannot be keyed by everything that changes its result, so by default
   (``item_cache`` unset) this level serves only programs made entirely of DSPy's own
   code (``programs.library_program``: ``Predict``/``ChainOfThought`` with DSPy's LM and
   adapters), where it gives exactly what the LM-level cache would, without formatting
   and parsing each item again. ``item_cache=True`` turns it on for any program, at the
   risk described in :mod:`dspy_turbo.programs` (an edit the key cannot see serves the
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
:meth:`BatchStrategy.runner` returning a :class:`Runner` (see their docstrings). The
``dspy-turbo-batching`` distribution provides ``thread`` and ``async``.

Each real LM call an item makes goes through the batch's rate limit and retry policy
(:mod:`dspy_turbo.callpolicy`).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from . import callpolicy, codec
from ._moved import moved
from .callpolicy import CallPolicy
from .entry import Entry
from .events import Event
from .plugin.batch import BatchOptions, BatchStrategy, Runner  # noqa: F401 (Runner: its old path)
from .programs import item_inputs, library_program, program_identity
from .progress import Progress
from .ratelimit import RateLimiter
from .retry import RetryPolicy
from .workers import WorkerPool

if TYPE_CHECKING:
    from .turbo import Turbo

BATCH = "batch"  # the event kind one finished batch emits


def item_key(turbo: Turbo, program: Any, inputs: dict[str, Any], prefix: str | None = None) -> str | None:
    """The program-level key of one item (``None`` when the program or inputs cannot be keyed)."""
    try:
        if prefix is None:
            prefix = program_key(turbo, program)
        return turbo.key({"_fn_identifier": "dspy_turbo.batch_item", "program": prefix, "inputs": inputs})
    except Exception:  # unkeyable: run without the item cache; LM requests are still cached
        return None


def uses_item_cache(setting: bool | None, program: Any) -> bool:
    """Whether a program's completed results are cached (``item_cache``: see BatchOptions)."""
    return setting if setting is not None else library_program(program) is None


def program_key(turbo: Turbo, program: Any) -> str:
    return turbo.key({"_fn_identifier": "dspy_turbo.program", "program": program_identity(program)})


class BatchError(RuntimeError):
    """A batch stopped because ``max_errors`` items failed; the first failure is ``__cause__``."""

    def __init__(self, errors: int, done: int, first: BaseException):
        super().__init__(f"batch stopped after {errors} failed items ({done} finished); "
                         f"first failure: {type(first).__name__}: {str(first)[:200]}")
        self.errors = errors
        self.done = done


class Item:
    """One example to run: ``program(**inputs)``.

    ``call()`` runs it on the calling thread (for thread-based strategies), ``acall()``
    on the running event loop (``program.acall``). Both run inside the batch's context
    (DSPy settings such as ``dspy.context(lm=...)``, the rate limit and retry policy) and
    store the completed result in the item cache, so a strategy only has to call one.
    """

    __slots__ = ("index", "key", "inputs", "_batch")

    def __init__(self, index: int, key: str | None, inputs: dict[str, Any], batch: _Batch):
        self.index = index
        self.key = key
        self.inputs = inputs
        self._batch = batch

    @property
    def program(self) -> Any:
        return self._batch.program

    def call(self) -> Any:
        return self._batch.context.copy().run(self._call)

    def _call(self) -> Any:
        if self._batch.stopping:  # max_errors was reached while this item waited for a thread
            raise asyncio.CancelledError()
        spent = callpolicy.tracking_spent()
        value = self._batch.program(**self.inputs)
        self._batch.keep_later(self, value, spent)
        return value

    async def acall(self) -> Any:
        program = self._batch.program
        spent = callpolicy.tracking_spent()  # this task's own context
        acall = getattr(program, "acall", None)
        if acall is not None:
            value = await acall(**self.inputs)
        elif inspect.iscoroutinefunction(program):
            value = await program(**self.inputs)
        else:
            raise TypeError(f"{type(program).__name__} has no acall(); use the 'thread' batch strategy")
        if self.key is not None and self._batch.item_cache:
            self._batch.keep_later(self, value, spent)
        return value

    def keep(self, value: Any, usage: dict[str, int] | None = None, cost: float | None = None) -> None:
        """Store a result this item got elsewhere in the item cache, as ``call``/``acall`` do
        for theirs: for a strategy that runs the program in another process or host.
        ``usage`` and ``cost`` are what its LM calls spent (what a later hit saves)."""
        if self.key is None or not self._batch.item_cache:
            return
        spent = callpolicy.Spent()
        if usage or cost is not None:
            spent.add(usage or {}, cost)
        self._batch.keep_later(self, value, spent)


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
        return codec.copy_any(value)
    except Exception:
        return value


class _Batch:
    def __init__(self, turbo: Turbo, program: Any, options: BatchOptions, strategy: BatchStrategy, total: int | None):
        import dspy

        self.turbo = turbo
        self.program = program
        self.options = options
        self.strategy = strategy
        self.window = options.window or max(4 * options.max_concurrency, 256)
        self.chunk = max(1, min(self.window // 4, 1024))
        if options.max_errors is not None:
            self.max_errors = options.max_errors
        else:
            self.max_errors = None if options.return_exceptions else (dspy.settings.max_errors or None)
        limiter = RateLimiter(options.rate_limit, turbo.coordinator) if options.rate_limit else None
        self.policy = CallPolicy(turbo, limiter, RetryPolicy(options.retry))
        self.prefix = None
        if uses_item_cache(options.item_cache, program):
            try:
                self.prefix = program_key(turbo, program)
            except Exception:  # an identity we cannot key: no item cache, LM requests are still cached
                self.prefix = None
        self.item_cache = self.prefix is not None
        with self.policy.active():
            self.context = contextvars.copy_context()
        self.io = WorkerPool(max_workers=2, thread_name_prefix="dspy-turbo-batch-io")
        # Every tier in this process's memory and no store hook that may do I/O: item lookups
        # and stores take microseconds, less than handing them to the I/O threads.
        self.inline_io = turbo.cache.in_process and not turbo._has_store_hooks
        self.progress = Progress(options.progress, total)
        self.items = self.hits = self.coalesced = self.errors = self.executed = self.finished = 0
        self.first_error: BaseException | None = None
        self.stopping = False

    def key(self, inputs: dict[str, Any]) -> str | None:
        return None if self.prefix is None else item_key(self.turbo, self.program, inputs, self.prefix)

    def keep_later(self, item: Item, value: Any, spent: callpolicy.Spent) -> None:
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

    def keep(self, item: Item, value: Any, spent: callpolicy.Spent | None = None) -> None:
        if item.key is not None and self.item_cache and value is not None:
            self.turbo.store(item.key, value, usage=spent.usage() if spent else None, cost=spent.cost if spent else None,
                             level="item")

    def lookup(self, keys: list[str]) -> dict[str, tuple[Any, Entry]]:
        """The cached items among ``keys``: their values (own copies) and entries (none inside
        a scope that reads nothing: ``bypass()``, ``refresh()``, record mode)."""
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

    async def chunks(self, examples: Iterable[Any] | Any) -> AsyncIterator[list[_Outcome]]:
        """Outcomes in input order, in lists of those ready together."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        runner = self.strategy.runner(self.options.max_concurrency)
        source = _Source(examples)
        slots: deque[tuple[Any, bool]] = deque()  # (an _Outcome or a future of one, is a duplicate)
        inflight: dict[str, asyncio.Future] = {}
        leaders: dict[int, str] = {}
        tasks: set[asyncio.Task] = set()
        abort: asyncio.Future = loop.create_future()
        slots_free = asyncio.Semaphore(self.options.max_concurrency)
        index = 0

        def finished(outcome: _Outcome) -> None:
            self.progress.update(errors=0 if outcome.ok else 1)
            self.finished += 1
            if not outcome.ok and not abort.done():
                self.errors += 1
                if self.first_error is None:
                    self.first_error = outcome.value
                if self.max_errors is not None and self.errors >= self.max_errors and not abort.done():
                    self.stopping = True
                    abort.set_result(None)

        async def execute(item: Item, future: asyncio.Future) -> None:
            callpolicy._POLICY.set(self.policy)  # this task's own context: LM calls see the batch's policy
            try:
                if runner.bounded and self.options.timeout is None:
                    value = await runner.run(item)
                else:
                    async with slots_free:
                        if abort.done():  # the batch is stopping: start nothing new
                            return
                        if self.options.timeout is not None:
                            value = await asyncio.wait_for(runner.run(item), self.options.timeout)
                        else:
                            value = await runner.run(item)
                outcome = _Outcome(True, value)
            except asyncio.TimeoutError as exc:
                if isinstance(exc.__cause__, asyncio.CancelledError):  # wait_for's deadline, not the program's own
                    exc = TimeoutError(f"batch item {item.index} ran longer than its timeout of {self.options.timeout:g}s")
                outcome = _Outcome(False, exc)
            except Exception as exc:
                outcome = _Outcome(False, exc)
            except BaseException as exc:  # KeyboardInterrupt in an item: the batch must not wait for it forever
                task = asyncio.current_task()
                if isinstance(exc, asyncio.CancelledError) and not (task is not None and task.cancelling()):
                    # The program raised CancelledError itself (an inner task it cancelled): that
                    # item failed; the batch goes on and must not wait for it forever.
                    outcome = _Outcome(False, exc)
                else:
                    if not isinstance(exc, asyncio.CancelledError) and not future.done():
                        future.set_result(_Outcome(False, exc))
                    raise
            future.set_result(outcome)
            finished(outcome)

        # A bounded runner with submit(): no coroutine per item, one callback into the loop when it is done.
        submit = getattr(runner, "submit", None) if runner.bounded and self.options.timeout is None else None
        pending: set = set()

        def settle(future: asyncio.Future, done) -> None:
            pending.discard(done)
            if future.done() or done.cancelled():
                return
            exc = done.exception()
            if isinstance(exc, asyncio.CancelledError) and self.stopping:  # stopped with the batch
                return
            outcome = _Outcome(True, done.result()) if exc is None else _Outcome(False, exc)
            future.set_result(outcome)
            finished(outcome)

        # Items finished by the pool's threads wait here for the loop. One wake-up of the loop
        # settles all those finished meanwhile: a wake-up is a thread switch under the GIL.
        settled: deque[tuple[asyncio.Future, Any]] = deque()
        wake = [False]  # a drain is scheduled and has not started yet

        def drain() -> None:
            wake[0] = False  # before popping: an item appended after this schedules the next drain
            while settled:
                settle(*settled.popleft())

        def _from_thread(future: asyncio.Future, done) -> None:
            settled.append((future, done))
            if wake[0]:
                return
            wake[0] = True
            try:
                loop.call_soon_threadsafe(drain)
            except RuntimeError:  # the loop is closed: the batch is over, nobody waits for this item
                pass

        async def admit(examples_chunk: list[Any]) -> None:
            nonlocal index
            prepared = []
            for example in examples_chunk:
                try:
                    inputs = item_inputs(example)
                except TypeError as exc:
                    prepared.append((index, None, TypeError(f"batch item {index}: {exc}")))
                else:
                    prepared.append((index, self.key(inputs), inputs))
                index += 1
            self.items += len(prepared)
            keys = [k for _, k, inputs in prepared if k is not None and k not in inflight]
            if not keys:
                found = {}
            elif self.inline_io:
                found = self.lookup(keys)
            else:
                found = await loop.run_in_executor(self.io, self.lookup, keys)
            handed: set[str] = set()
            for i, key, inputs in prepared:
                if isinstance(inputs, BaseException):
                    outcome = _Outcome(False, inputs)
                    slots.append((outcome, False))
                    finished(outcome)
                elif key is not None and key in found:
                    self.hits += 1
                    value, entry = found[key]
                    if key in handed:  # the same key twice in this chunk: each gets its own copy
                        value = _own_copy(value)
                        # the bulk lookup counted the key once; this copy saved the same call
                        self.turbo.report_coalesced(key, entry.model, entry.usage, entry.cost, lookup=False)
                    handed.add(key)
                    slots.append((_Outcome(True, value), False))
                    self.progress.update(hits=1)
                elif key is not None and key in inflight:
                    self.coalesced += 1
                    self.turbo.report_coalesced(key, lookup=False)  # every request counts once in turbo.stats()
                    slots.append((inflight[key], True))
                else:
                    future = loop.create_future()
                    if key is not None:
                        inflight[key] = future
                        leaders[i] = key
                    self.executed += 1
                    if submit is not None:
                        submitted = submit(Item(i, key, inputs, self))
                        pending.add(submitted)
                        submitted.add_done_callback(partial(_from_thread, future))
                    else:
                        task = loop.create_task(execute(Item(i, key, inputs, self), future))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    slots.append((future, False))

        try:
            position = 0
            while True:
                while not source.exhausted and len(slots) <= self.window - self.chunk:
                    got = await source.take(self.chunk)
                    if got:
                        await admit(got)
                if not slots:
                    break
                head, _ = slots[0]
                if isinstance(head, asyncio.Future) and not head.done():
                    await asyncio.wait([head, abort], return_when=asyncio.FIRST_COMPLETED)
                if abort.done():
                    raise BatchError(self.errors, self.finished + self.hits, self.first_error) from self.first_error
                ready: list[_Outcome] = []
                while slots and (not isinstance(slots[0][0], asyncio.Future) or slots[0][0].done()):
                    slot, duplicate = slots.popleft()
                    outcome = slot.result() if isinstance(slot, asyncio.Future) else slot
                    if duplicate:
                        outcome = _Outcome(outcome.ok, _own_copy(outcome.value) if outcome.ok else outcome.value, True)
                        self.progress.update(errors=0 if outcome.ok else 1)
                    key = leaders.pop(position, None)
                    if key is not None:
                        inflight.pop(key, None)
                    position += 1
                    ready.append(outcome)
                yield ready
        finally:
            for submitted in list(pending):
                submitted.cancel()  # not started yet: never starts; running: finishes in its thread
            for task in list(tasks):
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await runner.aclose()
            await source.aclose()
            await asyncio.get_running_loop().run_in_executor(None, self.io.shutdown, True)  # pending stores land
            self.progress.close()
            self.turbo.bus.emit(Event(BATCH, latency=time.perf_counter() - started, namespace=self.turbo.namespace,
                                      extra={"items": self.items, "hits": self.hits,
                                             "misses": self.executed + self.coalesced, "coalesced": self.coalesced,
                                             "executed": self.executed, "errors": self.errors,
                                             "retries": self.policy.retries, "strategy": self.strategy.name}))

    def result(self, outcome: _Outcome) -> Any:
        if outcome.ok:
            return outcome.value
        return outcome.value if self.options.return_exceptions else None


class _Source:
    """Reads a sync or async iterable a chunk at a time, never all at once."""

    def __init__(self, examples: Any):
        self.exhausted = False
        if hasattr(examples, "__aiter__"):
            self._aiter = examples.__aiter__()
            self._iter = None
        else:
            self._iter: Iterator | None = iter(examples)
            self._aiter = None

    async def take(self, n: int) -> list[Any]:
        out: list[Any] = []
        if self._iter is not None:
            for example in self._iter:
                out.append(example)
                if len(out) >= n:
                    return out
            self.exhausted = True
            return out
        while len(out) < n:
            try:
                out.append(await self._aiter.__anext__())
            except StopAsyncIteration:
                self.exhausted = True
                break
        return out

    async def aclose(self) -> None:
        if self._aiter is not None and hasattr(self._aiter, "aclose"):
            try:
                await self._aiter.aclose()
            except Exception:
                pass


# -- the entry points Turbo exposes ------------------------------------------------------------


def _options(turbo: Turbo, strategy: str | None, overrides: dict[str, Any]) -> tuple[BatchStrategy, BatchOptions]:
    """The strategy and its options: the YAML ``batching`` section, then per-call overrides."""
    spec = turbo.config.batching
    if strategy is None:
        strategy = spec.cls.name if spec is not None else "thread"
    cls = turbo.registry.get("batch_strategy", strategy)
    if cls is None:
        from .plugins import KNOWN_PROVIDERS

        available = ", ".join(turbo.registry.names("batch_strategy")) or "none installed"
        package = KNOWN_PROVIDERS.get(("batch_strategy", strategy))
        hint = f"; it is provided by {package}: pip install {package}" if package else ""
        raise ValueError(f"unknown batch strategy {strategy!r}{hint} (available: {available})")
    # The YAML's options carry over to a strategy chosen per call, as far as it has them.
    data = spec.options.model_dump(exclude_unset=True) if spec is not None else {}
    data = {k: v for k, v in data.items() if k in cls.Options.model_fields}
    data.update({k: v for k, v in overrides.items() if v is not None})
    options = cls.Options.model_validate(data)
    return cls.from_options(options, turbo), options


def _total(examples: Any) -> int | None:
    try:
        return len(examples)
    except TypeError:
        return None


_installed_by_batches: dict[int, int] = {}
_install_lock = threading.Lock()


def _ensure_installed(turbo: Turbo):
    """LM requests go through a Turbo only when one is installed: with none installed, this
    one is, for as long as any of its batches runs. Returns the undo, or None."""
    from .dspy_integration import active

    with _install_lock:
        current = active()
        if current is None:
            turbo.install()
            _installed_by_batches[id(turbo)] = 1
        elif current is turbo and id(turbo) in _installed_by_batches:
            _installed_by_batches[id(turbo)] += 1
        else:
            return None

    def undo() -> None:
        with _install_lock:
            left = _installed_by_batches.get(id(turbo), 1) - 1
            if left > 0:
                _installed_by_batches[id(turbo)] = left
                return
            _installed_by_batches.pop(id(turbo), None)
            turbo.uninstall()

    return undo


async def abatch_iter(turbo: Turbo, program: Any, examples: Any, *, strategy: str | None = None,
                      **overrides: Any) -> AsyncIterator[Any]:
    """Results one at a time, in input order, as they are ready (bounded memory)."""
    component, options = _options(turbo, strategy, overrides)
    batch = _Batch(turbo, program, options, component, _total(examples))
    undo = _ensure_installed(turbo)
    try:
        async for ready in batch.chunks(examples):
            for outcome in ready:
                yield batch.result(outcome)
    finally:
        if undo is not None:
            undo()


async def abatch(turbo: Turbo, program: Any, examples: Any, *, strategy: str | None = None, **overrides: Any) -> list[Any]:
    return [result async for result in abatch_iter(turbo, program, examples, strategy=strategy, **overrides)]


_DONE = object()


def _helper_threads(max_concurrency: int) -> int:
    return min(256, max(32, max_concurrency // 2))


def batch_iter(turbo: Turbo, program: Any, examples: Iterable[Any], *, strategy: str | None = None,
               **overrides: Any) -> Iterator[Any]:
    """The blocking form of :func:`abatch_iter`: the batch runs on an event loop of its own,
    in a thread, so this works from any code, inside a running event loop too."""
    return _run_blocking(turbo, program, examples, strategy, overrides, collect=False)


def _run_blocking(turbo: Turbo, program: Any, examples: Iterable[Any], strategy: str | None,
                  overrides: dict[str, Any], collect: bool) -> Iterator[Any]:
    """``batch_iter``'s body. ``collect``: the caller wants the whole list (``batch``), so the
    loop hands every result over at once at the end instead of waking the caller's thread
    for each ready list (a thread switch, under the GIL, per few items)."""
    component, options = _options(turbo, strategy, overrides)
    batch = _Batch(turbo, program, options, component, _total(examples))
    handoff: queue.Queue = queue.Queue(maxsize=1)  # backpressure: one ready list waits for the consumer
    state: dict[str, Any] = {}
    caller = contextvars.copy_context()

    async def produce() -> None:
        from .dspy_integration import runs_inline

        loop = asyncio.get_running_loop()
        # DSPy's async path hands cache reads and writes to the loop's default executor
        # (asyncio.to_thread); the stock one has min(32, cpus + 4) threads, too few for a batch.
        # DSPy's small helpers among those run on the loop itself when that is cheaper (runs_inline).
        loop.set_default_executor(WorkerPool(max_workers=_helper_threads(options.max_concurrency),
                                             thread_name_prefix="dspy-turbo-batch-loop", inline=runs_inline))
        state["loop"], state["task"] = loop, asyncio.current_task()
        try:
            collected: list[_Outcome] = []
            async for ready in batch.chunks(examples):
                if collect:
                    collected.extend(ready)
                    continue
                try:
                    handoff.put_nowait(ready)  # the consumer keeps up: no thread hand-off for the put
                except queue.Full:
                    await loop.run_in_executor(batch.io, handoff.put, ready)
            if collected:
                handoff.put(collected)
            handoff.put(_DONE)  # the batch is over: blocking this loop can hold nothing up
        except BaseException as exc:
            state["error"] = exc
            handoff.put(_DONE)
            if not isinstance(exc, Exception):
                raise

    def run() -> None:
        try:
            caller.run(asyncio.run, produce())
        except BaseException as exc:  # the loop ended abnormally; the consumer must still wake up
            state.setdefault("error", exc)
            handoff.put(_DONE)

    undo = _ensure_installed(turbo)
    thread = threading.Thread(target=run, name="dspy-turbo-batch", daemon=True)
    thread.start()
    drained = False  # the producer said it is done: it only has its loop to close, nothing to cancel
    try:
        while True:
            ready = handoff.get()
            if ready is _DONE:
                drained = True
                break
            for outcome in ready:
                yield batch.result(outcome)
        error = state.get("error")
        if error is not None and not isinstance(error, asyncio.CancelledError):
            raise error
    finally:
        if not drained and thread.is_alive():  # the consumer stopped early: cancel the rest of the batch
            loop, task = state.get("loop"), state.get("task")
            if loop is not None and task is not None:
                loop.call_soon_threadsafe(task.cancel)
            while thread.is_alive():
                try:
                    handoff.get(timeout=0.05)
                except queue.Empty:
                    pass
        thread.join()
        if undo is not None:
            undo()


def batch(turbo: Turbo, program: Any, examples: Iterable[Any], *, strategy: str | None = None, **overrides: Any) -> list[Any]:
    return list(_run_blocking(turbo, program, examples, strategy, overrides, collect=True))


moved(__name__, {name: "dspy_turbo.plugin.batch" for name in ("BatchOptions", "BatchStrategy", "Runner")})
