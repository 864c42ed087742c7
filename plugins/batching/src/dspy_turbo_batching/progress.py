"""The progress bar of a long batch: done/total, hits, errors and rate (tqdm).

Shown only when asked (``progress=True``) or, by default, when stderr is a terminal;
never in logs, CI output or notebooks' captured streams unless asked.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, enabled: bool | None, total: int | None, description: str = "batch"):
        if enabled is None:
            enabled = bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.bar = None
        self.hits = self.errors = 0
        self._shown = 0.0
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=description, unit="item", mininterval=0.25, dynamic_ncols=True,
                            smoothing=0.1)

    def update(self, done: int = 1, hits: int = 0, errors: int = 0) -> None:
        if self.bar is None:
            return
        self.hits += hits
        self.errors += errors
        self.bar.update(done)
        now = time.monotonic()
        if now - self._shown > 0.25:  # the postfix re-renders the bar: not on every item
            self._shown = now
            self.bar.set_postfix(hits=self.hits, errors=self.errors, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix(hits=self.hits, errors=self.errors, refresh=False)
            self.bar.close()
            self.bar = None
