"""One example of a batch as its strategy's runner receives it (``dspy_turbo.plugin.batch.Item``)."""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

from dspy_turbo.plugin import calls

if TYPE_CHECKING:
    from .batch import Batch


class Item:
    """One example to run: ``program(**inputs)``.

    ``call()`` runs it on the calling thread (for thread-based strategies), ``acall()``
    on the running event loop (``program.acall``). Both run inside the batch's context
    (DSPy settings such as ``dspy.context(lm=...)``, the rate limit and retry policy) and
    store the completed result in the item cache, so a strategy only has to call one.
    """

    __slots__ = ("index", "key", "inputs", "_batch")

    def __init__(self, index: int, key: str | None, inputs: dict[str, Any], batch: Batch):
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
        spent = calls.tracking_spent()
        value = self._batch.program(**self.inputs)
        self._batch.keep_later(self, value, spent)
        return value

    async def acall(self) -> Any:
        program = self._batch.program
        spent = calls.tracking_spent()  # this task's own context
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
        spent = calls.Spent()
        if usage or cost is not None:
            spent.add(usage or {}, cost)
        self._batch.keep_later(self, value, spent)
