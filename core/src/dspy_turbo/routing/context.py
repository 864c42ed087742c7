"""Keeping prompts within a token budget: the context assembler and few-shot demo selection.

Token counts come from a real tokenizer, offline: ``tiktoken`` with the encoding files that
LiteLLM (a DSPy dependency) ships (``cl100k_base``, ``o200k_base``, ``p50k_base``). OpenAI
models get their own encoding (exact). Other models get ``cl100k_base`` as an estimate: BPE
vocabularies of other providers differ by roughly +/-15 % on English prose, so leave that
much headroom in their budgets. Without those files (or tiktoken) the fallback is 4 characters
per token (``Tokenizer.exact`` is False for both estimates). Nothing is ever downloaded.

    ctx = assemble(ranked_passages, budget=1500, model="openai/gpt-4o-mini")
    ctx.text, ctx.kept, ctx.dropped, ctx.tokens
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

logger = logging.getLogger("dspy_turbo")

_ENCODINGS_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


class Tokenizer:
    """Counting and cutting text in tokens. ``exact``: the model's own tokenizer."""

    name = "estimate:4-chars-per-token"
    exact = False

    def count(self, text: str) -> int:
        return math.ceil(len(text) / 4)

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` within ``max_tokens``, cut at a token boundary."""
        if max_tokens <= 0:
            return ""
        if self.count(text) <= max_tokens:
            return text
        cut = text[: max_tokens * 4]
        space = max(cut.rfind(" "), cut.rfind("\n"))  # the estimate's tokens end at whitespace
        return cut[:space] if space > 0 else cut


class TiktokenTokenizer(Tokenizer):
    def __init__(self, encoding, exact: bool):
        self.encoding = encoding
        self.name = f"tiktoken:{encoding.name}"
        self.exact = exact

    def count(self, text: str) -> int:
        return len(self.encoding.encode(text, disallowed_special=()))

    def truncate(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        tokens = self.encoding.encode(text, disallowed_special=())
        n = min(len(tokens), max_tokens)
        while n > 0:
            # Tokens are byte strings: a prefix of them is a byte prefix of the text. A
            # character split across tokens is left out, never replaced by U+FFFD.
            prefix = self.encoding.decode_bytes(tokens[:n]).decode("utf-8", errors="ignore")
            if self.count(prefix) <= max_tokens:  # re-encoding a prefix can merge differently
                return prefix
            n -= 1
        return ""


def _bundled_encodings_dir() -> str | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(next(iter(spec.submodule_search_locations)), "litellm_core_utils", "tokenizers")
    return path if os.path.isdir(path) else None


@lru_cache(maxsize=8)
def _encoding(name: str):
    """A tiktoken encoding from local files only, or None."""
    try:
        import tiktoken
    except ImportError:
        return None
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or _bundled_encodings_dir()
    if cache_dir is None:
        return None
    blob = os.path.join(cache_dir, hashlib.sha1(_ENCODINGS_URL.format(name).encode()).hexdigest())
    if not os.path.isfile(blob):
        return None  # tiktoken would download it: never at run time
    # LiteLLM sets the same variable to the same directory when it is imported.
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", cache_dir)
    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:
        logger.info("tiktoken encoding %s unavailable (%s); estimating tokens", name, exc)
        return None


@lru_cache(maxsize=64)
def tokenizer_for(model: str | None = None) -> Tokenizer:
    """The model's tokenizer when available offline, else the documented estimate."""
    name, exact = "cl100k_base", False
    if model:
        try:
            import tiktoken

            name = tiktoken.encoding_name_for_model(model.split("/")[-1])
            exact = True
        except (ImportError, KeyError):
            pass
    encoding = _encoding(name)
    if encoding is None:
        return Tokenizer()
    return TiktokenTokenizer(encoding, exact)


def count_tokens(text: str, model: str | None = None) -> int:
    return tokenizer_for(model).count(text)


# -- the context assembler ---------------------------------------------------------------------


@dataclass
class Context:
    text: str
    passages: list[str]
    """What was kept, best first (the last one cut short when ``truncated``)."""
    kept: list[int]
    """Indices (in the ranked input) of the passages kept."""
    dropped: list[int]
    tokens: int
    budget: int
    truncated: bool = False
    tokenizer: str = ""
    exact: bool = False


def assemble(passages: Sequence[str], budget: int, *, model: str | None = None, tokenizer: Tokenizer | None = None,
             separator: str = "\n\n", truncate: bool = False) -> Context:
    """Fit ranked passages (best first) into ``budget`` tokens.

    Passages are kept in rank order until the next one does not fit; it and every
    lower-ranked passage are dropped, so the lowest-ranked go first. A passage is never cut
    unless ``truncate=True``: then the first one that does not fit is cut, at a token boundary,
    to fill what is left. The guarantee is on the joined text: ``count(ctx.text) <= budget``.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0 tokens, got {budget}")
    tok = tokenizer or tokenizer_for(model)
    kept: list[int] = []
    texts: list[str] = []
    text = ""
    truncated = False
    for index, passage in enumerate(passages):
        candidate = f"{text}{separator}{passage}" if texts else passage
        if tok.count(candidate) <= budget:
            kept.append(index)
            texts.append(passage)
            text = candidate
            continue
        if truncate:
            lead = f"{text}{separator}" if texts else ""
            room = budget - tok.count(lead)
            cut = tok.truncate(passage, room)
            while cut and tok.count(lead + cut) > budget:  # the seam itself may merge tokens
                cut = tok.truncate(cut, tok.count(cut) - 1)
            if cut.strip():
                kept.append(index)
                texts.append(cut)
                text = lead + cut
                truncated = True
        break
    dropped = [i for i in range(len(passages)) if i not in set(kept)]
    return Context(text, texts, kept, dropped, tok.count(text), budget, truncated, tok.name, tok.exact)


# -- few-shot demos under a budget -------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


def render_demo(demo: Any) -> str:
    """A demo's text as it costs tokens in a prompt: ``field: value`` lines."""
    if isinstance(demo, str):
        return demo
    items = demo.items() if hasattr(demo, "items") else vars(demo).items()
    return "\n".join(f"{k}: {v}" for k, v in items if not str(k).startswith("_"))


def _words(text: str) -> frozenset[str]:
    return frozenset(w.lower() for w in _WORD.findall(text))


@dataclass
class DemoSelection:
    demos: list[Any]
    indices: list[int]
    tokens: int
    budget: int
    costs: list[int] = field(default_factory=list)


def select_demos(demos: Sequence[Any], budget: int, *, model: str | None = None, tokenizer: Tokenizer | None = None,
                 render: Callable[[Any], str] = render_demo, embed: Callable[[list[str]], Any] | None = None,
                 max_demos: int | None = None) -> DemoSelection:
    """The most diverse demos whose rendered texts fit ``budget`` tokens together.

    Greedy farthest-point selection: the first demo that fits (callers list their best
    first), then repeatedly the fitting demo farthest from everything chosen so far. Distance
    is ``1 - cosine`` of ``embed(texts)`` when an embedder is given, else ``1 - Jaccard``
    of the word sets. The chosen demos come back in their original order.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0 tokens, got {budget}")
    tok = tokenizer or tokenizer_for(model)
    texts = [render(d) for d in demos]
    costs = [tok.count(t) for t in texts]
    if embed is not None and texts:
        import numpy as np

        vectors = np.asarray(embed(texts), dtype=float)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        similarity = vectors @ vectors.T

        def distance(i: int, j: int) -> float:
            return 1.0 - float(similarity[i, j])
    else:
        words = [_words(t) for t in texts]

        def distance(i: int, j: int) -> float:
            union = words[i] | words[j]
            return 1.0 - (len(words[i] & words[j]) / len(union) if union else 1.0)

    chosen: list[int] = []
    spent = 0
    limit = len(demos) if max_demos is None else max_demos
    nearest = [math.inf] * len(demos)  # distance of each demo to the closest chosen one
    while len(chosen) < limit:
        fitting = [i for i in range(len(demos)) if i not in chosen and spent + costs[i] <= budget]
        if not fitting:
            break
        pick = fitting[0] if not chosen else max(fitting, key=lambda i: (nearest[i], -i))
        chosen.append(pick)
        spent += costs[pick]
        for i in range(len(demos)):
            nearest[i] = min(nearest[i], distance(i, pick))
    order = sorted(chosen)
    return DemoSelection([demos[i] for i in order], order, spent, budget, [costs[i] for i in order])
