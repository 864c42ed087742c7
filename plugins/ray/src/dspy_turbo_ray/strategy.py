"""``ray``: a batch's misses run on a Ray cluster, in a pool of worker actors.

Everything that makes a batch a batch stays in the driver (dspy-turbo-batching's machinery):
reading the input a window at a time, the bulk item-cache lookup, de-duplication, order,
per-item errors, timeouts, ``max_errors``, progress. Only the items that must run go to
the workers, at most ``max_concurrency`` at once, so memory stays bounded on both sides
however long the input is. Each worker is an actor with its own Turbo built from the same
configuration (``document``), running ``max_concurrency / workers`` items on threads.

Items and results cross as JSON bytes (``wire``); the program, the LM and the adapter are
arguments of one ``load`` call per worker and batch, shipped by Ray's cloudpickle. The
pool is the Turbo's and is reused by its next batch; it is killed when a batch ends with
items still running in it, and at ``turbo.close()`` (see ``pools``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import queue
import threading
import uuid
from concurrent.futures import Future
from typing import Any

import orjson
from pydantic import Field

from dspy_turbo.plugin import BatchOptions, BatchStrategy, Duration, Item, Options, Runner
from dspy_turbo_batching.policy import worker_document

from . import document, pools, wire

logger = logging.getLogger("dspy_turbo.ray")


class RaySettings(Options):
    """``batching.ray``: where and how the workers run."""

    address: str | None = None
    """The cluster: ``auto`` (the one ``ray start`` runs on this host), ``ray://head:10001``
    (Ray Client), or ``host:6379``. Unset: the Ray this process already initialised, else
    ``RAY_ADDRESS``, else a local Ray started on loopback for this process."""
    workers: int = Field(default=2, ge=1, le=10_000)
    """Worker actors in the pool; ``max_concurrency`` items are spread over them."""
    num_cpus: float = Field(default=1.0, ge=0)
    """CPUs Ray reserves for each worker (an LM call mostly waits: fractions are fine)."""
    worker_config: str | dict[str, Any] | None = None
    """What the workers build their Turbo from: a YAML path readable on the workers (read
    there, ``${VAR}`` from their environment) or a mapping. Unset: the driver's own
    configuration, metric sinks left out."""
    runtime_env: dict[str, Any] | None = None
    """Ray's runtime environment for the workers (``pip``, ``env_vars``, ``working_dir``)."""
    start_timeout: Duration = Field(default=300.0, gt=0)
    """How long the pool may take to start (on an autoscaling cluster: to get nodes)."""


class RayOptions(BatchOptions):
    ray: RaySettings = RaySettings()
    """Where and how the workers run (the cluster's address, the pool, the workers' configuration)."""


def connect(settings: RaySettings) -> None:
    """Initialise Ray in this process unless it already is.

    ``ray.init`` runs on a thread that lives as long as the process: a local Ray's
    processes (GCS, raylet) die with the *thread* that started them (Ray sets Linux's
    parent-death signal on them, which fires when that thread ends), and a batch's threads
    end with the batch. Started from one of them, the next batch would find Ray gone and
    Ray would end the whole program 60 s later."""
    import ray

    if ray.is_initialized():
        return
    address = settings.address or os.environ.get("RAY_ADDRESS")
    if address:
        _on_keeper(lambda: ray.init(address=address, ignore_reinit_error=True, log_to_driver=False))
    else:  # a local Ray of this process's own: nothing listens beyond loopback
        _on_keeper(lambda: ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, ignore_reinit_error=True,
                                    log_to_driver=False))


_keeper_tasks: queue.SimpleQueue = queue.SimpleQueue()
_keeper_lock = threading.Lock()
_keeper: threading.Thread | None = None


def _keep() -> None:
    while True:
        task, done = _keeper_tasks.get()
        try:
            done.set_result(task())
        except BaseException as exc:  # the caller raises it
            done.set_exception(exc)


def _on_keeper(task: Any) -> Any:
    """``task()`` on the process's Ray keeper thread (a daemon, never ended: at exit Ray's
    own atexit shutdown still finds its processes), its result or error here."""
    global _keeper
    with _keeper_lock:
        if _keeper is None or not _keeper.is_alive():
            _keeper = threading.Thread(target=_keep, name="dspy-turbo-ray-keeper", daemon=True)
            _keeper.start()
    done: Future = Future()
    _keeper_tasks.put((task, done))
    return done.result()


class RayRunner(Runner):
    def __init__(self, strategy: RayStrategy, max_concurrency: int):
        self.strategy = strategy
        self.settings: RaySettings = strategy.options.ray
        self.max_concurrency = max_concurrency
        self.batch = uuid.uuid4().hex
        self.pool: pools.Pool | None = None
        self.starting: asyncio.Future | None = None
        self.running = 0
        self.broken = False  # an item was cancelled while it ran, or a worker died: the pool is not reused
        self.closed = False

    async def run(self, item: Item) -> Any:
        import ray

        pool = self.pool if self.pool is not None and self.starting.done() else await self._started(item)
        payload = wire.encode_inputs(item.inputs)
        i = pool.pick()
        pool.load[i] += 1
        self.running += 1
        ref = pool.actors[i].run.remote(self.batch, payload)
        try:
            result = await ref
        except asyncio.CancelledError:
            self.broken = True  # the item may still run in its worker: the pool must not outlive the batch
            _cancel(ref)
            raise
        except ray.exceptions.RayActorError:
            self.broken = True
            raise
        finally:
            pool.load[i] -= 1
            self.running -= 1
        value, usage, cost = wire.decode_result(result)
        item.keep(value, usage=usage, cost=cost)
        return value

    async def started(self, item: Item) -> None:
        """The pool is up and holds this batch's program (the batch awaits this before it times an item)."""
        await self._started(item)

    async def _started(self, item: Item) -> pools.Pool:
        if self.starting is None:
            self.starting = asyncio.ensure_future(self._start(item))
        return await asyncio.shield(self.starting)

    async def _start(self, item: Item) -> pools.Pool:
        import dspy

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, connect, self.settings)
        import ray

        options = self.strategy.options
        config = self.settings.worker_config
        if config is None:
            config = document.encode(document.driver_document(self.strategy.turbo))
        elif isinstance(config, dict):
            config = document.encode(config)
        per_worker = max(1, math.ceil(self.max_concurrency / self.settings.workers))
        pool, retired = pools.pool_for(self.strategy.turbo, self.settings, config, per_worker)
        self.pool = pool
        if retired is not None:  # its workers hold CPUs: the new pool's may start only once they are gone
            await loop.run_in_executor(None, retired.close)
        if pool.ready is None:
            pool.ready = asyncio.ensure_future(self._ready(pool))
        try:
            await asyncio.shield(pool.ready)
        except BaseException:
            pool.kill()
            raise
        policy = orjson.dumps(worker_document(options))
        # The program and DSPy's LM and adapter as the batch sees them (dspy.context included)
        program, lm, adapter = ray.put(item.program), dspy.settings.lm, dspy.settings.adapter
        try:
            await asyncio.gather(*[a.load.remote(self.batch, program, lm, adapter, policy) for a in pool.actors])
        except ray.exceptions.RayActorError as exc:
            self.broken = True
            raise RuntimeError(f"a Ray batch worker is gone: {_first_line(exc)}") from None
        return pool

    async def _ready(self, pool: pools.Pool) -> None:
        import ray

        workers, cpus = self.settings.workers, self.settings.num_cpus
        try:
            pool.pids = list(await asyncio.wait_for(asyncio.gather(*[a.ready.remote() for a in pool.actors]),
                                                    self.settings.start_timeout))
        except asyncio.TimeoutError:
            raise TimeoutError(f"the Ray worker pool did not start within {self.settings.start_timeout:g}s "
                               f"({workers} workers of {cpus:g} CPU each; does the cluster have them?)") from None
        except ray.exceptions.RayActorError as exc:
            raise RuntimeError(f"a Ray batch worker failed to start: {_first_line(exc)}") from None

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.starting is not None and not self.starting.done():
            self.starting.cancel()
            await asyncio.gather(self.starting, return_exceptions=True)
            self.broken = True  # cancelled while loading: the workers may hold the batch half-loaded
        pool, self.pool = self.pool, None
        if pool is None:
            return
        idle_and_replaced = pools.release(pool)
        if pool.dead:
            return
        if self.running or self.broken:  # items of this batch may still run: they stop with their workers
            pool.kill()
            return
        if idle_and_replaced:  # a bigger pool took its place while this batch ran
            await asyncio.get_running_loop().run_in_executor(None, pool.close)
            return
        try:
            await asyncio.wait_for(asyncio.gather(*[a.unload.remote(self.batch) for a in pool.actors]), 10)
        except Exception as exc:  # a worker that does not answer is not reused
            logger.debug("unloading a batch from its Ray workers: %s", exc)
            pool.kill()


def _cancel(ref: Any) -> None:
    import ray

    try:
        ray.cancel(ref)
    except Exception:  # finished meanwhile, or a Ray that cannot cancel actor tasks: the kill in aclose stops it
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class RayStrategy(BatchStrategy):
    name = "ray"
    Options = RayOptions

    def __init__(self, options: RayOptions | None = None, turbo: Any = None):
        super().__init__(options)
        self.turbo = turbo

    @classmethod
    def from_options(cls, options: RayOptions, turbo: Any = None) -> RayStrategy:
        return cls(options, turbo)

    def runner(self, max_concurrency: int) -> Runner:
        return RayRunner(self, max_concurrency)
