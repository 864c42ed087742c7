"""The semantic cache as a feature: the ``cache.semantic`` section and the ``SemanticCache``'s lifecycle.

Built at start-up when the section is configured (``dspy_turbo_faiss.semantic.SemanticCache``)
and published as ``turbo.semantic``, which the DSPy integration reads on its lookup path.
Its ``stats()`` block is ``semantic``; ``clear()`` and ``invalidate()`` of this namespace's
entries (every tier, no tag) drop its vectors too (``removed["semantic"]``); ``close()``
persists and releases the index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from dspy_turbo.plugin import ConfigSection, Options, hookimpl
from dspy_turbo.plugin.events import Event, describe_error
from dspy_turbo.plugin.units import Duration

if TYPE_CHECKING:
    from dspy_turbo.plugin.host import FeatureHost

PATH = "cache.semantic"


class SemanticGuards(Options):
    """A candidate above the threshold is still a miss when these differ from the query."""

    numbers: bool = True
    dates: bool = True
    negations: bool = True
    """By a word ("not", "never", "-n't") or by an affix on a word the other has plain ("possible" / "impossible")."""
    antonyms: bool = True
    """Opposite sides of the shipped table (``dspy_turbo_faiss/data/antonyms.json``: "maximum" / "minimum", "buy" / "sell"),
    or of a stem's prefixes and suffixes ("overestimate" / "underestimate", "careful" / "careless")."""
    entities: bool = True
    order: bool = True
    """Two shared words swapped around the same relation ("5 miles to km" / "5 km to miles")."""


class SemanticVerifier(Options):
    """A second look at a candidate that reached the threshold and passed the guards
    (``dspy_turbo_faiss.verifier``): every rare word of either question needs a close word in the other.
    Off by default: on the public pair sets it removes as many true hits as false ones
    (``bench/semantic_eval.py``); switch it on where your own pairs say it helps (``dspy-turbo calibrate --verifier``)."""

    enabled: bool = False
    rare_below: float = Field(default=4.5, ge=0.0, le=8.0)
    """Words rarer than this on wordfreq's Zipf scale ("the" 7.7, "learn" 5.2, "salmon" 4.0) must be matched."""
    min_alignment: float = Field(default=0.5, ge=0.0, le=1.0)
    """Cosine of a rare word's contextual vector to its closest word in the other question, below which it is unmatched."""


class SemanticJudge(Options):
    """A cheap LM asked whether a gray-zone candidate asks the same thing as the query
    (``dspy_turbo_faiss.judge``). Off by default: it adds an LM call to a lookup."""

    enabled: bool = False
    """Ask the judge about gray-zone candidates (needs ``model``)."""
    model: str | None = None
    """The judge's model, as for ``dspy.LM`` (its provider key from the environment, as LiteLLM reads it)."""
    api_base: str | None = None
    """The judge's endpoint, when not the provider's default (an OpenAI-compatible server)."""
    gray_zone: tuple[float, float] = (0.90, 0.97)
    """Similarities ``[low, high)`` whose candidates (past the guards) are served only on the judge's "same"."""
    budget: int = Field(default=1000, ge=0)
    """Judge LM calls per hour in one process; past it, candidates without a cached verdict are misses."""
    timeout: Duration = Field(default=10.0, gt=0)
    """How long one judge call may take (no retries); past it the verdict is ``error``, a miss."""
    max_tokens: int = Field(default=16, ge=1)
    """The judge's reply is one word: ``same`` or ``different``."""

    @model_validator(mode="after")
    def _check(self) -> SemanticJudge:
        low, high = self.gray_zone
        if not 0.0 < low < high <= 1.0:
            raise ValueError(f"gray_zone must be [low, high] with 0 < low < high <= 1, got [{low}, {high}]")
        if self.enabled and not self.model:
            raise ValueError("the judge needs a model (e.g. model: openai/gpt-4o-mini), or set enabled: false")
        return self


class SemanticOverride(Options):
    """Per-signature settings, keyed by the signature as ``"question -> answer"``."""

    threshold: float | None = Field(default=None, ge=0.5, le=1.0)
    fields: list[str] | None = None


class SemanticSettings(Options):
    index: dict[str, Any]
    embedder: dict[str, Any]
    threshold: float | None = Field(default=None, gt=0.0, le=1.0)
    """Default: the embedder's calibrated threshold for its model and precision
    (sentence-transformers' all-MiniLM-L6-v2: 0.95 fp32; its int8 form has its own), else 0.95."""
    # -- semantic cache (dspy_turbo_faiss.semantic) --
    fields: list[str] | None = None
    """Input fields whose values are embedded; the others must match exactly. Default: every text input."""
    signatures: dict[str, SemanticOverride] = {}
    """Per-signature ``threshold`` and ``fields``, keyed by ``"inputs -> outputs"`` (``"prompt"`` for lm("...")),
    matched by the signature's field names: spacing, order and type annotations do not matter."""

    @field_validator("signatures")
    @classmethod
    def _signature_keys(cls, value: dict[str, SemanticOverride]) -> dict[str, SemanticOverride]:
        from .semantic import signature_fields

        for key in value:
            if key.strip() != "prompt" and signature_fields(key) is None:
                raise ValueError(f"{key!r} is not a signature: write its fields as 'question, context -> answer' "
                                 "(or 'prompt' for a plain lm(\"...\") call)")
        return value
    guards: SemanticGuards = SemanticGuards()
    verifier: SemanticVerifier = SemanticVerifier()
    judge: SemanticJudge = SemanticJudge()
    candidates: int = Field(default=4, ge=1, le=64)
    """Nearest neighbours checked against the guards before a lookup is a miss."""
    margin: float = Field(default=0.01, ge=0.0, le=0.2)
    """A hit must be closer than every other cached neighbour by this much cosine; else it is ambiguous (a miss)."""
    batch_window: Duration = 0.002
    """Under load (embedding passes back to back), how long a pass waits for the callers of the last one to
    come back and share it; a caller alone never waits."""
    max_batch: int = Field(default=64, ge=1)
    embedding_cache: int = Field(default=10_000, ge=0)
    """Vectors of recent texts kept in memory, so a text is not embedded twice."""
    share: bool = True
    """With a shared tier (redis): keep every process's index in step through a log on it."""
    sync_interval: Duration = Field(default=0.1, ge=0)
    """How often, at most, a lookup first applies the other processes' index changes."""


@hookimpl
def dspy_turbo_config_sections():
    return [ConfigSection(PATH, SemanticSettings, components={"index": "similarity_index", "embedder": "embedder"},
                          doc="The semantic cache, looked up after an exact miss (needs a similarity index and an "
                              "embedder: dspy-turbo-faiss's faiss and sentence-transformers, or another plugin's); off when left out.")]


@hookimpl(tryfirst=True)
def dspy_turbo_startup(turbo: FeatureHost) -> None:
    config = turbo.config
    cache = None
    if config.component(f"{PATH}.index") is not None and config.component(f"{PATH}.embedder") is not None:
        from .semantic import SemanticCache

        cache = SemanticCache.build(turbo, config)
    turbo.publish("semantic", cache)


def _cache(turbo: FeatureHost):
    return turbo.features.get("semantic")


@hookimpl
def dspy_turbo_stats(turbo: FeatureHost) -> dict[str, Any] | None:
    cache = _cache(turbo)
    return None if cache is None else {"semantic": cache.snapshot()}


@hookimpl
def dspy_turbo_reset_stats(turbo: FeatureHost) -> None:
    cache = _cache(turbo)
    if cache is not None:
        cache.stats.reset()


def _clear(turbo: FeatureHost, removed: dict[str, int]) -> None:
    cache = _cache(turbo)
    if cache is None:
        return
    try:
        removed["semantic"] = cache.clear()  # the namespace's vectors go with its entries
    except Exception as exc:  # the exact tiers are cleared already; report, never raise
        turbo.bus.emit(Event("error", error=describe_error(exc), reason="semantic_clear", namespace=turbo.namespace,
                             extra={"component": "semantic"}))


# trylast: the vectors go after the core's invalidation feed has told the other processes (as before the move).
@hookimpl(trylast=True)
def dspy_turbo_clear(turbo: FeatureHost, removed: dict[str, int], tier: str | None) -> None:
    if tier is None:
        _clear(turbo, removed)


@hookimpl(trylast=True)
def dspy_turbo_invalidate(turbo: FeatureHost, namespace: str | None, tag: str | None, tier: str | None,
                          removed: dict[str, int]) -> None:
    if tag is None and tier is None and namespace in (None, turbo.namespace):
        _clear(turbo, removed)


@hookimpl(trylast=True)
def dspy_turbo_shutdown(turbo: FeatureHost) -> None:
    cache = _cache(turbo)
    if cache is not None:
        cache.close()  # persists the index when it has a directory
