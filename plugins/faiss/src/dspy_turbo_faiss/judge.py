"""The semantic cache's judge: a cheap LM asked whether two close questions ask the same thing.

Off by default (``cache.semantic.judge``). When on, a candidate whose similarity lies in
the gray zone (``gray_zone: [low, high]``) and that passed the guards is served only if
the judge says the cached question and the query ask the same thing; above the zone the
threshold and the guards decide as before, below it is a miss. With ``low`` under the
threshold the judge serves paraphrases the threshold would miss; with ``high`` over it,
it confirms the close calls the threshold would serve.

- One LM call per verdict (at most one per lookup), ``cache=False`` (it never goes through
  ``dspy.cache``, so never back into this semantic cache), temperature 0. The answer is
  read as ``same`` or ``different``; anything else is ``unsure``, a miss.
- Verdicts are cached through the Turbo's tiers under a key of the judge's model and the
  two texts (in either order), so a pair is judged once per namespace, shared with other
  processes through a shared tier.
- ``budget``: judge LM calls per hour in this process; past it, gray-zone candidates
  without a cached verdict are misses (reason ``budget``).
- Every verdict is a ``semantic_judge`` event (reason ``same``, ``different``,
  ``unsure``, ``error`` or ``budget``; ``extra``: similarity, whether it was cached).
  A failing judge (timeout, provider error) is a miss and an event, never an exception
  in the program.

The judge's call blocks the lookup: it pays off only with a judge much faster and cheaper
than the program's own LM.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dspy_turbo.plugin.host import Host

    from .feature import SemanticJudge

SYSTEM = ("You decide whether two questions ask the same thing: whether one answer would answer both exactly. "
          "Differences in numbers, dates, names, negation, direction or opposite words make them different. "
          "Reply with one word: same or different.")
VERDICTS = ("same", "different", "unsure", "error", "budget")
_PROMPT_VERSION = 1  # part of every verdict key: a new prompt judges pairs afresh


class Judge:
    """Asks the judge LM about one pair, through the verdict cache and the budget."""

    def __init__(self, settings: SemanticJudge, turbo: Host, lm: Any = None):
        self.settings = settings
        self.turbo = turbo
        self.low, self.high = settings.gray_zone
        self.lm = lm if lm is not None else self._build_lm(settings)
        """The ``dspy.LM`` that judges; replaceable (an LM built in code, a scripted one in tests)."""
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._spent = 0
        self.counts = dict.fromkeys(VERDICTS, 0)
        self.cached = 0

    @staticmethod
    def _build_lm(settings: SemanticJudge) -> Any:
        import dspy

        kwargs = {"api_base": settings.api_base} if settings.api_base else {}
        # No retries (DSPy's nor the provider client's): a lookup waits for one attempt at most.
        return dspy.LM(settings.model, cache=False, temperature=0.0, max_tokens=settings.max_tokens,
                       timeout=settings.timeout, num_retries=0, max_retries=0, **kwargs)

    def in_zone(self, similarity: float) -> bool:
        return self.low <= similarity < self.high

    def key(self, query: str, cached: str) -> str:
        first, second = sorted((query, cached))
        return self.turbo.key({"_fn_identifier": "dspy_turbo.judge", "model": self.settings.model or "",
                               "prompt_version": _PROMPT_VERSION, "questions": [first, second]})

    def verdict(self, query: str, cached: str, ask: bool = True) -> tuple[str, bool]:
        """``(verdict, from_cache)``; never raises. ``ask=False``: a cached verdict or
        ``unasked`` (a re-read of a request already looked up asks nobody twice)."""
        key = self.key(query, cached)
        try:
            entry = self.turbo.cache.get(key, count=False)
            value = entry.copy_value() if entry is not None else None
        except Exception:
            value = None
        if isinstance(value, dict) and value.get("verdict") in ("same", "different"):
            if ask:
                self._count(value["verdict"], cached=True)
            return value["verdict"], True
        if not ask:
            return "unasked", False
        if not self._spend():
            self._count("budget")
            return "budget", False
        try:
            verdict = self._ask(query, cached)
        except Exception:
            self._count("error")
            return "error", False
        if verdict in ("same", "different"):
            self.turbo.store(key, {"verdict": verdict}, model=self.settings.model)
        self._count(verdict)
        return verdict, False

    def _ask(self, query: str, cached: str) -> str:
        outputs = self.lm(f"{SYSTEM}\n\nQuestion A: {cached}\nQuestion B: {query}")
        text = outputs[0] if outputs else ""
        text = text.get("text", "") if isinstance(text, dict) else str(text)
        word = text.strip().strip(".!\"'*").split(maxsplit=1)[0].lower() if text.strip() else ""
        return {"same": "same", "yes": "same", "different": "different", "no": "different"}.get(word, "unsure")

    def _spend(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= 3600:
                self._window_start, self._spent = now, 0
            if self._spent >= self.settings.budget:
                return False
            self._spent += 1
            return True

    def _count(self, verdict: str, cached: bool = False) -> None:
        with self._lock:
            self.counts[verdict] += 1
            self.cached += cached

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"model": self.settings.model, "gray_zone": [self.low, self.high], "verdicts": dict(self.counts),
                    "from_cache": self.cached, "budget_per_hour": self.settings.budget,
                    "spent_this_hour": self._spent}
