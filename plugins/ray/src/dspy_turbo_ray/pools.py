"""The worker pools of each Turbo: started by its first ``ray`` batch, reused by the next.

Starting a worker costs seconds (a Python process importing DSPy and building a Turbo),
so a pool outlives its batch: the next batch of the same Turbo with the same pool settings
loads its program into the same workers. A worker runs up to its pool's ``capacity`` items
at once (Ray fixes an actor's concurrency when it starts); a batch that needs more replaces
the pool with a bigger one, whose workers start once the old, idle ones are gone (on a
small cluster both could not hold their CPUs at once), and smaller batches then reuse it. A pool is killed when a batch ends with items
still running in it (cancelled, stopped by ``max_errors``, a consumer that stopped
reading: nothing of it may run on), when a worker of it died, and at ``turbo.close()``
(the ``dspy_turbo_shutdown`` hook). Ray kills the actors of a driver that exits.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import orjson

logger = logging.getLogger("dspy_turbo.ray")

_lock = threading.Lock()
_pools: dict[int, dict[bytes, Pool]] = {}  # id(turbo) -> pool key -> pool


class Pool:
    def __init__(self, turbo_id: int, key: bytes, actors: list[Any], capacity: int):
        self.turbo_id = turbo_id
        self.key = key
        self.actors = actors
        self.capacity = capacity  # items each worker runs at once
        self.users = 0  # batches using the pool now
        self.replaced = False  # a bigger pool took its place: it closes when its last batch ends
        self.load = [0] * len(actors)
        self.pids: list[int] = []
        self.ready: asyncio.Future | None = None  # set by the first batch that waits for the pool
        self.dead = False

    def pick(self) -> int:
        return min(range(len(self.actors)), key=self.load.__getitem__)

    def kill(self) -> None:
        import ray

        with _lock:
            self.dead = True
            held = _pools.get(self.turbo_id, {})
            if held.get(self.key) is self:
                del held[self.key]
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception as exc:  # already gone, or Ray shut down meanwhile
                logger.debug("killing a Ray batch worker: %s", exc)

    def close(self, timeout: float = 10.0) -> None:
        """Let each worker close its Turbo (pending writes land), then kill it."""
        import ray

        try:
            ray.get([actor.close.remote() for actor in self.actors], timeout=timeout)
        except Exception as exc:
            logger.debug("closing Ray batch workers: %s", exc)
        self.kill()


def pool_for(turbo: Any, settings: Any, config: bytes | str, per_worker: int) -> tuple[Pool, Pool | None]:
    """The live pool of ``turbo`` for these settings with room for ``per_worker`` items per
    worker, started now if there is none, and the pool it replaced if that one is idle (the
    caller closes it: its workers hold CPUs the new ones may need). The batch is counted
    as a user of the pool until :func:`release`."""
    import ray

    from .worker import BatchWorker

    key = orjson.dumps([settings.address, settings.workers, settings.num_cpus, settings.runtime_env,
                        config if isinstance(config, str) else config.decode()], option=orjson.OPT_SORT_KEYS)
    retired = None
    with _lock:
        held = _pools.setdefault(id(turbo), {})
        pool = held.get(key)
        if pool is not None and not pool.dead and pool.capacity >= per_worker:
            pool.users += 1
            return pool, None
        capacity = per_worker
        if pool is not None and not pool.dead:
            capacity = max(capacity, pool.capacity)  # never smaller than the one it replaces: no back and forth
            pool.replaced = True
            if pool.users == 0:
                retired = pool
        actor = ray.remote(BatchWorker).options(max_concurrency=capacity + 2,  # +2: load/unload beside busy items
                                                num_cpus=settings.num_cpus, runtime_env=settings.runtime_env,
                                                max_restarts=0)
        pool = Pool(id(turbo), key, [actor.remote(config, settings.workers) for _ in range(settings.workers)], capacity)
        pool.users = 1
        held[key] = pool
        return pool, retired


def release(pool: Pool) -> bool:
    """A batch is done with ``pool``; True when the pool was replaced meanwhile and is now
    idle: the caller closes it."""
    with _lock:
        pool.users -= 1
        return pool.replaced and pool.users == 0 and not pool.dead


def close_all(turbo: Any) -> None:
    with _lock:
        pools = list(_pools.pop(id(turbo), {}).values())
    for pool in pools:
        pool.close()
