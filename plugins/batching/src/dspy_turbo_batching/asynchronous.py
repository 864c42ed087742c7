"""``async``: each item awaits ``program.acall(...)`` on the batch's event loop.

No thread per item: thousands of items can wait on the provider at once for the cost of
a coroutine each. Cancelling the batch cancels the items' LM calls. Needs a program with
``acall`` (every ``dspy.Module``) or an ``async def`` function.
"""

from __future__ import annotations

from typing import Any

from dspy_turbo.plugin.batch import BatchOptions, BatchStrategy, Item, Runner


class AsyncRunner(Runner):
    async def run(self, item: Item) -> Any:
        return await item.acall()


class AsyncStrategy(BatchStrategy):
    name = "async"
    Options = BatchOptions

    def runner(self, max_concurrency: int) -> Runner:
        return AsyncRunner()
