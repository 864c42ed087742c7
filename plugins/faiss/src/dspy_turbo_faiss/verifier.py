"""The semantic cache's verifier: a second look at a candidate the cosine threshold let through.

A sentence vector says two questions are about the same thing, not that they ask the same
thing. The verifier compares the two questions word by word, with the contextual word
vectors of the same model forward pass that made the sentence vector (BERTScore's
alignment): every *rare* word of either question (rarer than ``rare_below`` on wordfreq's
Zipf scale, where "the" is 7.7, "learn" 5.2 and "salmon" 4.0) must appear in the other
question or have a word there whose vector is at least ``min_alignment`` close. "How do I
cook salmon in the oven?" has no counterpart for "salmon" in "How do I cook chicken in the
oven?" (cosine 0.68), so the pair is rejected; "How can I lose weight fast?" still serves
"What is the fastest way to lose weight?".

It runs only on candidates that reached the threshold and passed the guards, inside
:func:`dspy_turbo_faiss.semantic.pick`'s decision, and is off by default: on the public pair
sets it removes true hits about as fast as false ones (``bench/semantic_eval.py``). A
check compares two small matrices of word vectors; reading a question's words needs its
token vectors, which the embedder holds for the texts it embedded recently (the query
just looked up, entries this process added) and otherwise recomputes from the cached
question's stored text with one forward pass (entries added by another process, or
before a restart).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dspy_turbo.plugin.similarity import WordVectorEmbedder

if TYPE_CHECKING:

    from .feature import SemanticVerifier

REASON = "verifier"
_KEPT = 4096  # texts whose words (and their rarity) are kept


def import_wordfreq():
    """wordfreq's Zipf frequency function; ImportError names the package to install."""
    try:
        from wordfreq import zipf_frequency
    except Exception as exc:
        raise ImportError(f"the semantic verifier weighs words by their frequency with the package wordfreq, which "
                          f"failed to import ({type(exc).__name__}: {exc}); pip install 'dspy-turbo-faiss[verifier]' (or wordfreq)") from None
    return zipf_frequency


@dataclass(frozen=True)
class Words:
    """One question as the verifier sees it."""

    lower: tuple[str, ...]
    vectors: Any
    rare: tuple[int, ...]
    """Positions of the words rarer than the verifier's ``rare_below``."""


class Verifier:
    """Decides, for one query and one cached question, whether a rare word goes unmatched."""

    def __init__(self, settings: SemanticVerifier, embedder: WordVectorEmbedder, kept: int | None = _KEPT):
        if not callable(getattr(embedder, "word_vectors", None)):
            raise TypeError(f"the embedder {type(embedder).__name__} gives no word vectors (word_vectors)")
        zipf = import_wordfreq()
        self.rare_below = settings.rare_below
        self.min_alignment = settings.min_alignment
        self.embedder = embedder
        self._zipf = functools.lru_cache(maxsize=65_536)(lambda word: zipf(word, "en"))
        self._words: OrderedDict[str, Words] = OrderedDict()
        self._kept = kept
        self._lock = threading.Lock()
        self.calls = 0
        self.seconds = 0.0
        # A probe: a broken embedder fails at load, not at the first check; and from now on the
        # embedder keeps the token vectors of what it embeds (it does not without a verifier).
        embedder.word_vectors("")

    def words(self, text: str) -> Words:
        with self._lock:
            got = self._words.get(text)
            if got is not None:
                self._words.move_to_end(text)
                return got
        words, vectors = self.embedder.word_vectors(text)
        lower = tuple(w.lower() for w in words)
        # Digits are the number guard's business; wordfreq folds them all to one frequency.
        rare = tuple(i for i, w in enumerate(lower) if not w.isdigit() and self._zipf(w) < self.rare_below)
        got = Words(lower, vectors, rare)
        with self._lock:
            self._words[text] = got
            while self._kept is not None and len(self._words) > self._kept:
                self._words.popitem(last=False)
        return got

    def warm(self, texts: list[str], batch: int = 64) -> None:
        """Read many texts' words with batched forward passes (calibration, benchmarks)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._words]
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            self.embedder.embed(chunk)  # keeps the chunk's token vectors for word_vectors
            for text in chunk:
                self.words(text)

    def alignment(self, query: str, cached: str) -> float:
        """The lowest alignment of a rare word of either question with the other (1.0: every
        rare word appears in the other question, or there are none)."""
        a, b = self.words(query), self.words(cached)
        lowest = 1.0
        if not (a.rare or b.rare):
            return lowest
        if not a.lower or not b.lower:
            return 0.0
        similarity = a.vectors @ b.vectors.T
        in_b, in_a = set(b.lower), set(a.lower)
        for i in a.rare:
            if a.lower[i] not in in_b:
                lowest = min(lowest, float(similarity[i].max()))
        for j in b.rare:
            if b.lower[j] not in in_a:
                lowest = min(lowest, float(similarity[:, j].max()))
        return lowest

    def reason(self, query: str, cached: str) -> str | None:
        """``"verifier"`` when a rare word has no close counterpart, else None."""
        started = time.perf_counter()
        try:
            return REASON if self.alignment(query, cached) < self.min_alignment else None
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.calls += 1
                self.seconds += elapsed

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"checks": self.calls, "mean_ms": round(self.seconds / self.calls * 1000, 3) if self.calls else None,
                    "rare_below": self.rare_below, "min_alignment": self.min_alignment}

