"""One Ray worker: an actor with its own Turbo, running batch items one per thread.

The actor is built with the configuration document (see ``document``). Each batch then
loads its program, the DSPy LM and adapter it saw (Ray ships those as it ships any actor
argument, by cloudpickle: code and settings the driver chose, never cache data) and its
rate limit and retry settings; items name the batch they belong to. Its Turbo is installed as ``dspy.cache`` in the worker
process, so every LM call of the program goes through the worker's tiers; with a Redis
tier all workers and the driver share one cache, one single-flight (concurrent identical
requests on different hosts make one LM call) and one rate-limit bucket per model.
"""

from __future__ import annotations

import contextvars
import os
from typing import Any

from . import wire


class _Batch:
    __slots__ = ("program", "lm", "adapter", "policy")

    def __init__(self, program: Any, lm: Any, adapter: Any, policy: Any):
        self.program, self.lm, self.adapter, self.policy = program, lm, adapter, policy


class BatchWorker:
    """The actor class (wrapped by ``ray.remote`` in ``strategy``)."""

    def __init__(self, config: bytes | str, workers: int):
        import orjson

        import dspy_turbo

        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        source = orjson.loads(config) if isinstance(config, bytes) else config  # a mapping, or a YAML path on this host
        self.turbo = dspy_turbo.load(source).install()
        self.workers = workers
        self.batches: dict[str, _Batch] = {}

    def load(self, batch: str, program: Any, lm: Any, adapter: Any, policy: bytes) -> None:
        """What one batch runs: its program, DSPy's LM and adapter, its rate limit and retries."""
        import orjson

        from dspy_turbo_batching.policy import for_worker

        self.batches[batch] = _Batch(program, lm, adapter, for_worker(self.turbo, orjson.loads(policy), self.workers))

    def unload(self, batch: str) -> None:
        self.batches.pop(batch, None)

    def ready(self) -> int:
        """The worker's process id, once its Turbo is built."""
        return os.getpid()

    def run(self, batch: str, payload: bytes) -> bytes:
        """One item of a loaded batch: its encoded inputs in, its encoded result (or error) out."""
        return contextvars.copy_context().run(self._run, self.batches[batch], payload)

    def _run(self, batch: _Batch, payload: bytes) -> bytes:
        import dspy

        from dspy_turbo.plugin import calls

        try:
            inputs = wire.decode_inputs(payload)
            with dspy.context(lm=batch.lm, adapter=batch.adapter), batch.policy.active():
                spent = calls.tracking_spent()
                value = batch.program(**inputs)
        except Exception as exc:
            return wire.encode_error(exc)
        return wire.encode_result(value, spent.usage(), spent.cost)

    def close(self) -> None:
        self.turbo.close()
