"""``process``: a batch's misses run in worker processes, each with its own Turbo, so a batch uses every core.

Under the GIL one process runs DSPy's formatting and parsing on one core; at concurrency
128 and above that is what bounds a batch. This strategy spreads the items that must run
over ``processes`` worker processes (default: one per core), each running its share on
threads. Everything else stays in this process (the batch machinery: reading the input a
window at a time, the bulk item-cache lookup, so hits never leave it, de-duplication,
order, per-item errors, timeouts, ``max_errors``, progress, the ``batch`` event), and at most
``max_concurrency`` items are out in the workers at once.

- Each worker builds its own Turbo from this Turbo's configuration
  (``dspy_turbo.plugin.worker_config``: the same tiers, namespace, keys, signing key;
  no metric sinks, no ``batching``) and installs it as ``dspy.cache``: a memory tier per
  process, file and Redis tiers shared, and with a Redis tier the shared single-flight and
  rate-limit buckets. Without a shared coordinator each worker gets ``1/processes`` of the
  rate limit.
- An item goes to the process its inputs hash to, so identical inputs meet in one
  process's single-flight and memory tier, in this batch and the next.
- Items and results cross as JSON bytes (``dspy_turbo.plugin.wire``), never a pickle of
  cache data. The program and DSPy's settings (as the batch sees them, ``dspy.context``
  included: the LM, the adapter, callbacks, ``disable_history``...) go once per batch and
  process as cloudpickle bytes, the way
  DSPy saves a whole program (``save_program=True``); a program that cannot be pickled
  fails the batch's items with an error that says so, before any process starts.
- The processes (``processes``) are the Turbo's: started by its first batch with a miss,
  reused by the next, stopped when a batch ends with items still running in them and at
  ``turbo.close()`` (see ``processes``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import uuid
import zlib
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from dspy_turbo.plugin import BatchOptions, BatchStrategy, Duration, Item, Runner, wire, worker_config
from dspy_turbo.plugin.values import EncodeError

from . import policy as policies
from . import processes

PEER = "a worker process"
# DSPy's settings an item runs with in the worker, as the batch sees them: what decides
# its answer and what DSPy does around each call; not the per-call state DSPy keeps there
# (trace, usage tracker, stream, caller).
SETTINGS = ("lm", "adapter", "rm", "callbacks", "disable_history", "track_usage", "max_history_size",
            "max_trace_size", "warn_on_type_mismatch", "provide_traceback", "allow_tool_async_sync_conversion")
_WORKER_DEFAULT = {"cache": {"tiers": [{"type": "memory"}]}}  # no Turbo (a runner driven on its own)


class ProcessOptions(BatchOptions):
    """``batching:`` options of the ``process`` strategy (besides every strategy's)."""

    processes: int | None = Field(default=None, ge=1, le=1024)
    """Worker processes; ``max_concurrency`` items are spread over them. Unset: one per CPU
    (``os.cpu_count()``)."""
    start_method: Literal["forkserver", "spawn"] | None = None
    """How ``multiprocessing`` starts the workers. Unset: ``forkserver`` where the platform has
    it (Linux, macOS: DSPy is imported once, each worker then starts in milliseconds), else ``spawn``."""
    start_timeout: Duration = Field(default=120.0, gt=0)
    """How long the workers may take to start (import DSPy, build their Turbo) and to load a batch's program."""


@dataclass(frozen=True)
class _Settings:
    processes: int
    start_method: str
    start_timeout: float


def _settings(options: ProcessOptions) -> _Settings:
    method = options.start_method
    if method is None:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return _Settings(options.processes or os.cpu_count() or 1, method, float(options.start_timeout))


class ProcessRunner(Runner):
    bounded = True  # at most max_concurrency items are out in the workers; the rest wait here, in order

    def __init__(self, strategy: ProcessStrategy, max_concurrency: int):
        self.strategy = strategy
        self.max_concurrency = max_concurrency
        self.batch = uuid.uuid4().hex
        self.lock = threading.Lock()
        self.queue: deque[tuple[Future, Any, bytes]] = deque()
        self.running = 0  # sent to a worker, not answered
        self.state = "new"  # -> starting -> ready | failed; closed
        self.error: BaseException | None = None
        self.pool: processes.Pool | None = None
        self.starter: threading.Thread | None = None
        self.ready: Future = Future()  # done when the workers have the program (or failed to get it)

    # -- items

    def submit(self, item: Item) -> Future:
        future: Future = Future()
        try:
            payload = wire.encode_inputs(item.inputs, PEER)
        except EncodeError as exc:
            future.set_exception(exc)
            return future
        with self.lock:
            if self.state == "failed":
                future.set_exception(self.error)
                return future
            self.queue.append((future, item, payload))
            start = self._starting()
        if start:
            self._begin(item)
        else:
            self._pump()
        return future

    async def started(self, item: Item) -> None:
        """Wait until the workers run this batch's program (the batch calls this before it times an item)."""
        with self.lock:
            start = self._starting()
        if start:
            self._begin(item)
        await asyncio.shield(asyncio.wrap_future(self.ready))

    def _starting(self) -> bool:
        """Under the lock: whether the caller is the one to start the workers."""
        if self.state == "new":
            self.state = "starting"
            return True
        return False

    async def run(self, item: Item) -> Any:
        # wrap_future: cancelling the await cancels an item still waiting here; one in a worker finishes there
        return await asyncio.wrap_future(self.submit(item))

    def _pump(self) -> None:
        """Send waiting items while fewer than ``max_concurrency`` are out."""
        sending = []
        with self.lock:
            if self.state != "ready":
                return
            while self.queue and self.running < self.max_concurrency:
                future, item, payload = self.queue.popleft()
                if future.set_running_or_notify_cancel():  # False: cancelled while it waited here
                    self.running += 1
                    sending.append((future, item, payload))
        pool = self.pool
        for future, item, payload in sending:
            try:
                pool.send_item(self.batch, zlib.crc32(payload), payload, self._settler(future, item))
            except processes.WorkerGone as exc:
                with self.lock:
                    self.running -= 1
                future.set_exception(exc)

    def _settler(self, future: Future, item: Any):
        def settle(body: bytes | BaseException) -> None:  # on the reader thread of the worker that ran it
            with self.lock:
                self.running -= 1
            if isinstance(body, BaseException):
                future.set_exception(body)
            else:
                try:
                    value, usage, cost = wire.decode_result(body, PEER)
                except Exception as exc:
                    future.set_exception(exc)
                else:
                    keep = getattr(item, "keep", None)  # into the item cache, as item.call() does for its result
                    if keep is not None:
                        keep(value, usage=usage, cost=cost)
                    future.set_result(value)
            self._pump()
        return settle

    # -- starting: the pool, then this batch's program in it

    def _begin(self, item: Item) -> None:
        import dspy

        # The program and DSPy's settings as the batch sees them (dspy.context included)
        current = dspy.settings.copy()
        shipped = (item.program, {name: current[name] for name in SETTINGS if name in current})
        self.starter = threading.Thread(target=self._start, args=(shipped,), name="dspy-turbo-batch-process-start",
                                        daemon=True)
        self.starter.start()

    def _start(self, shipped: tuple[Any, dict[str, Any]]) -> None:
        import cloudpickle

        options = self.strategy.options
        settings = _settings(options)
        try:
            try:
                program = cloudpickle.dumps(shipped)
            except Exception as exc:
                what = "the program"
                try:
                    cloudpickle.dumps(shipped[0])
                except Exception:
                    pass
                else:
                    what = "DSPy's settings (dspy.configure/dspy.context: the LM, adapter, callbacks)"
                raise TypeError(f"{what} cannot be sent to the worker processes ({type(exc).__name__}: {exc}); "
                                "use the 'thread' strategy, or a program without locks, open files or "
                                "connections among its attributes") from None
            turbo = self.strategy.turbo
            config = worker_config.encode(worker_config.driver_document(turbo) if turbo is not None else _WORKER_DEFAULT)
            pool = processes.pool_for(turbo, settings, config)
            pool.start()
            pool.load(self.batch, self.max_concurrency, policies.worker_document(options), program,
                      settings.start_timeout)
        except BaseException as exc:
            with self.lock:
                self.state, self.error = "failed", exc
                waiting, self.queue = list(self.queue), deque()
            for future, _, _ in waiting:
                if future.set_running_or_notify_cancel():
                    future.set_exception(exc)
            self.ready.set_exception(exc)
            return
        with self.lock:
            self.pool = pool
            if self.state == "starting":
                self.state = "ready"
        self.ready.set_result(None)
        self._pump()

    # -- the end

    async def aclose(self) -> None:
        with self.lock:
            self.state = "closed"
            waiting, self.queue = list(self.queue), deque()
            running = self.running
        for future, _, _ in waiting:
            future.cancel()
        starter = self.starter
        loop = asyncio.get_running_loop()
        if starter is not None and starter.is_alive():
            await loop.run_in_executor(None, starter.join)
        pool = self.pool
        if pool is None or pool.dead:
            return
        if running or self.running:  # items of this batch still run: they stop with their processes
            await loop.run_in_executor(None, pool.kill)
        elif self.strategy.turbo is None:  # no Turbo to outlive the batch with
            await loop.run_in_executor(None, pool.close)
        else:
            pool.unload(self.batch)


class ProcessStrategy(BatchStrategy):
    name = "process"
    Options = ProcessOptions

    def __init__(self, options: ProcessOptions | None = None, turbo: Any = None):
        super().__init__(options)
        self.turbo = turbo

    @classmethod
    def from_options(cls, options: ProcessOptions, turbo: Any = None) -> ProcessStrategy:
        return cls(options, turbo)

    def runner(self, max_concurrency: int) -> Runner:
        return ProcessRunner(self, max_concurrency)
