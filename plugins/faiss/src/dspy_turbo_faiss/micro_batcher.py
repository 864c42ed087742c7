"""Concurrent embedding requests share one forward pass, and a text is embedded once.

The semantic cache embeds each lookup's question; a sentence-transformer's forward pass
costs about as much for 16 texts as for one, so callers arriving together are served by
one pass (:class:`MicroBatcher`), and vectors already computed come from an LRU.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any


class _Slot:
    __slots__ = ("text", "vector", "error", "done", "lead", "wake")

    def __init__(self, text: str):
        self.text = text
        self.vector = None
        self.error: BaseException | None = None
        self.done = False
        self.lead = False  # this caller runs the next pass
        self.wake = threading.Event()


class MicroBatcher:
    """Concurrent ``embed`` calls share one forward pass, and the batch adapts to the load.

    A caller queues its text. When no pass is running it runs one itself at once (a caller
    alone is never delayed); otherwise it sleeps until its vector is ready or until it is
    handed the next pass. A pass takes everything queued (up to ``max_batch``), so the
    callers that arrived during one pass share the next: with many callers the batches grow
    by themselves, with one they are single texts. When a pass ends, its runner hands the
    next pass to the oldest queued caller and wakes that caller alone; everyone else sleeps
    until its own vector is there. ``window``: when passes run back to back, the last one
    was shared and fewer callers are queued than it held, the runner waits up to that long
    for the rest to come back, and no longer than until they have. Texts already embedded come from an LRU of
    ``cache_size`` vectors, so the same text is never embedded twice.
    """

    def __init__(self, embed, window: float = 0.002, max_batch: int = 64, cache_size: int = 10_000):
        self._embed = embed
        self.window = window
        self.max_batch = max_batch
        self._queue: list[_Slot] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._running = False
        self._last_batch = 0
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_size
        self.batches = 0
        self.embedded = 0
        self.cache_hits = 0

    def embed(self, text: str):
        with self._lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                self.cache_hits += 1
                return vector
            slot = _Slot(text)
            self._queue.append(slot)
            if self._running:
                self._arrived.notify()
            else:
                self._running = slot.lead = True
        while not slot.done:
            if not slot.lead:
                slot.wake.wait()
                slot.wake.clear()
            if slot.lead and not slot.done:
                slot.lead = False
                self._run_pass()
        if slot.error is not None:
            raise slot.error
        return slot.vector

    def _run_pass(self) -> None:
        """Embed one batch, deliver it, and hand the next pass to the oldest caller still queued."""
        batch: list[_Slot] = []
        try:
            with self._lock:
                expected = min(self._last_batch, self.max_batch)
                if self.window and len(self._queue) < expected:
                    # The last pass was shared: its callers are likely on their way back.
                    deadline = time.monotonic() + self.window
                    while len(self._queue) < expected and (left := deadline - time.monotonic()) > 0:
                        self._arrived.wait(left)
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
            texts = list(dict.fromkeys(slot.text for slot in batch))
            error, by_text = None, {}
            try:
                by_text = dict(zip(texts, self._embed(texts), strict=True))
            except BaseException as exc:  # every waiter gets the error, none hangs
                error = exc
            with self._lock:
                if error is None:
                    self.batches += 1
                    self.embedded += len(texts)
                    self._last_batch = len(batch)
                    for text, vector in by_text.items():
                        self._cache[text] = vector
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
                for slot in batch:
                    slot.vector, slot.error, slot.done = by_text.get(slot.text), error, True
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].lead = True
                    self._queue[0].wake.set()
                else:  # idle: the next caller is alone, so it must not wait
                    self._running, self._last_batch = False, 0
            for slot in batch:
                slot.wake.set()
