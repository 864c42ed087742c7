"""``dspy-turbo demo``: a real DSPy program run twice through dspy-turbo, first cold, then warm.

The program is a small retrieval-augmented question answerer (:class:`QAPipeline`): one
``ChainOfThought`` rewrites the question into a search query, a keyword retriever picks
facts from a tiny in-memory corpus, and a second ``ChainOfThought`` answers from them. It
runs over ~100 questions with DSPy's own parallel runner (``Module.batch``), against the
offline LM (:mod:`dspy_turbo.engines.offline`): a real ``dspy.LM`` that answers deterministically
after a realistic delay and reports token usage, priced as ``openai/gpt-4o-mini`` from
the price table DSPy ships. No network, no API key.

Both runs share one Turbo, loaded from the embedded default config and installed as
DSPy's cache:

* **cold**: the cache starts empty. Every distinct LM call goes to the model once;
  ~10% of the questions are asked twice, so it already shows in-run hits (a question
  asked again after its first answer was stored) and single-flight (a question asked
  again while its first answer is still being generated waits for it: one LM call).
* **warm**: the same questions again. Every LM call is a cache hit: no LM calls, no
  tokens, no dollars, and the answers are identical to the cold run's.

The before/after table compares wall time, LM calls, hit rate (per tier), coalesced
calls, tokens and dollars spent and saved, and latency per question and per LM call.
"""

from __future__ import annotations

import os

# DSPy prices models from its bundled copy of LiteLLM's price map; never fetch it.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import dspy  # noqa: E402
from dspy.utils.callback import BaseCallback  # noqa: E402

from ..engines.offline import offline_lm  # noqa: E402
from ..host.config import ConfigError  # noqa: E402
from ..host.plugin_manager import PluginError  # noqa: E402
from ..host.turbo import Turbo, load  # noqa: E402

MODEL = "openai/gpt-4o-mini"

# -- the corpus and the retriever ----------------------------------------------------------

FACTS = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris and is about 330 metres tall.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into glucose and oxygen.",
    "The Moon orbits Earth about every 27 days, and its gravity causes most of the ocean tides.",
    "Python is a programming language created by Guido van Rossum and first released in 1991.",
    "The Great Wall of China stretches for thousands of kilometres and was built over many dynasties.",
    "DNA is the double-helix molecule that carries the genetic instructions of living things.",
    "The Amazon River carries more water than any other river and flows through Brazil to the Atlantic.",
    "Mount Everest, 8,849 metres high on the Nepal-China border, is the highest mountain above sea level.",
    "Gutenberg's printing press, built around 1440, made books cheap and spread literacy across Europe.",
    "Black holes are regions of space where gravity is so strong that not even light can escape.",
    "Honeybees pollinate a third of our crops and tell each other where flowers are with a waggle dance.",
    "The Roman Empire ruled the Mediterranean for centuries; its western half fell in 476 AD.",
    "Volcanoes form where molten rock from the mantle reaches the surface, often at plate boundaries.",
    "The internet grew out of ARPANET, started in 1969, and links networks with the TCP/IP protocols.",
    "Penguins are flightless seabirds of the Southern Hemisphere that swim with flipper-like wings.",
    "The Pacific Ocean is the largest and deepest ocean; the Mariana Trench lies in it.",
    "Vaccines train the immune system to recognise a pathogen without causing the disease.",
    "Mars is called the red planet because iron oxide dust covers it; it has two small moons.",
]

_STOPWORDS = frozenset(
    "a an and are as at be by did do does for from how in is it its me of on one or so that the their this to "
    "was what when where which who why with would you your about give tell explain".split()
)
_WORD = re.compile(r"[a-z0-9]+")


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


_FACT_TERMS = [_terms(fact) for fact in FACTS]


def retrieve(query: str, k: int = 2) -> list[str]:
    """The ``k`` facts sharing most words with ``query`` (ties: corpus order)."""
    terms = _terms(query)
    scored = sorted(range(len(FACTS)), key=lambda i: (-len(terms & _FACT_TERMS[i]), i))
    return [FACTS[i] for i in scored[:k] if terms & _FACT_TERMS[i]]


# -- the program ---------------------------------------------------------------------------


class QAPipeline(dspy.Module):
    """Rewrite the question into a search query, retrieve facts, answer from them."""

    def __init__(self, k: int = 2):
        super().__init__()
        self.k = k
        self.rewrite = dspy.ChainOfThought("question -> search_query")
        self.answer = dspy.ChainOfThought("question, context -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        query = self.rewrite(question=question).search_query
        facts = retrieve(f"{question} {query}", self.k)
        context = "\n".join(f"- {fact}" for fact in facts) or "(no relevant facts found)"
        prediction = self.answer(question=question, context=context)
        return dspy.Prediction(search_query=query, context=context, answer=prediction.answer)


# -- the questions -------------------------------------------------------------------------

TOPICS = [
    "the Eiffel Tower", "photosynthesis", "the Moon", "Python", "the Great Wall of China", "DNA",
    "the Amazon River", "Mount Everest", "the printing press", "black holes", "honeybees", "the Roman Empire",
    "volcanoes", "the internet", "penguins", "the Pacific Ocean", "vaccines", "Mars",
]
TEMPLATES = [
    "What is {topic} best known for?",
    "Give me one surprising fact about {topic}.",
    "Why does {topic} matter to people today?",
    "How would you explain {topic} to a ten-year-old?",
    "What is a common misconception about {topic}?",
    "Summarise the history of {topic} in one sentence.",
]


def build_questions(n: int = 100) -> list[str]:
    """``n`` questions, about 10% of them asked twice.

    Half of the repeats come right behind their first asking, so both run at the same
    time (single-flight makes them one LM call); the other half come at the end, after
    the first answer is stored (in-run cache hits). Deterministic: same ``n``, same list.
    """
    repeats = n // 10
    unique_count = n - repeats
    unique = [template.format(topic=topic) for template in TEMPLATES for topic in TOPICS]
    base = list(unique)
    take = 2
    while len(unique) < unique_count:  # beyond the templates: numbered variants
        unique += [f"{question} (take {take})" for question in base]
        take += 1
    unique = unique[:unique_count]

    concurrent, later = repeats - repeats // 2, repeats // 2
    step = unique_count // (concurrent + 1) if concurrent else 0
    twins = {step * (i + 1) for i in range(concurrent)}
    questions = []
    for i, question in enumerate(unique):
        questions.append(question)
        if i in twins:
            questions.append(question)
    questions += [unique[3 * i % unique_count] for i in range(later)]
    return questions


# -- measuring -----------------------------------------------------------------------------


class QuestionTimer(BaseCallback):
    """Latency of each question: times every top-level call of ``program``.

    A DSPy callback, so the program itself is untouched.
    """

    def __init__(self, program: dspy.Module):
        self.program = program
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self.latencies: list[float] = []

    def reset(self) -> None:
        with self._lock:
            self._started.clear()
            self.latencies = []

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if instance is self.program:
            with self._lock:
                self._started[call_id] = time.perf_counter()

    def on_module_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        now = time.perf_counter()
        with self._lock:
            started = self._started.pop(call_id, None)
            if started is not None:
                self.latencies.append(now - started)


@dataclass
class Run:
    label: str
    wall: float
    stats: dict[str, Any]
    engine_calls: int
    answers: list[str | None]
    latencies: list[float]

    @property
    def failures(self) -> int:
        return sum(answer is None for answer in self.answers)


def run_once(label: str, turbo: Turbo, program: dspy.Module, examples: list[dspy.Example], lm: dspy.LM,
             timer: QuestionTimer, threads: int) -> Run:
    turbo.reset_stats()
    timer.reset()
    engine_calls = lm.engine.calls
    started = time.perf_counter()
    predictions = program.batch(examples, num_threads=threads, disable_progress_bar=True)
    wall = time.perf_counter() - started
    answers = [p.answer if isinstance(p, dspy.Prediction) else None for p in predictions]
    return Run(label, wall, turbo.stats(), lm.engine.calls - engine_calls, answers, list(timer.latencies))


def percentile(samples: list[float], q: float) -> float | None:
    """The same nearest-rank percentile as ``turbo.stats()``."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the report ----------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.001:
        ms = seconds * 1000
        return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def _pair(p50: float | None, p95: float | None) -> str:
    return "-" if p50 is None else f"{_duration(p50)} / {_duration(p95)}"


def _stats_pair(latency: dict[str, Any]) -> str:
    if not latency.get("count"):
        return "-"
    return _pair(latency["p50_ms"] / 1000, latency["p95_ms"] / 1000)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def table_rows(run: Run, tiers: list[str]) -> list[tuple[str, str]]:
    s = run.stats
    rows = [
        ("wall time", _duration(run.wall)),
        ("LM calls", f"{s['lm_calls']:,}"),
        ("cache hit rate", _percent(s["hit_rate"])),
        *((f"  hits in tier '{tier}'", f"{s['hits'].get(tier, 0):,}") for tier in tiers),
        ("  misses", f"{s['misses']:,}"),
        ("coalesced (single-flight)", f"{s['coalesced']:,}"),
        ("tokens spent", f"{s['tokens']['spent']:,}"),
        ("tokens saved", f"{s['tokens']['saved']:,}"),
        ("$ spent", f"${s['dollars']['spent']:.4f}"),
        ("$ saved", f"${s['dollars']['saved']:.4f}"),
        ("latency per question p50 / p95", _pair(percentile(run.latencies, 0.5), percentile(run.latencies, 0.95))),
        ("  LM call p50 / p95", _stats_pair(s["latency"]["miss"])),
        ("  cache hit p50 / p95", _stats_pair(s["latency"]["hit"])),
    ]
    if run.failures:
        rows.append(("failed questions", f"{run.failures:,}"))
    return rows


def render_table(cold: Run, warm: Run, tiers: list[str]) -> str:
    left, right = table_rows(cold, tiers), table_rows(warm, tiers)
    labels = [label for label, _ in left]
    width = max(len(label) for label in labels)
    cells = [value for _, value in left + right] + ["cold (before)", "warm (after)"]
    col = max(len(cell) for cell in cells) + 2
    lines = [f"  {'':<{width}}{'cold (before)':>{col}}{'warm (after)':>{col}}",
             f"  {'-' * width}{'-' * col}{'-' * col}"]
    right_values = dict(right)
    for label, value in left:
        lines.append(f"  {label:<{width}}{value:>{col}}{right_values.get(label, '-'):>{col}}")
    return "\n".join(lines)


# -- the entry point -----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="dspy-turbo demo",
        description="Run a DSPy question-answering program over ~100 questions with the offline LM, "
                    "cold then warm, through dspy-turbo, and print a before/after table.",
    )
    parser.add_argument("--questions", type=_positive_int, default=100, metavar="N",
                        help="how many questions, about 10%% of them repeated (default: 100)")
    parser.add_argument("--latency", type=_non_negative_float, default=0.4, metavar="SECONDS",
                        help="the offline LM's latency per call, +/-25%% (default: 0.4)")
    parser.add_argument("--threads", type=_positive_int, default=16, metavar="N",
                        help="DSPy's parallel runner threads (default: 16)")
    parser.add_argument("--config", metavar="PATH", default=None,
                        help="a dspy-turbo YAML config (default: the embedded default)")
    parser.add_argument("--json", action="store_true", help="print the cold and warm stats as JSON instead of the table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when the warm answers equal the cold ones, 1 when not, 2 for a bad config."""
    args = parse_args(argv)

    def say(*parts: Any, **kwargs: Any) -> None:  # progress lines; --json prints only the JSON
        if not args.json:
            print(*parts, **kwargs)

    questions = build_questions(args.questions)
    examples = [dspy.Example(question=q).with_inputs("question") for q in questions]
    repeated = len(questions) - len(set(questions))
    lm = offline_lm(MODEL, latency=args.latency, jitter=0.25)
    program = QAPipeline()
    timer = QuestionTimer(program)

    scratch = None
    if args.config is None and "DSPY_TURBO_CACHE_DIR" not in os.environ:
        # The embedded default includes the file tier when it is installed: give the demo a
        # directory of its own, so "cold" is really cold and the user's cache is untouched.
        scratch = tempfile.TemporaryDirectory(prefix="dspy-turbo-demo-")
        os.environ["DSPY_TURBO_CACHE_DIR"] = scratch.name
    try:
        turbo = load(args.config).install()
    except (ConfigError, PluginError) as exc:
        print(f"dspy-turbo demo: {exc}", file=sys.stderr)
        return 2
    tiers = [tier.name for tier in turbo.cache.tiers]
    say(f"dspy-turbo demo: QAPipeline (2 x ChainOfThought + retriever) over {len(questions)} questions "
        f"({repeated} asked twice)")
    say(f"  LM: offline {MODEL}, {args.latency:g} s +/-25% per call, priced from DSPy's price table; "
        f"{args.threads} threads")
    say(f"  cache: {turbo.config.source} config, tiers: {' -> '.join(tiers)}")
    try:
        with dspy.context(lm=lm, callbacks=[timer]):
            say("  cold run (empty cache) ...", end=" ", flush=True)
            cold = run_once("cold", turbo, program, examples, lm, timer, args.threads)
            say(_duration(cold.wall))
            say("  warm run (same questions) ...", end=" ", flush=True)
            warm = run_once("warm", turbo, program, examples, lm, timer, args.threads)
            say(_duration(warm.wall))
        restart = None
        if any(t.backend.name != "memory" for t in turbo.cache.tiers):
            # A persistent tier: a new Turbo (as in a new process) starts with an empty memory tier.
            turbo.close()
            turbo = load(args.config).install()
            with dspy.context(lm=lm, callbacks=[timer]):
                say("  restart (new Turbo, empty memory tier) ...", end=" ", flush=True)
                restart = run_once("restart", turbo, program, examples, lm, timer, args.threads)
                say(_duration(restart.wall))
    finally:
        turbo.close()
        if scratch is not None:
            os.environ.pop("DSPY_TURBO_CACHE_DIR", None)
            scratch.cleanup()

    mismatches = sum(c != w or c is None for c, w in zip(cold.answers, warm.answers, strict=True))
    speedup = cold.wall / warm.wall if warm.wall > 0 else float("inf")
    if args.json:
        if restart is not None:
            stats_restart = {"restart": restart.stats}
        else:
            stats_restart = {}
        demo = {"questions": len(questions), "repeated": repeated, "latency": args.latency, "threads": args.threads,
                "wall_s": {"cold": round(cold.wall, 4), "warm": round(warm.wall, 4)}, "speedup": round(speedup, 2),
                "engine_calls": {"cold": cold.engine_calls, "warm": warm.engine_calls}, "mismatches": mismatches}
        print(json.dumps({"cold": cold.stats, "warm": warm.stats, **stats_restart, "demo": demo}, indent=2))
        return 0 if mismatches == 0 else 1

    print()
    print(render_table(cold, warm, tiers))
    print()
    print(f"  speed-up: {speedup:.1f}x (cold wall time / warm wall time)")
    for run in (cold, warm):
        agree = "match" if run.engine_calls == run.stats["lm_calls"] else "MISMATCH"
        print(f"  {run.label} LM calls: {run.stats['lm_calls']} counted by dspy-turbo, "
              f"{run.engine_calls} served by the offline engine ({agree})")
    verdict = "identical" if mismatches == 0 else "DIFFERENT"
    print(f"  answers: warm {verdict} to cold ({len(questions) - mismatches}/{len(questions)} equal, "
          f"{mismatches} mismatches)")
    if restart is not None:
        hits = ", ".join(f"{tier} {n}" for tier, n in sorted(restart.stats["hits"].items())) or "none"
        same = sum(c == r for c, r in zip(cold.answers, restart.answers, strict=True))
        print(f"  restart: {_duration(restart.wall)}, {restart.stats['lm_calls']} LM calls, hits by tier: {hits}; "
              f"{same}/{len(questions)} answers equal to cold")
    persisted = {t.name for t in turbo.cache.tiers if t.backend.name != "memory"} & set(cold.stats["hits"])
    if persisted:
        print(f"  note: the cold run found entries from an earlier run in {', '.join(sorted(persisted))}; "
              "clear them for a truly cold start.")
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
