"""The input of a batch: any iterable, sync or async, read a chunk at a time (backpressure)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Source:
    """Reads a sync or async iterable a chunk at a time, never all at once."""

    def __init__(self, examples: Any):
        self.exhausted = False
        if hasattr(examples, "__aiter__"):
            self._aiter = examples.__aiter__()
            self._iter = None
        else:
            self._iter: Iterator | None = iter(examples)
            self._aiter = None

    async def take(self, n: int) -> list[Any]:
        out: list[Any] = []
        if self._iter is not None:
            for example in self._iter:
                out.append(example)
                if len(out) >= n:
                    return out
            self.exhausted = True
            return out
        while len(out) < n:
            try:
                out.append(await self._aiter.__anext__())
            except StopAsyncIteration:
                self.exhausted = True
                break
        return out

    async def aclose(self) -> None:
        if self._aiter is not None and hasattr(self._aiter, "aclose"):
            try:
                await self._aiter.aclose()
            except Exception:
                pass
