"""The worker processes of each Turbo: started by its first ``process`` batch, reused by the next.

Starting a worker costs a process that imports DSPy and builds a Turbo, so a pool outlives
its batch: the next batch of the same Turbo with the same settings loads its program into
the same processes. A pool is stopped when a batch ends with items still running in it
(cancelled, a timeout, stopped by ``max_errors``, a consumer that stopped reading: nothing
of it may run on), when one of its processes died, and at ``turbo.close()`` (the
``dspy_turbo_shutdown`` hook). Its processes are daemons (``multiprocessing`` ends them
when the parent exits) and end by themselves when their pipe closes (the parent was killed).

One thread per process reads its replies and hands each item's to the callback waiting for
it; sends take the process's lock (one pipe, many senders).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from . import processworker
from .processworker import header, split

logger = logging.getLogger("dspy_turbo.batching")

_lock = threading.Lock()
_pools: dict[int, dict[bytes, Pool]] = {}  # id(turbo) -> pool key -> pool


class WorkerGone(RuntimeError):
    """A worker process exited while an item of the batch was in it."""


class Process:
    """One worker process, its pipe and the thread reading its replies."""

    def __init__(self, pool: Pool, context: Any, index: int, config: bytes, processes: int):
        self.pool = pool
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(target=processworker.main, args=(child, config, processes), daemon=True,
                                       name=f"dspy-turbo-batch-worker-{index}")
        self.process.start()
        child.close()
        self.send_lock = threading.Lock()
        self.replies: queue.SimpleQueue = queue.SimpleQueue()  # control replies (ready, loaded), not items'
        self.pid: int | None = None
        self.reader = threading.Thread(target=self._read, name=f"dspy-turbo-batch-worker-{index}-reader", daemon=True)
        self.reader.start()

    def send(self, message: bytes) -> None:
        with self.send_lock:
            self.conn.send_bytes(message)

    def _read(self) -> None:
        try:
            while True:
                head, body = split(self.conn.recv_bytes())
                if head[0] == "r":
                    self.pool.settle(head[1], body)
                else:
                    self.replies.put(head)
        except (EOFError, OSError, ValueError):  # the process exited, or the pool closed the pipe
            pass
        except Exception:  # a reply that is not ours: the process is not trusted any more
            logger.exception("a batch worker process sent a malformed reply")
        self.replies.put(None)
        self.pool.lost(self)

    def reply(self, deadline: float) -> list[Any]:
        try:
            head = self.replies.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("a batch worker process did not answer in time") from None
        if head is None:
            code = self.process.exitcode
            raise WorkerGone(f"a batch worker process exited{f' with code {code}' if code is not None else ''}")
        return head


class Pool:
    def __init__(self, turbo_id: int, key: bytes, settings: Any, config: bytes):
        self.turbo_id = turbo_id
        self.key = key
        self.settings = settings
        self.dead = False
        self.error: BaseException | None = None
        self.ids = itertools.count()
        self.waiting: dict[int, Callable[[bytes | BaseException], None]] = {}  # item id -> its callback
        self.ready = threading.Event()
        self._start_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._started = False
        self._config = config
        self.processes: list[Process] = []

    # -- starting

    def start(self) -> None:
        """Start the processes and wait until each has built its Turbo (idempotent, blocking)."""
        with self._start_lock:
            if self._started:
                if self.error is not None:
                    raise self.error
                return
            self._started = True
            try:
                self._start()
            except BaseException as exc:
                self.error = exc
                self.kill()
                raise
            finally:
                self.ready.set()

    def _start(self) -> None:
        settings = self.settings
        context = multiprocessing.get_context(settings.start_method)
        if settings.start_method == "forkserver":
            # The forkserver imports DSPy once; each worker forked from it starts in milliseconds.
            # (Ignored when this process's forkserver runs already.)
            context.set_forkserver_preload(["dspy_turbo_batching.processpreload"])
        self.processes = [Process(self, context, i, self._config, settings.processes) for i in range(settings.processes)]
        deadline = time.monotonic() + settings.start_timeout
        for process in self.processes:
            try:
                head = process.reply(deadline)
            except TimeoutError:
                raise TimeoutError(f"the batch worker processes did not start within {settings.start_timeout:g}s") from None
            if head[0] != "ready" or head[1] is None:
                raise RuntimeError(f"a batch worker process failed to start: {head[2] if len(head) > 2 else head}")
            process.pid = head[1]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    # -- one batch's program

    def load(self, batch: str, threads: int, policy: dict[str, Any], program: bytes, timeout: float) -> None:
        with self._load_lock:  # one load at a time: concurrent batches must not take each other's replies
            self._load(batch, threads, policy, program, timeout)

    def _load(self, batch: str, threads: int, policy: dict[str, Any], program: bytes, timeout: float) -> None:
        message = header("load", batch, threads, policy) + program
        for process in self.processes:
            process.send(message)
        deadline = time.monotonic() + timeout
        errors = []
        for process in self.processes:
            head = process.reply(deadline)
            if head[0] != "loaded" or head[1] != batch:
                raise RuntimeError(f"a batch worker process answered {head[0]!r} to a load")
            if head[2] is not None:
                errors.append(head[2])
        if errors:
            raise RuntimeError(errors[0] + ". Use the 'thread' strategy, or a program the worker processes can "
                               "import (a module on their sys.path, not a name defined only in this process)")

    def unload(self, batch: str) -> None:
        message = header("unload", batch)
        for process in self.processes:
            try:
                process.send(message)
            except (OSError, ValueError):
                pass

    # -- items

    def send_item(self, batch: str, route: int, payload: bytes, callback: Callable[[bytes | BaseException], None]) -> int:
        """Send one item to the process ``route`` picks; ``callback`` gets its reply (or the error that lost it)."""
        ident = next(self.ids)
        self.waiting[ident] = callback
        process = self.processes[route % len(self.processes)]
        try:
            process.send(header("run", batch, ident) + payload)
        except (OSError, ValueError) as exc:
            self.waiting.pop(ident, None)
            raise WorkerGone(f"a batch worker process is gone: {exc}") from None
        return ident

    def settle(self, ident: int, body: bytes) -> None:
        callback = self.waiting.pop(ident, None)
        if callback is not None:
            callback(body)

    def lost(self, process: Process) -> None:
        """A process exited (or was stopped): fail what waits on this pool; the pool is not reused."""
        self._forget()
        code = process.process.exitcode
        gone = WorkerGone(f"batch worker process {process.pid} exited"
                          f"{f' with code {code}' if code is not None else ''} while items ran in it")
        while self.waiting:
            try:
                _, callback = self.waiting.popitem()
            except KeyError:
                break
            callback(gone)

    # -- the end

    def _forget(self) -> None:
        with _lock:
            self.dead = True
            held = _pools.get(self.turbo_id, {})
            if held.get(self.key) is self:
                del held[self.key]

    def kill(self) -> None:
        """Stop every process now (items running in them stop with them) and wait until they are gone."""
        self._forget()
        for process in self.processes:
            if process.process.is_alive():
                process.process.kill()
        self._reap()

    def close(self, timeout: float = 10.0) -> None:
        """Let each process close its Turbo (pending writes land), then stop what is left."""
        self._forget()
        for process in self.processes:
            try:
                process.send(header("close"))
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.process.join(max(0.0, deadline - time.monotonic()))
        self.kill()

    def _reap(self) -> None:
        for process in self.processes:
            process.process.join(10)
            try:
                process.conn.close()
            except OSError:
                pass


def pool_for(turbo: Any, settings: Any, config: bytes) -> Pool:
    """The live pool of ``turbo`` for these settings (not started yet if it is new)."""
    key = orjson.dumps([settings.processes, settings.start_method, config.decode()])
    with _lock:
        pool = _pools.get(id(turbo), {}).get(key)
        if pool is not None and not pool.dead:
            return pool
        pool = Pool(id(turbo), key, settings, config)
        _pools.setdefault(id(turbo), {})[key] = pool
        return pool


def pools_of(turbo: Any) -> list[Pool]:
    with _lock:
        return list(_pools.get(id(turbo), {}).values())


def close_all(turbo: Any) -> None:
    with _lock:
        pools = list(_pools.pop(id(turbo), {}).values())
    for pool in pools:
        pool.close()
