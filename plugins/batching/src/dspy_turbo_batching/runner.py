"""The entry points of a batch: ``turbo.batch``/``batch_iter``/``abatch``/``abatch_iter``.

:class:`BatchRunner` is what ``dspy_turbo_batch_runner(host)`` returns (see ``plugin``): the
core's ``Turbo.batch`` and its siblings call its methods with the same arguments. The
blocking forms run the batch on an event loop of their own, in a thread, so they work from
any code, inside a running event loop too.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from dspy_turbo.plugin.batch import BatchHost, BatchOptions, BatchStrategy

from .batch import Batch, _Outcome
from .workers import WorkerPool

DEFAULT_STRATEGY = "thread"  # with no ``batching`` section in the YAML


class BatchRunner:
    """Runs the batches of one host (a :class:`dspy_turbo.plugin.batch.BatchRunner`)."""

    __slots__ = ("host",)

    def __init__(self, host: BatchHost):
        self.host = host

    def batch(self, program: Any, examples: Iterable[Any], *, strategy: str | None = None, **options: Any) -> list[Any]:
        return batch(self.host, program, examples, strategy=strategy, **options)

    def batch_iter(self, program: Any, examples: Iterable[Any], *, strategy: str | None = None,
                   **options: Any) -> Iterator[Any]:
        return batch_iter(self.host, program, examples, strategy=strategy, **options)

    async def abatch(self, program: Any, examples: Any, *, strategy: str | None = None, **options: Any) -> list[Any]:
        return await abatch(self.host, program, examples, strategy=strategy, **options)

    def abatch_iter(self, program: Any, examples: Any, *, strategy: str | None = None,
                    **options: Any) -> AsyncIterator[Any]:
        return abatch_iter(self.host, program, examples, strategy=strategy, **options)


def _options(host: BatchHost, strategy: str | None, overrides: dict[str, Any]) -> tuple[BatchStrategy, BatchOptions]:
    """The strategy and its options: the YAML ``batching`` section, then per-call overrides."""
    configured, data = host.settings()
    if strategy is None:
        strategy = configured if configured is not None else DEFAULT_STRATEGY
    cls = host.strategy(strategy)
    # The YAML's options carry over to a strategy chosen per call, as far as it has them.
    data = {k: v for k, v in data.items() if k in cls.Options.model_fields}
    data.update({k: v for k, v in overrides.items() if v is not None})
    options = cls.Options.model_validate(data)
    return cls.from_options(options, host.component_host), options


def _total(examples: Any) -> int | None:
    try:
        return len(examples)
    except TypeError:
        return None


async def abatch_iter(host: BatchHost, program: Any, examples: Any, *, strategy: str | None = None,
                      **overrides: Any) -> AsyncIterator[Any]:
    """Results one at a time, in input order, as they are ready (bounded memory)."""
    component, options = _options(host, strategy, overrides)
    batch = Batch(host, program, options, component, _total(examples))
    undo = host.installed()
    try:
        async for ready in batch.chunks(examples):
            for outcome in ready:
                yield batch.result(outcome)
    finally:
        if undo is not None:
            undo()


async def abatch(host: BatchHost, program: Any, examples: Any, *, strategy: str | None = None, **overrides: Any) -> list[Any]:
    return [result async for result in abatch_iter(host, program, examples, strategy=strategy, **overrides)]


_DONE = object()


def _helper_threads(max_concurrency: int) -> int:
    return min(256, max(32, max_concurrency // 2))


def batch_iter(host: BatchHost, program: Any, examples: Iterable[Any], *, strategy: str | None = None,
               **overrides: Any) -> Iterator[Any]:
    """The blocking form of :func:`abatch_iter`: the batch runs on an event loop of its own,
    in a thread, so this works from any code, inside a running event loop too."""
    return _run_blocking(host, program, examples, strategy, overrides, collect=False)


def _run_blocking(host: BatchHost, program: Any, examples: Iterable[Any], strategy: str | None,
                  overrides: dict[str, Any], collect: bool) -> Iterator[Any]:
    """``batch_iter``'s body. ``collect``: the caller wants the whole list (``batch``), so the
    loop hands every result over at once at the end instead of waking the caller's thread
    for each ready list (a thread switch, under the GIL, per few items)."""
    component, options = _options(host, strategy, overrides)
    batch = Batch(host, program, options, component, _total(examples))
    handoff: queue.Queue = queue.Queue(maxsize=1)  # backpressure: one ready list waits for the consumer
    state: dict[str, Any] = {}
    caller = contextvars.copy_context()

    async def produce() -> None:
        loop = asyncio.get_running_loop()
        # DSPy's async path hands cache reads and writes to the loop's default executor
        # (asyncio.to_thread); the stock one has min(32, cpus + 4) threads, too few for a batch.
        # DSPy's small helpers among those run on the loop itself when that is cheaper (``host.runs_inline``).
        loop.set_default_executor(WorkerPool(max_workers=_helper_threads(options.max_concurrency),
                                             thread_name_prefix="dspy-turbo-batch-loop", inline=host.runs_inline))
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

    undo = host.installed()
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


def batch(host: BatchHost, program: Any, examples: Iterable[Any], *, strategy: str | None = None, **overrides: Any) -> list[Any]:
    return list(_run_blocking(host, program, examples, strategy, overrides, collect=True))
