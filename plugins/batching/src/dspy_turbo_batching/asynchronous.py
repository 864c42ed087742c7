"""``async``: each item awaits ``program.acall(...)`` on the batch's event loop.

No thread per item: thousands of items can wait on the provider at once for the cost of
a coroutine each. Cancelling the batch cancels the items' LM calls. Needs a program with
``acall`` (every ``dspy.Module``) or an ``async def`` function.

Items start one per pass of the event loop, in batch order, not all in the same pass.
DSPy's native async HTTP transport goes through the loop several times per call (a
``wait_for`` each for the connection slot, the write, the response head), and items
started together advance in lockstep, a step per pass each: every request of a wave then
goes out at the end of the wave. Started a pass apart, the earlier items run ahead and
their requests go out first, as threads' do (measured: bench/bench_http.py, see
docs/performance/batching.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from dspy_turbo.plugin.batch import BatchOptions, BatchStrategy, Item, Runner


class AsyncRunner(Runner):
    def __init__(self) -> None:
        self._last: asyncio.Future | None = None  # set one pass after the latest item started

    async def run(self, item: Item) -> Any:
        loop = asyncio.get_running_loop()
        before, mine = self._last, loop.create_future()
        self._last = mine
        try:
            if before is not None and not before.done():
                await before
        finally:  # released on every path (a cancelled item too): the items behind it must not wait forever
            loop.call_soon(_release, mine)
        return await item.acall()


def _release(turn: asyncio.Future) -> None:
    if not turn.done():
        turn.set_result(None)


class AsyncStrategy(BatchStrategy):
    name = "async"
    Options = BatchOptions

    def runner(self, max_concurrency: int) -> Runner:
        return AsyncRunner()
