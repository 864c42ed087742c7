"""Calibration of the semantic cache's threshold on labelled pairs (``dspy-turbo calibrate``).

The pairs are embedded with the configured embedder, every threshold is swept, and the
table shows precision, false-hit rate and recall with 95 % Wilson intervals, cosine alone
against the cache's whole decision (the guards, and the verifier when on). The threshold
recommended is the lowest one whose precision meets the target there and at every
stricter threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from dspy_turbo import ConfigError, ConfigIssue
from dspy_turbo.plugin.components import ComponentUnavailable

from .guards import features, guard_reason

if TYPE_CHECKING:
    from .verifier import Verifier


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sound at 0 and at n, unlike the normal one)."""
    if total == 0:
        return (0.0, 1.0)
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def read_pairs(path: str) -> list[tuple[str, str, int]]:
    """Labelled pairs from JSON, JSON Lines, or either gzip'd. Each item has the two texts
    as ``text_a``/``text_b`` (or ``a``/``b``, ``query``/``cached``, ``origin``/``similar``)
    and a ``label`` (1 = same question, 0 = different; missing means 1)."""
    import gzip
    import json

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        raw = fh.read()
    stripped = raw.lstrip()
    items = json.loads(raw) if stripped.startswith("[") else [json.loads(line) for line in raw.splitlines() if line.strip()]
    pairs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: item {i} is a {type(item).__name__}, expected an object")
        for a_name, b_name in (("text_a", "text_b"), ("a", "b"), ("query", "cached"), ("origin", "similar")):
            if a_name in item and b_name in item:
                break
        else:
            raise ValueError(f"{path}: item {i} has neither text_a/text_b, a/b, query/cached nor origin/similar")
        label = item.get("label", 1)
        if label not in (0, 1, True, False, "0", "1"):
            raise ValueError(f"{path}: item {i} has label {label!r}; expected 0 or 1")
        pairs.append((str(item[a_name]), str(item[b_name]), int(label)))
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs


@dataclass
class SweepRow:
    threshold: float
    tp: int
    fp: int
    positives: int
    negatives: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float:
        return self.tp / self.positives if self.positives else 0.0

    @property
    def false_hit_rate(self) -> float:
        return self.fp / self.negatives if self.negatives else 0.0


def sweep(scores: list[float], labels: list[int], passed: list[bool], thresholds: list[float]) -> list[SweepRow]:
    """For each threshold: true and false hits when a pair hits at ``score >= t`` and the guards pass."""
    positives = sum(labels)
    rows = []
    for t in thresholds:
        tp = sum(1 for s, y, g in zip(scores, labels, passed, strict=True) if g and s >= t and y)
        fp = sum(1 for s, y, g in zip(scores, labels, passed, strict=True) if g and s >= t and not y)
        rows.append(SweepRow(t, tp, fp, positives, len(labels) - positives))
    return rows


def recommend(rows: list[SweepRow], target: float) -> SweepRow | None:
    """The lowest threshold whose precision meets ``target`` there and at every stricter threshold."""
    best = None
    for row in sorted(rows, key=lambda r: -r.threshold):
        if row.precision is not None and row.precision < target:
            break
        if row.precision is not None:
            best = row
    return best


def score_pairs(embed, pairs: list[tuple[str, str, int]], guards: Any = None, batch: int = 256,
                verifier: Verifier | None = None) -> tuple[list[float], list[bool], list[bool]]:
    """Cosine of each pair (embedded in batches), whether the guards let it through, and
    whether the guards and then the verifier do (the verifier's outcome is the guards' without one)."""
    import numpy as np

    texts = list(dict.fromkeys(t for a, b, _ in pairs for t in (a, b)))
    vectors = {}
    for i in range(0, len(texts), batch):
        chunk = texts[i:i + batch]
        for text, vector in zip(chunk, embed(chunk), strict=True):
            vectors[text] = vector
    scores = [float(np.dot(vectors[a], vectors[b])) for a, b, _ in pairs]
    passed = [guard_reason(features(a), features(b), guards) is None for a, b, _ in pairs]
    if verifier is None:
        return scores, passed, passed
    verifier.warm([t for (a, b, _), ok in zip(pairs, passed, strict=True) if ok for t in (a, b)])
    verified = [ok and verifier.reason(a, b) is None for (a, b, _), ok in zip(pairs, passed, strict=True)]
    return scores, passed, verified


def calibrate_command(args, parse) -> int:
    """``dspy-turbo calibrate``: embed labelled pairs, sweep thresholds, print the table and the choice.
    ``parse(path)``: the validated config (the command line's ``cli.parse``)."""
    from .feature import SemanticGuards, SemanticVerifier

    if not 0.5 <= args.target_precision <= 1.0:
        raise ConfigError([ConfigIssue("--target-precision", f"{args.target_precision} is outside 0.5..1.0")], "calibrate")
    try:
        pairs = read_pairs(args.pairs)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue("--pairs", str(exc))], "calibrate") from None
    if args.limit:
        pairs = pairs[: args.limit]
    guards: Any = SemanticGuards()
    verifier_settings = SemanticVerifier()
    if args.config:
        config = parse(args.config)
        spec = config.component("cache.semantic.embedder")
        if spec is None:
            raise ConfigError([ConfigIssue("cache.semantic", "no semantic cache configured")], config.source)
        section = config.section("cache.semantic")
        guards, verifier_settings = section.guards, section.verifier
    else:
        from .embedder import SentenceTransformerEmbedder as cls

        spec = SimpleNamespace(cls=cls, options=cls.Options(), path="cache.semantic.embedder")
    try:
        embedder = spec.cls.from_options(spec.options, None)
    except ComponentUnavailable as exc:
        raise ConfigError([ConfigIssue(spec.path, str(exc))], "calibrate") from None
    verifier = None
    if (verifier_settings.enabled or args.verifier) and not args.no_guards:
        from .verifier import Verifier

        try:
            verifier = Verifier(verifier_settings, embedder, kept=None)
        except (ImportError, TypeError) as exc:
            raise ConfigError([ConfigIssue("cache.semantic.verifier", str(exc))], "calibrate") from None
    labels = [y for _, _, y in pairs]
    positives = sum(labels)
    print(f"{len(pairs)} pairs ({positives} same, {len(pairs) - positives} different); embedding...", flush=True)
    scores, guarded, passed = score_pairs(embedder.embed, pairs, None if args.no_guards else guards, verifier=verifier)
    if args.no_guards:
        guarded = passed = [True] * len(pairs)
    thresholds = [round(0.80 + i * 0.005, 3) for i in range(40)]
    rows = sweep(scores, labels, passed, thresholds)
    plain = sweep(scores, labels, [True] * len(pairs), thresholds)
    previous = sweep(scores, labels, guarded, thresholds)
    decision = "cosine alone" if args.no_guards else "guards and verifier" if verifier else "guards"
    print(f"\nthe decision: {decision}; plain = cosine alone, guards = without the verifier (precision / recall)")
    print(f"{'threshold':>9}  {'plain':>13}  {'guards':>13}  {'precision (95% CI)':>24}  {'false-hit rate (95% CI)':>25}"
          f"  {'recall (95% CI)':>22}")

    def short(row: SweepRow) -> str:
        return f"{row.precision:.3f} / {row.recall:.3f}" if row.precision is not None else f"  -   / {row.recall:.3f}"

    for row, p_row, g_row in zip(rows, plain, previous, strict=True):
        p = f"{row.precision:.3f}" if row.precision is not None else "  -  "
        p_lo, p_hi = wilson(row.tp, row.tp + row.fp)
        f_lo, f_hi = wilson(row.fp, row.negatives)
        r_lo, r_hi = wilson(row.tp, row.positives)
        print(f"{row.threshold:>9.3f}  {short(p_row):>13}  {short(g_row):>13}  {p:>6} [{p_lo:.3f}, {p_hi:.3f}]{'':>5}"
              f"  {row.false_hit_rate:>7.4f} [{f_lo:.4f}, {f_hi:.4f}]  {row.recall:>6.3f} [{r_lo:.3f}, {r_hi:.3f}]")
    if not positives or positives == len(pairs):
        print("\nthe pairs need both labels (0 and 1) to estimate precision; no threshold recommended")
        return 2
    choice = recommend(rows, args.target_precision)
    if choice is None:
        print(f"\nno threshold up to {thresholds[-1]} reaches precision {args.target_precision}; "
              "the pairs are too hard for this embedder, or add guards")
        return 1
    lo, _ = wilson(choice.tp, choice.tp + choice.fp)
    print(f"\nthreshold {choice.threshold:.3f}: precision {choice.precision:.3f} (95% CI lower bound {lo:.3f}), "
          f"false-hit rate {choice.false_hit_rate:.4f}, recall {choice.recall:.3f}")
    print("put in the YAML:\n\ncache:\n  semantic:\n    threshold: " + f"{choice.threshold:.3f}")
    return 0
