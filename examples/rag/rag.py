"""High-performance RAG with dspy-turbo: retrieve -> rank -> generate over a local corpus.

    python examples/rag/rag.py                      # offline: the offline LM, no key, no network
    OPENAI_API_KEY=sk-... python examples/rag/rag.py   # the same program on real models

* retrieve: dense retrieval with ``dspy.retrievers.Embeddings`` over a generated corpus of a
  few thousand passages; embeddings from sentence-transformers (all-MiniLM-L6-v2 from local
  disk), cached through the Turbo chunk by chunk; query results cached too.
* rank: a hybrid re-rank (retrieval rank fused with IDF-weighted term overlap), cached.
* context: the ranked passages fitted into a token budget (``dspy_turbo.routing.context.assemble``,
  the model's tokenizer, lowest-ranked dropped first).
* generate: ``dspy.ChainOfThought`` on ``turbo.router()``: easy lookups go to the small tier,
  multi-step questions to the large one; every LM call is cached.
* batch: the question set runs in parallel with ``dspy.Parallel`` (a thread pool).

It runs the question set twice, cold then warm, and prints per question and per run: the
answer, LM calls, tokens, cost, and latency p50/p95. The cache has a memory and a file tier;
``--keep-cache`` keeps what an earlier process stored, so a restart starts warm.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # prices from DSPy's bundled table, offline
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the embedding model is local

import dspy  # noqa: E402
import xxhash  # noqa: E402

import dspy_turbo  # noqa: E402
from dspy_turbo.engines.offline import offline_lm  # noqa: E402
from dspy_turbo.routing.context import assemble  # noqa: E402

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))  # the example's own modules, run from anywhere
import rag_corpus  # noqa: E402
from rag_embed import CachedEmbedder  # noqa: E402

HERE = Path(__file__).parent
_TERM = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an the of in on at to and or is was what which when how why who does did its it from by for "
                  "with that this since many much".split())


class GenerateAnswer(dspy.Signature):
    """Answer the question using only the context passages."""

    context: str = dspy.InputField(desc="retrieved passages, best first")
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


def _terms(text: str) -> list[str]:
    return [t for t in _TERM.findall(text.lower()) if t not in _STOP]


class RAG(dspy.Module):
    """retrieve -> rank -> context within budget -> generate; every stage cached through ``turbo``."""

    def __init__(self, turbo, passages: list[str], embedder: CachedEmbedder, *, k: int = 20,
                 context_tokens: int = 600, tokenizer_model: str = "openai/gpt-4o"):
        super().__init__()
        self.passages = passages
        self.context_tokens = context_tokens
        self.tokenizer_model = tokenizer_model
        corpus_id = xxhash.xxh3_64_hexdigest("\x1f".join([embedder.model_id, *passages]).encode())
        retriever = dspy.retrievers.Embeddings(corpus=passages, embedder=embedder, k=k)  # embeds via the cache
        documents = Counter(t for p in passages for t in set(_terms(p)))
        idf = {t: math.log(len(passages) / n) for t, n in documents.items()}

        # key=: the corpus id stands for what these functions capture (the retriever, the passages)
        @turbo.cached(tags=["retrieve"], key=lambda corpus, question, k: (corpus, question, k))
        def retrieve(corpus: str, question: str, k: int) -> list[int]:
            return [int(i) for i in retriever(question).indices]

        @turbo.cached(tags=["rank"], key=lambda corpus, question, candidates: (corpus, question, candidates))
        def rank(corpus: str, question: str, candidates: list[int]) -> list[int]:
            wanted = set(_terms(question))

            def score(position: int, index: int) -> float:
                overlap = sum(idf.get(t, 0.0) for t in wanted & set(_terms(passages[index])))
                return 1.0 / (10 + position) + 0.02 * overlap  # reciprocal-rank fusion with term overlap

            return [i for _, i in sorted(((-score(p, i), i) for p, i in enumerate(candidates)))]

        self._retrieve = lambda question: retrieve(corpus_id, question, k)
        self._rank = lambda question, candidates: rank(corpus_id, question, candidates)
        self.generate = dspy.ChainOfThought(GenerateAnswer)

    def forward(self, question: str):
        ranked = self._rank(question, self._retrieve(question))
        context = assemble([self.passages[i] for i in ranked], self.context_tokens, model=self.tokenizer_model)
        prediction = self.generate(context=context.text, question=question)
        return dspy.Prediction(answer=prediction.answer, context_passages=len(context.kept), context_tokens=context.tokens)


class Measured(dspy.Module):
    """One question's answer with its own latency, LM calls, tokens and cost (usage per thread)."""

    def __init__(self, program: RAG, prices):
        super().__init__()
        self.program = program
        self.prices = prices

    def forward(self, question: str):
        started = time.perf_counter()
        with dspy.track_usage() as usage:
            prediction = self.program(question=question)
        latency = time.perf_counter() - started
        calls = tokens = 0
        cost = 0.0
        for model, entries in usage.usage_data.items():
            for entry in entries:
                calls += 1
                prompt, completion = int(entry.get("prompt_tokens") or 0), int(entry.get("completion_tokens") or 0)
                tokens += prompt + completion
                cost += self.prices.estimate(model, prompt, completion) or 0.0
        return dspy.Prediction(question=question, answer=prediction.answer, latency=latency, lm_calls=calls,
                               tokens=tokens, cost=cost, models=sorted(usage.usage_data),
                               context_tokens=prediction.context_tokens)


@dataclass
class Report:
    label: str
    rows: list = field(default_factory=list)
    wall: float = 0.0
    embedded: int = 0

    @property
    def lm_calls(self) -> int:
        return sum(r.lm_calls for r in self.rows)

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.rows)

    @property
    def cost(self) -> float:
        return sum(r.cost for r in self.rows)

    def latency(self, q: float) -> float:
        ordered = sorted(r.latency for r in self.rows)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run(label: str, turbo, passages: list[str], questions: list[str], embedder: CachedEmbedder, *,
        threads: int = 8, context_tokens: int = 600) -> Report:
    """One pass over the question set (batch mode: a thread pool through ``dspy.Parallel``)."""
    embedded, started = embedder.embedded, time.perf_counter()
    program = Measured(RAG(turbo, passages, embedder, context_tokens=context_tokens), turbo.prices)
    rows = dspy.Parallel(num_threads=threads, disable_progress_bar=True)([(program, {"question": q}) for q in questions])
    return Report(label, [r for r in rows if r is not None], time.perf_counter() - started, embedder.embedded - embedded)


def lms(offline: bool, latency: float):
    """How the router builds each tier's LM: the offline LM named as the tier's model, or ``dspy.LM``."""
    if not offline:
        return None
    return lambda model, **kwargs: offline_lm(model, latency=latency, jitter=0.25, **kwargs)


def print_reports(reports: list[Report], show: int = 8) -> None:
    for report in reports:
        print(f"\n{report.label} run: {len(report.rows)} questions")
        print(f"  {'question':<58} {'model':<20} {'calls':>5} {'tokens':>6} {'cost $':>9} {'ms':>6}  answer")
        for row in report.rows[:show]:
            model = ",".join(m.split("/")[-1] for m in row.models) or "(cache)"
            print(f"  {row.question[:58]:<58} {model:<20} {row.lm_calls:>5} {row.tokens:>6} {row.cost:>9.6f} "
                  f"{row.latency * 1000:>6.0f}  {row.answer[:60]}")
        if len(report.rows) > show:
            print(f"  ... {len(report.rows) - show} more")
    print(f"\n{'run':<6} {'wall s':>7} {'LM calls':>8} {'tokens':>8} {'$/question':>11} {'p50 ms':>7} {'p95 ms':>7} {'embedded':>9}")
    for r in reports:
        n = max(1, len(r.rows))
        print(f"{r.label:<6} {r.wall:>7.2f} {r.lm_calls:>8} {r.tokens:>8} {r.cost / n:>11.6f} "
              f"{r.latency(0.5) * 1000:>7.0f} {r.latency(0.95) * 1000:>7.0f} {r.embedded:>9}")


def main(argv: list[str] | None = None) -> list[Report]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--towns", type=int, default=300, help="corpus size: 8 passages per town (default 300: 2,400)")
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--context-tokens", type=int, default=600, help="token budget of the retrieved context")
    parser.add_argument("--latency", type=float, default=0.3, help="offline LM seconds per call")
    parser.add_argument("--config", default=str(HERE / "turbo.yaml"))
    parser.add_argument("--offline", action="store_true", help="the offline LM even when OPENAI_API_KEY is set")
    parser.add_argument("--show", type=int, default=8, help="questions to print per run")
    parser.add_argument("--keep-cache", action="store_true",
                        help="keep what an earlier process stored in the file tier (default: clear it, so the first run is cold)")
    args = parser.parse_args(argv)
    offline = args.offline or not os.environ.get("OPENAI_API_KEY")

    towns = rag_corpus.towns(args.towns)
    passages, questions = rag_corpus.passages(towns), rag_corpus.questions(towns, args.questions)
    print(f"corpus: {len(passages):,} passages; {len(questions)} questions; "
          f"{'offline LM' if offline else 'real models (OPENAI_API_KEY)'}")
    with dspy_turbo.load(args.config) as turbo:  # installed: every LM call and cached stage goes through it
        if not args.keep_cache:
            turbo.clear()  # this example's namespace only
        router = turbo.router(lm_factory=lms(offline, args.latency))
        embedder = CachedEmbedder(turbo)
        labels = ("first", "second") if args.keep_cache else ("cold", "warm")
        with dspy.context(lm=router):
            reports = [run(label, turbo, passages, questions, embedder, threads=args.threads,
                           context_tokens=args.context_tokens) for label in labels]
        print_reports(reports, args.show)
        stats = turbo.stats()
        d = stats["dollars"]
        print(f"\nrouting: {stats['routing']['decisions']}; spent ${d['spent']:.6f}, saved by cache ${d['saved']:.6f}, "
              f"saved by routing ${d['saved_by_routing']:.6f} (vs. always {router.tiers[-1].model})")
    return reports


if __name__ == "__main__":
    main()
