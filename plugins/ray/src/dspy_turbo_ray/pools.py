"""The worker pools of each Turbo: started by its first ``ray`` batch, reused by the next.

Starting a worker costs seconds (a Python process importing DSPy and building a Turbo),
so a pool outlives its batch: the next batch of the same Turbo with the same pool settings
loads its program into the same workers. A pool is killed when a batch ends with items
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
    def __init__(self, turbo_id: int, key: bytes, actors: list[Any]):
        self.turbo_id = turbo_id
        self.key = key
        self.actors = actors
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


def pool_for(turbo: Any, settings: Any, config: bytes | str, per_worker: int) -> Pool:
    """The live pool of ``turbo`` for these settings, started now if there is none."""
    import ray

    from .worker import BatchWorker

    key = orjson.dumps([settings.address, settings.workers, settings.num_cpus, settings.runtime_env, per_worker,
                        config if isinstance(config, str) else config.decode()], option=orjson.OPT_SORT_KEYS)
    with _lock:
        pool = _pools.get(id(turbo), {}).get(key)
        if pool is not None and not pool.dead:
            return pool
        actor = ray.remote(BatchWorker).options(max_concurrency=per_worker + 2,  # +2: load/unload beside busy items
                                                num_cpus=settings.num_cpus, runtime_env=settings.runtime_env,
                                                max_restarts=0)
        pool = Pool(id(turbo), key, [actor.remote(config, settings.workers) for _ in range(settings.workers)])
        _pools.setdefault(id(turbo), {})[key] = pool
        return pool


def close_all(turbo: Any) -> None:
    with _lock:
        pools = list(_pools.pop(id(turbo), {}).values())
    for pool in pools:
        pool.close()
