"""One worker process of the ``process`` batch strategy: its own Turbo, items run on threads.

The process is started by :mod:`dspy_turbo_batching.processes` (``multiprocessing``,
``forkserver`` or ``spawn``) with one end of a pipe and the configuration document
(``dspy_turbo.plugin.worker_config``). It builds its Turbo from that document and installs
it as ``dspy.cache``, so every LM call of the program goes through the worker's tiers: a
memory tier of its own, the file and Redis tiers shared with the parent and the other
workers, and with a Redis tier the shared single-flight and rate-limit buckets.

Messages are bytes on the pipe (``send_bytes``/``recv_bytes``, never ``send``/``recv``,
which pickle): a JSON header line, then a body.

- ``["load", batch, threads, policy]`` + the program and DSPy's settings as the batch saw
  them (the LM, the adapter, callbacks...) as cloudpickle bytes (code and settings the
  parent chose, the way DSPy saves a whole program; never cache data): answered
  ``["loaded", batch, error]``;
- ``["run", batch, id]`` + the item's inputs (``dspy_turbo.plugin.wire``): answered
  ``["r", id]`` + its encoded result or error, from the thread that ran it;
- ``["unload", batch]``; ``["close"]``, or the pipe closing (the parent is gone): the worker
  closes its Turbo and exits.

Importing this module imports DSPy and dspy-turbo: the forkserver preloads it, so a worker
forked from there starts in milliseconds.
"""

from __future__ import annotations

import contextvars
import os
import threading
from typing import Any

import dspy
import orjson

import dspy_turbo
from dspy_turbo.plugin import calls, wire

from .workers import WorkerPool

PEER = "the worker process"


def header(*fields: Any) -> bytes:
    return orjson.dumps(list(fields)) + b"\n"


def split(message: bytes) -> tuple[list[Any], bytes]:
    head, _, body = bytes(message).partition(b"\n")
    return orjson.loads(head), body


class _Batch:
    __slots__ = ("program", "settings", "policy")

    def __init__(self, program: Any, settings: dict[str, Any], policy: Any):
        self.program, self.settings, self.policy = program, settings, policy


class Worker:
    def __init__(self, conn: Any, config: bytes, workers: int):
        self.conn = conn
        self.workers = workers
        self.send_lock = threading.Lock()
        self.batches: dict[str, _Batch] = {}
        self.pool: WorkerPool | None = None
        self.turbo = dspy_turbo.load(orjson.loads(config)).install()

    def send(self, message: bytes) -> None:
        with self.send_lock:
            self.conn.send_bytes(message)

    def serve(self) -> None:
        while True:
            try:
                message = self.conn.recv_bytes()
            except (EOFError, OSError):  # the parent is gone
                return
            head, body = split(message)
            op = head[0]
            if op == "run":
                batch = self.batches.get(head[1])
                self.pool.submit(contextvars.copy_context().run, self._run, batch, head[2], body)
            elif op == "load":
                self.send(header("loaded", head[1], self._load(head[1], head[2], head[3], body)))
            elif op == "unload":
                self.batches.pop(head[1], None)
            elif op == "close":
                return

    def _load(self, batch: str, threads: int, policy: dict[str, Any], body: bytes) -> str | None:
        import cloudpickle

        from . import policy as policies

        try:
            program, settings = cloudpickle.loads(body)
        except Exception as exc:
            return f"the program could not be loaded in {PEER} {os.getpid()}: {type(exc).__name__}: {exc}"
        self.batches[batch] = _Batch(program, settings, policies.for_worker(self.turbo, policy, self.workers))
        if self.pool is None or self.pool._max_workers < threads:  # grows with the largest batch; never shrinks
            old, self.pool = self.pool, WorkerPool(max_workers=threads, thread_name_prefix="dspy-turbo-process-item")
            if old is not None:
                old.shutdown(wait=False)
        return None

    def _run(self, batch: _Batch | None, ident: int, body: bytes) -> None:
        try:
            if batch is None:
                raise RuntimeError(f"{PEER} {os.getpid()} has no program loaded for this item")
            inputs = wire.decode_inputs(body, "the batch")
            with dspy.context(**batch.settings), batch.policy.active():
                spent = calls.tracking_spent()
                value = batch.program(**inputs)
        except Exception as exc:
            payload = wire.encode_error(exc)
        else:
            payload = wire.encode_result(value, spent.usage(), spent.cost, peer=PEER)
        try:
            self.send(header("r", ident) + payload)
        except (OSError, ValueError):  # the parent is gone or closed the pipe
            pass

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.turbo.close()


def main(conn: Any, config: bytes, workers: int) -> None:
    """The worker process's body: build the Turbo, say ready (with the pid), serve until told to stop."""
    try:
        worker = Worker(conn, config, workers)
    except BaseException as exc:
        conn.send_bytes(header("ready", None, f"{type(exc).__name__}: {exc}"))
        return
    worker.send(header("ready", os.getpid(), None))
    try:
        worker.serve()
    finally:
        worker.close()
        os._exit(0)  # item threads still running die with the process; nothing of it is left behind
