"""Model selection: which tier's model answers a request.

A model selector is a component (``kind = "model_selector"``) chosen by ``routing: {type: ...}``.
Every selector shares the tier list and the optional budget; the built-in ``complexity``
selector scores the request's features into ``[0, 1]`` and picks the tier whose score
range holds it::

    routing:
      type: complexity
      priority: balanced          # speed: prefer cheaper tiers; quality: prefer stronger ones
      tiers:                      # cheapest first, strongest last
        - {name: small, model: openai/gpt-4o-mini, max_score: 0.5}
        - {name: large, model: openai/gpt-4o}
      budget: {limit: 5.00, period: 1d, on_exceeded: cheapest}

The router (``router.py``) asks the ``dspy_turbo_select_model`` hook first and this
selector only when every hook implementation returned ``None``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ..host.components import Component, Options
from ..host.units import Duration


class ModelTier(Options):
    """One ``routing.tiers`` entry: a model and the complexity scores it takes (not a cache tier)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    model: str = Field(min_length=1)
    """A DSPy/LiteLLM model name (``openai/gpt-4o-mini``); priced from the table or ``costs.prices``."""
    max_score: float | None = Field(default=None, gt=0.0, le=1.0)
    """Upper end (exclusive) of the scores this tier takes; the last tier takes everything above.
    Unset: the tiers split ``[0, 1]`` evenly."""
    lm_kwargs: dict[str, Any] = {}
    """Passed to ``dspy.LM`` for this tier (``api_base``, ``max_tokens``, ``temperature``...)."""


class BudgetSettings(Options):
    limit: float = Field(gt=0)
    """Dollars that routed LM calls may spend per period."""
    period: Duration = Field(default=86400.0, gt=0)
    """Windows aligned to UTC multiples of the period: ``1d`` resets at midnight UTC."""
    on_exceeded: Literal["cheapest", "error"] = "cheapest"
    """``cheapest``: route every request to the first tier; ``error``: raise ``BudgetExceeded``
    (a request already in the cache is still answered)."""


class SelectorOptions(Options):
    """What every model selector's options share: the tiers and the budget."""

    tiers: list[ModelTier] = Field(min_length=1)
    """Cheapest first, strongest last. The last tier is the baseline of "saved by routing"."""
    budget: BudgetSettings | None = None

    @model_validator(mode="after")
    def _check_tiers(self):
        names = [t.name for t in self.tiers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tier names must be unique; repeated: {', '.join(dupes)}")
        bounds = [t.max_score for t in self.tiers[:-1] if t.max_score is not None]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError("tiers[].max_score must increase from the cheapest tier to the strongest")
        return self


@dataclass
class Decision:
    """One routing decision, as the router reports it."""

    tier: str
    model: str
    score: float | None = None
    source: str = "selector"
    """``selector``, ``hook`` (a ``dspy_turbo_select_model`` implementation), ``hint`` (a ``tier=``
    argument on the call) or ``budget`` (the budget was reached)."""
    features: dict[str, float] = field(default_factory=dict)
    estimated_cost: float | None = None


class ModelSelector(Component):
    """Base of model selectors: subclass, set ``name`` and implement :meth:`select`."""

    kind: ClassVar[str] = "model_selector"
    Options: ClassVar[type[SelectorOptions]] = SelectorOptions

    @property
    def tiers(self) -> list[ModelTier]:
        return list(self.options.tiers)

    def tier_named(self, name: str) -> ModelTier | None:
        return next((t for t in self.options.tiers if t.name == name), None)

    def tier_for_model(self, model: str) -> ModelTier | None:
        return next((t for t in self.options.tiers if t.model == model), None)

    def select(self, request: dict[str, Any]) -> Decision:
        raise NotImplementedError

    def tier_for_score(self, score: float) -> ModelTier:
        tiers = self.options.tiers
        n = len(tiers)
        for i, tier in enumerate(tiers[:-1]):
            bound = tier.max_score if tier.max_score is not None else (i + 1) / n
            if score < bound:
                return tier
        return tiers[-1]


# -- the request's text ----------------------------------------------------------------------------

_OBJECTIVE = re.compile(r"your objective is:\s*(.*?)\s*$", re.S | re.I)
_SECTION = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with|\Z)", re.S)
_OUTPUT_FIELDS = re.compile(r"^\s*\d+\.\s*`([^`]+)`", re.M)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


@dataclass
class RequestText:
    """What a selector reads: the task (signature instructions), the inputs, the output fields."""

    task: str
    inputs: str
    outputs: list[str]


def request_text(request: dict[str, Any]) -> RequestText:
    """The parts of an LM request that say how hard it is, without DSPy's boilerplate.

    DSPy's adapters put the signature (fields, instructions) in the system message and the
    input fields, as ``[[ ## name ## ]]`` sections, in the last user message; earlier
    user/assistant pairs are few-shot demos and say nothing about this request.
    """
    messages = request.get("messages") or []
    if not messages and request.get("prompt"):
        messages = [{"role": "user", "content": request["prompt"]}]
    system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    task, outputs = "", []
    if system:
        match = _OBJECTIVE.search(system)
        task = match.group(1) if match else system
        block = system.split("Your output fields are:", 1)
        if len(block) == 2:
            outputs = _OUTPUT_FIELDS.findall(block[1].split("All interactions will be structured", 1)[0])
    sections = _SECTION.findall(user)
    inputs = "\n".join(value.strip() for _, value in sections) if sections else user
    if re.fullmatch(r"\s*Given the fields .*?, produce the fields .*?\.\s*", task, re.S):
        task = ""  # DSPy's generated instruction for a signature without a docstring: no signal
    return RequestText(task, inputs, outputs)


# -- the built-in complexity selector ----------------------------------------------------------------


def _markers(*patterns: str) -> tuple[re.Pattern, tuple[re.Pattern, ...]]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.I | re.M), tuple(re.compile(p, re.I | re.M) for p in patterns)


def _count(markers: tuple[re.Pattern, tuple[re.Pattern, ...]], text: str) -> int:
    """Matches of every pattern, each counted on its own (one phrase may show two signals).
    One scan with all of them first: most requests match none, and routing runs on every call."""
    anything, patterns = markers
    if not anything.search(text):
        return 0
    return sum(len(p.findall(text)) for p in patterns)


_CODE = _markers(
    r"```", r"^\s*(def|class|import|from \w+ import|#include|public static|fn |func |let |const |var )\b",
    r"\b(function|lambda|regex|regular expression|stack ?trace|traceback|segfault|compile[rds]?|refactor|debug\w*|"
    r"unit tests?|algorithm|big-?o|time complexity|recursion|recursive|SQL|query plan|API endpoint|bash script|python|"
    r"javascript|typescript|rust|golang|java|c\+\+|kubernetes|dockerfile|implement\w*)\b",
    r"[{};]\s*$", r"\w+\([^()]*\)\s*(=>|->|\{)", r"\b\w+Error\b", r"\bO\(n",
    r"\bwrite (a |an |the )?(\w+ )?(function|script|query|program|class|parser|module|test)s?\b",
)
_MATH = _markers(
    r"\b(prove|proof|theorem|lemma|integral|integrate|derivative|differentiate|eigen\w*|matrix|matrices|probability|"
    r"expected value|variance|equation|inequality|polynomial|factori[sz]e|modulo|prime factor\w*|combinatoric\w*|"
    r"permutations?|logarithm|limit of|series|vector space|optimi[sz]ation|statistically|bayes\w*|irrational|"
    r"by induction|quadratic|roots of)\b",
    r"\\(frac|sum|int|sqrt|lim)", r"\d\s*[*/]\s*\d", r"[a-z0-9]\s*\^\s*\d", r"\d\s*[-+]\s*\d+\s*=",
    r"\bsolve for\b", r"[∫∑√π∞≤≥]",
)
_REASONING = _markers(
    r"\bstep[- ]by[- ]step\b", r"\b(explain why|why does|why do|why is|justify|analy[sz]\w*|compare|comparing|contrast|"
    r"trade-?offs?|pros and cons|evaluate|critique|assess|design|architect\w*|strateg\w*|plan (a|an|the|for)|"
    r"derive|derivation|reason (about|through)|implications?|second-order|root cause|diagnos\w*|multi-?step|hypothes[ie]s|counterfactual|"
    r"what would happen|under what conditions|recommend\w*)\b",
    r"\b(first|then|finally|afterwards|next),", r"^\s*\d+[.)]\s+\w",
)
_HARD_HINTS = _markers(r"\b(in (great )?detail|thorough(ly)?|comprehensive(ly)?|rigorous(ly)?|in depth|detailed|"
                       r"carefully|nuanced|exhaustive(ly)?)\b")
_EASY_HINTS = _markers(r"\b(briefly|in one (word|sentence|line)|one[- ]word|short answer|yes or no|true or false|"
                       r"just (say|tell|give|name)|quick(ly)?|simple|tl;?dr|translate|spell)\b")

DEFAULT_WEIGHTS = {
    "length": 0.45,       # long inputs: summarising or reading a document is harder
    "code": 0.6,          # code, stack traces, programming vocabulary
    "math": 0.6,          # formulas, proofs, statistics
    "reasoning": 0.6,     # multi-step, comparisons, design, diagnosis
    "outputs": 0.3,       # many output fields to fill in one go
    "hard_hint": 0.4,     # "in detail", "rigorously"
    "easy_hint": 0.5,     # "briefly", "yes or no": halves the score at full weight
}
_PRIORITY_SHIFT = {"speed": -0.15, "balanced": 0.0, "quality": 0.15}


class ComplexitySelector(ModelSelector):
    """Scores request features into [0, 1]; each tier takes a score range.

    Features (each in [0, 1]): ``length`` (input tokens, saturating at ``long_input_tokens``),
    ``code`` and ``math`` markers (one is enough), ``reasoning`` markers (two are), ``outputs``
    (output fields beyond the first), and lexical hints. The score is a noisy-OR of the
    weighted features, so one strong signal is enough for a strong tier and several weak ones
    add up; an easy hint ("briefly", "yes or no") scales it down. ``priority`` shifts it:
    ``speed`` -0.15 (cheaper tiers), ``quality`` +0.15.
    """

    name: ClassVar[str] = "complexity"

    class Options(SelectorOptions):
        priority: Literal["speed", "balanced", "quality"] = "balanced"
        weights: dict[str, float] = {}
        """Override some of the default feature weights (each in [0, 1])."""
        long_input_tokens: int = Field(default=1500, gt=0)
        """Input length (estimated tokens) at which the length feature saturates."""

        @model_validator(mode="after")
        def _check_weights(self):
            unknown = sorted(set(self.weights) - set(DEFAULT_WEIGHTS))
            if unknown:
                raise ValueError(f"unknown feature weight {', '.join(map(repr, unknown))}; features: {', '.join(DEFAULT_WEIGHTS)}")
            bad = sorted(k for k, v in self.weights.items() if not 0.0 <= v <= 1.0)
            if bad:
                raise ValueError(f"weights must be between 0 and 1: {', '.join(bad)}")
            return self

    def __init__(self, options=None):
        super().__init__(options)
        self.weights = {**DEFAULT_WEIGHTS, **self.options.weights}
        self._features = functools.lru_cache(maxsize=1024)(self._features)

    def features(self, request: dict[str, Any]) -> dict[str, float]:
        text = request_text(request)
        return dict(self._features(text.task, text.inputs, tuple(text.outputs)))

    def _features(self, task: str, inputs: str, outputs: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
        # Memoised per instance (set in __init__): a repeated request (a cache hit) is decided again on every call.
        body = f"{task}\n{inputs}"
        tokens = len(inputs) / 4  # a fast estimate: routing runs on every call
        outputs = [o for o in outputs if o != "reasoning"]
        return tuple({
            "length": min(1.0, tokens / self.options.long_input_tokens),
            "code": min(1.0, float(_count(_CODE, body))),
            "math": min(1.0, float(_count(_MATH, body))),
            "reasoning": min(1.0, _count(_REASONING, body) / 2),
            "outputs": min(1.0, max(0, len(outputs) - 1) / 3),
            "hard_hint": min(1.0, float(_count(_HARD_HINTS, body))),
            "easy_hint": min(1.0, float(_count(_EASY_HINTS, body))),
        }.items())

    def score(self, features: dict[str, float]) -> float:
        keep = 1.0
        for name in ("length", "code", "math", "reasoning", "outputs", "hard_hint"):
            keep *= 1.0 - self.weights[name] * features[name]
        raw = (1.0 - keep) * (1.0 - self.weights["easy_hint"] * features["easy_hint"])
        return min(1.0, max(0.0, raw + _PRIORITY_SHIFT[self.options.priority]))

    def select(self, request: dict[str, Any]) -> Decision:
        features = self.features(request)
        score = self.score(features)
        tier = self.tier_for_score(score)
        return Decision(tier.name, tier.model, round(score, 4), "selector", features)


def __getattr__(name: str):
    if name == "Tier":  # the old name, for one release (two classes were called Tier)
        import warnings

        warnings.warn("dspy_turbo.routing.Tier is now dspy_turbo.plugin.selector.ModelTier; import it from there "
                      "(the old name is removed in the next release)", DeprecationWarning, stacklevel=2)
        return ModelTier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
