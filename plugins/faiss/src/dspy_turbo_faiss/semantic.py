"""The semantic cache: a paraphrase of an answered question gets the cached answer, safely.

What this module holds is everything that is not tied to one vector library; the index
(``kind = "similarity_index"``) and the embedder (``kind = "embedder"``) are components a
plugin registers (this distribution provides ``faiss`` and ``sentence-transformers``; another
plugin's work too). It was the core's ``dspy_turbo.semantic`` (that path warns for one release).

How one LM request is matched (``SemanticCache.lookup``), after an exact miss:

1. :func:`extract` recovers the signature's *input fields* from the request: the
   ``[[ ## field ## ]]`` sections that DSPy's ChatAdapter and JSONAdapter render, or the
   whole prompt of a plain ``lm("...")`` call. Only those values are embedded, never the
   rendered prompt: unrelated questions wrapped in one DSPy prompt all look alike.
2. The **scope** is a hash of everything else, exactly: the request with the embedded
   values masked out (model, endpoint, instructions, field names, demos, decoding
   parameters, tools, every input field that is not embedded) and the namespace. A
   semantic hit is only possible inside one scope.
3. The embedded text is embedded (concurrent callers share one forward pass: the
   :class:`~dspy_turbo_faiss.micro_batcher.MicroBatcher`; a text is never embedded twice: the embedding cache), the index
   is searched inside the scope, and a candidate at or above the threshold (cosine
   similarity) must pass the :mod:`guards <dspy_turbo_faiss.guards>` (a differing number, date,
   negation, opposite word, named entity or argument order is a miss, however close the
   vectors), then, when switched
   on, the :mod:`verifier <dspy_turbo_faiss.verifier>` (a rare word of either question without
   a close word in the other is a miss: "cook salmon" is not "cook chicken"), and beat the
   other neighbours by ``margin`` (:func:`pick`). With the :mod:`judge <dspy_turbo_faiss.judge>`
   on, a candidate in its gray zone of similarity is served only on its "same" verdict.
4. The candidate's entry is read from the exact tiers; an entry that expired or was
   evicted takes its vector out of the index.

A request that cannot be matched safely (empty input, input longer than the embedder
reads, non-text input such as an image or a list) is exact-only, with a
``semantic_skip`` event saying why. Every rejection (by a guard, the verifier, or the
margin) is a ``semantic_reject`` event with the reason; a hit is a ``hit`` event with ``tier="semantic"`` and the similarity; stats per
scope and a similarity histogram are in ``turbo.stats()["semantic"]``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import xxhash

from dspy_turbo import ConfigError, ConfigIssue
from dspy_turbo.plugin.events import Event, describe_error
from dspy_turbo.plugin.signatures import input_fields as _input_fields
from dspy_turbo.plugin.signatures import output_names as _output_names
from dspy_turbo.plugin.similarity import ComponentUnavailable, Embedder, SimilarityIndex

from .guards import Features, features, guard_reason
from .micro_batcher import MicroBatcher
from .replication import IndexReplication, supports_logs

logger = logging.getLogger("dspy_turbo.semantic")  # the logger's name as before the move
DEFAULT_THRESHOLD = 0.95  # cache.semantic.threshold for an embedder that names none of its own

if TYPE_CHECKING:

    from dspy_turbo.plugin.host import FeatureHost, Host, HostConfig

    from .feature import SemanticSettings
    from .judge import Judge
    from .verifier import Verifier

# Event kinds of the semantic cache (a semantic hit is an ordinary HIT with tier="semantic").
SEMANTIC_MISS, SEMANTIC_REJECT, SEMANTIC_SKIP, SEMANTIC_ADD, SEMANTIC_REMOVE, SEMANTIC_JUDGE = (
    "semantic_miss", "semantic_reject", "semantic_skip", "semantic_add", "semantic_remove", "semantic_judge",
)
TIER = "semantic"
# The core's event kinds this module emits or reads (dspy_turbo.plugin.events.EVENTS).
ERROR, HIT, MISS, EVICT = "error", "hit", "miss", "evict"


# -- recovering the signature's input fields -------------------------------------------------

# Trailers DSPy's adapters put after the last input section of the user message.
_TRAILERS = ("\n\nRespond with", "\n\nThe output fields", "\n\nYour response")
_TEXT_TYPES = {"str", "optional[str]", "str | none", "union[str, nonetype]", "typing.optional[str]"}
_NON_TEXT_MARKERS = ("<DSPY_IMAGE_START>", "<<CUSTOM-TYPE-START-IDENTIFIER>>", "data:image/", "<DSPY_AUDIO_START>")
_MASK = "\x00semantic\x00"


@dataclass
class Query:
    """One request as the semantic cache sees it."""

    signature: str
    """``"question -> answer"`` for a DSPy signature, ``"prompt"`` for a plain call (a label, no text)."""
    text: str | None = None
    """What is embedded (the chosen input fields' values), or None when the request is exact-only."""
    scope: str | None = None
    fields: tuple[str, ...] = ()
    skip: str | None = None
    """Why the request is exact-only: ``empty``, ``non_text``, ``too_long``, ``no_fields``, ``unparsed``."""


def _message_text(message: Any) -> str | None:
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else None


def _sections(user: str, names: list[str]) -> dict[str, tuple[int, int]]:
    """Character span of each input field's value in a rendered user message."""
    marks = []
    for name in names:
        at = user.rfind(f"[[ ## {name} ## ]]\n")
        if at >= 0:
            marks.append((at, name))
    marks.sort()
    spans = {}
    for i, (at, name) in enumerate(marks):
        start = at + len(f"[[ ## {name} ## ]]\n")
        end = marks[i + 1][0] if i + 1 < len(marks) else len(user)
        if i + 1 == len(marks):
            cut = [user.find(t, start) for t in _TRAILERS]
            end = min([c for c in cut if c >= 0], default=end)
        spans[name] = (start, end)
    return spans


def _is_text(type_: str) -> bool:
    return type_.strip().lower().replace("typing.", "") in _TEXT_TYPES


def signature_fields(text: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """The input and output field names of ``"question, context: str -> answer"`` (types,
    spaces and order aside), or None when it is not a signature."""
    if text.count("->") != 1:
        return None
    sides = []
    for side in text.split("->"):
        names = [part.split(":")[0].strip() for part in side.split(",")]
        if not names or not all(n.isidentifier() for n in names):
            return None
        sides.append(frozenset(names))
    return sides[0], sides[1]


class SignatureOverrides:
    """``cache.semantic.signatures``: found by a signature's fields, whatever the spacing,
    order or type annotations of the key (``"question -> answer"`` matches ``question:str->
    answer``); ``prompt`` is a plain ``lm("...")`` call. An override whose key is close to a
    signature it does not match is a warning once; one that matched nothing by ``close()``
    is a warning listing the signatures seen."""

    def __init__(self, overrides: dict[str, Any]):
        self._by_fields: dict[Any, tuple[str, Any]] = {}
        for key, override in overrides.items():
            fields = "prompt" if key.strip() == "prompt" else signature_fields(key)
            self._by_fields[fields if fields is not None else key] = (key, override)
        self._memo: dict[str, Any] = {}
        self._used: set[str] = set()
        self._seen: set[str] = set()

    def get(self, signature: str, seen: bool = False) -> Any:
        if not self._by_fields:
            return None
        found = self._memo.get(signature, _UNSET)
        if found is _UNSET:
            fields = "prompt" if signature == "prompt" else signature_fields(signature)
            hit = self._by_fields.get(fields)
            found = None if hit is None else hit[1]
            if hit is not None:
                self._used.add(hit[0])
            else:
                self._warn_close(signature)
            if len(self._memo) < 4096:
                self._memo[signature] = found
        if seen and len(self._seen) < 64:
            self._seen.add(signature)
        return found

    def _warn_close(self, signature: str) -> None:
        import difflib

        keys = [key for key, _ in self._by_fields.values() if key not in self._used]
        close = difflib.get_close_matches(signature, keys, n=1, cutoff=0.8)
        if close:
            logger.warning("cache.semantic.signatures[%r] does not match the signature %r of a request (its fields "
                           "differ); did you mean %r?", close[0], signature, signature)

    def report_unused(self) -> None:
        if not self._seen:
            return
        for key, _ in self._by_fields.values():
            if key not in self._used:
                logger.warning("cache.semantic.signatures[%r] matched none of the signatures this process looked up "
                               "(%s): its settings never applied", key, ", ".join(sorted(self._seen)))


_UNSET = object()


def extract(request: dict[str, Any], fields_for: Any = None) -> tuple[Query, dict[str, Any] | None]:
    """Split a DSPy LM request into what is embedded and what must match exactly.

    Returns the :class:`Query` and the request with the embedded values masked (the
    scope's material), or None for that when the request is exact-only.
    ``fields_for(signature) -> list | None`` says which input fields count for a
    signature (None: every text input field).
    """
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        prompt = request.get("prompt")
        if isinstance(prompt, str):  # text-completion door
            query = Query("prompt", fields=("prompt",))
            return _finish(query, {"prompt": prompt}, {**request, "prompt": _MASK})
        return Query("?", skip="unparsed"), None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return Query("?", skip="unparsed"), None
    user = _message_text(last)
    if user is None:  # a list of content parts: images, audio, files
        return Query("?", skip="non_text"), None
    system = next((_message_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "system"), None) or ""
    declared = _input_fields(system)
    if not declared:  # a plain lm("...") or a chat the program built itself: the last user turn counts
        query = Query("prompt", fields=("prompt",))
        masked = {**request, "messages": [*messages[:-1], {**last, "content": _MASK}]}
        return _finish(query, {"prompt": user}, masked)
    names = [name for name, _ in declared]
    signature = f"{', '.join(names)} -> {', '.join(_output_names(system))}"
    chosen = fields_for(signature) if fields_for else None
    types = dict(declared)
    embedded = [n for n in names if (chosen is None and _is_text(types[n])) or (chosen is not None and n in chosen)]
    query = Query(signature, fields=tuple(embedded))
    if not embedded:
        query.skip = "no_fields" if chosen is not None else "non_text"
        return query, None
    if any(not _is_text(types[n]) for n in embedded):
        query.skip = "non_text"
        return query, None
    spans = _sections(user, embedded)
    if set(spans) != set(embedded):
        query.skip = "unparsed"
        return query, None
    values = {n: user[s:e].strip() for n, (s, e) in spans.items()}
    masked_user, last_end = [], 0
    for name, (start, end) in sorted(spans.items(), key=lambda item: item[1][0]):
        masked_user += [user[last_end:start], _MASK, name]
        last_end = end
    masked_user.append(user[last_end:])
    masked = {**request, "messages": [*messages[:-1], {**last, "content": "".join(masked_user)}]}
    return _finish(query, {n: values[n] for n in embedded}, masked)


def _finish(query: Query, values: dict[str, str], masked: dict[str, Any]) -> tuple[Query, dict[str, Any] | None]:
    if any(marker in v for v in values.values() for marker in _NON_TEXT_MARKERS):
        query.skip = "non_text"
        return query, None
    if not any(v.strip() for v in values.values()):
        query.skip = "empty"
        return query, None
    query.text = next(iter(values.values())) if len(values) == 1 else "\n".join(f"{k}: {v}" for k, v in values.items())
    return query, masked


# -- the decision ----------------------------------------------------------------------------

def rejection(query: str, cached: str, guards: Any = None, verifier: Verifier | None = None,
              feat=features) -> str | None:
    """Why ``cached`` must not be served for ``query``: a guard's reason, else the verifier's
    (run only when the cheap guards pass), else None. ``feat`` may be a caching ``features``."""
    reason = guard_reason(feat(query), feat(cached), guards)
    if reason is None and verifier is not None:
        reason = verifier.reason(query, cached)
    return reason


def pick(scores: list[float], threshold: float, margin: float, reject) -> tuple[int | None, list[tuple[int, str]]]:
    """Which candidate (by position; ``scores`` best first) may be served, and why others were not.

    A candidate is served when its score reaches ``threshold``, ``reject(position)`` (the
    guards and the verifier: :func:`rejection`) finds nothing, and it beats every other neighbour by at least ``margin``: two
    cached questions about equally close to the query make it ambiguous, so a miss.
    """
    rejections = []
    for pos, score in enumerate(scores):
        if score < threshold:
            break
        reason = reject(pos)
        if reason is None and margin:
            rival = max((s for j, s in enumerate(scores) if j != pos), default=None)
            if rival is not None and score - rival < margin:
                reason = "ambiguous"
        if reason is not None:
            rejections.append((pos, reason))
            continue
        return pos, rejections
    return None, rejections


# -- stats -------------------------------------------------------------------------------------

# Histogram of the best candidate's similarity per lookup: one bin below 0.80, 0.01 wide above.
_BIN_EDGES = [round(0.80 + i / 100, 2) for i in range(21)]
_MAX_SCOPES = 1000


def _bin(score: float) -> str:
    if score < _BIN_EDGES[0]:
        return "<0.80"
    index = min(int((score - 0.80) * 100 + 1e-9), 19)
    return f"{_BIN_EDGES[index]:.2f}-{_BIN_EDGES[index + 1]:.2f}"


@dataclass
class _ScopeStats:
    label: str
    counts: Counter = field(default_factory=Counter)


class SemanticStats:
    """An event handler on the Turbo's bus: counts per scope and a similarity histogram."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.totals: Counter[str] = Counter()
            self.reasons: Counter[str] = Counter()
            self.scopes: dict[str, _ScopeStats] = {}
            self.histogram: dict[str, Counter] = {}
            self.hit_similarity_sum = 0.0

    def __call__(self, event: Event) -> None:
        kind = event.kind
        if kind == HIT and event.tier == TIER:
            outcome = "hits"
        elif kind in (SEMANTIC_MISS, SEMANTIC_REJECT, SEMANTIC_SKIP, SEMANTIC_ADD, SEMANTIC_REMOVE, SEMANTIC_JUDGE):
            outcome = {SEMANTIC_MISS: "misses", SEMANTIC_REJECT: "rejected", SEMANTIC_SKIP: "skipped",
                       SEMANTIC_ADD: "added", SEMANTIC_REMOVE: "removed", SEMANTIC_JUDGE: "judged"}[kind]
        else:
            return
        extra = event.extra or {}
        with self._lock:
            self.totals[outcome] += 1
            if event.reason and outcome in ("rejected", "skipped", "removed", "judged"):
                self.reasons[f"{outcome}:{event.reason}"] += 1
            scope = extra.get("scope")
            if scope:
                stats = self.scopes.get(scope)
                if stats is None and len(self.scopes) < _MAX_SCOPES:
                    stats = self.scopes[scope] = _ScopeStats(extra.get("signature", "?") + f" @ {event.model or '?'}")
                (stats.counts if stats else self.totals)[outcome if stats else "untracked_scope_events"] += 1
            similarity = extra.get("similarity")
            if similarity is not None and outcome in ("hits", "misses", "rejected"):
                self.histogram.setdefault(_bin(similarity), Counter())[outcome] += 1
                if outcome == "hits":
                    self.hit_similarity_sum += similarity

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            hits = self.totals["hits"]
            return {
                **{k: self.totals[k] for k in ("hits", "misses", "rejected", "skipped", "added", "removed", "judged")},
                "reasons": dict(self.reasons),
                "mean_hit_similarity": round(self.hit_similarity_sum / hits, 4) if hits else None,
                "scopes": {scope: {"label": s.label, **dict(s.counts)} for scope, s in self.scopes.items()},
                "histogram": {b: dict(self.histogram[b]) for b in sorted(self.histogram)},
            }


# -- the semantic cache ------------------------------------------------------------------------


class SemanticCache:
    """The semantic layer of one Turbo: lookup after an exact miss, add after a store."""

    def __init__(self, turbo: Host, settings: SemanticSettings, index: SimilarityIndex, embedder: Embedder,
                 verifier: Verifier | None = None, judge: Judge | None = None):
        self.turbo = turbo
        self.judge = judge
        self.settings = settings
        self.index = index
        self.embedder = embedder
        # unset: the embedder's own, calibrated for its model and precision (int8 vectors sit elsewhere)
        self.threshold = settings.threshold if settings.threshold is not None else \
            float(getattr(embedder, "default_threshold", None) or DEFAULT_THRESHOLD)
        space = getattr(embedder, "vector_space", "")
        self._space = b"|" + space.encode() if space else b""  # no space named: the scopes as before
        self.verifier = verifier
        self.namespace = turbo.namespace
        self._prefix = turbo.key_prefix.encode()
        self.batcher = MicroBatcher(embedder.embed, settings.batch_window, settings.max_batch, settings.embedding_cache)
        self.stats = SemanticStats()
        self._overrides = SignatureOverrides(settings.signatures)
        self._features: OrderedDict[str, Features] = OrderedDict()
        self.replication = None
        if settings.share and supports_logs(turbo.coordinator):
            # Other processes of this namespace index through the shared tier: catch up now.
            self.replication = IndexReplication(turbo.coordinator, index, "semantic", settings.sync_interval)
            self.replication.sync(force=True)
        turbo.bus.add("semantic", self._on_event)  # one handler: the exact-hit path pays one call

    @classmethod
    def build(cls, turbo: FeatureHost, config: HostConfig) -> SemanticCache:
        settings = config.section("cache.semantic")
        parts, verifier = [], None
        try:
            for spec in (config.component("cache.semantic.index"), config.component("cache.semantic.embedder")):
                try:
                    parts.append(spec.cls.from_options(spec.options, turbo))
                except ComponentUnavailable as exc:
                    raise ConfigError([ConfigIssue(spec.path, str(exc))], config.source) from None
            if settings.verifier.enabled:
                from .verifier import Verifier

                try:
                    verifier = Verifier(settings.verifier, parts[1])
                except (ImportError, TypeError) as exc:
                    raise ConfigError([ConfigIssue("cache.semantic.verifier", f"{exc}; or set enabled: false")],
                                      config.source) from None
            judge = None
            if settings.judge.enabled:
                from .judge import Judge

                try:
                    judge = Judge(settings.judge, turbo)
                except Exception as exc:
                    raise ConfigError([ConfigIssue("cache.semantic.judge.model", f"cannot build the judge LM "
                                                   f"({describe_error(exc)}); or set enabled: false")],
                                      config.source) from None
        except BaseException:
            for part in parts:  # e.g. release the index directory when the embedder cannot load
                close = getattr(part, "close", None)
                if close:
                    close()
            raise
        return cls(turbo, settings, parts[0], parts[1], verifier, judge)

    # -- per-signature settings ------------------------------------------------------------

    def _fields_for(self, signature: str) -> list[str] | None:
        override = self._overrides.get(signature, seen=True)
        if override is not None and override.fields is not None:
            return override.fields
        return self.settings.fields

    def threshold_for(self, signature: str) -> float:
        override = self._overrides.get(signature)
        if override is not None and override.threshold is not None:
            return override.threshold
        return self.threshold

    def _feat(self, text: str) -> Features:
        got = self._features.get(text)
        if got is None:
            got = features(text)
            self._features[text] = got
            if len(self._features) > 4096:
                self._features.popitem(last=False)
        return got

    # -- the request path ------------------------------------------------------------------

    def prepare(self, request: dict[str, Any], ignored=None) -> Query:
        """Extract and scope a request (no embedding yet); ``query.skip`` says why not."""
        query, masked = extract(request, self._fields_for)
        if masked is None:
            return query
        text = query.text or ""
        limit = self.embedder.max_tokens
        # Word pieces are at least one character: a text shorter than the limit cannot exceed it.
        if len(text) + 2 > limit and self.embedder.count_tokens(text) > limit:
            query.skip, query.text = "too_long", None
            return query
        material = self.turbo.key_material(masked, ignored) + b"|" + orjson.dumps(list(query.fields)) + self._space
        query.scope = xxhash.xxh3_128_hexdigest(self._prefix + material)
        return query

    def _event(self, kind: str, query: Query, request: dict[str, Any], **kwargs) -> None:
        extra = {"scope": query.scope, "signature": query.signature, **kwargs.pop("extra", {})}
        self.turbo.bus.emit(Event(kind, model=request.get("model"), namespace=self.namespace, extra=extra, **kwargs))

    def lookup(self, request: dict[str, Any], key: str, ignored=None, count: bool = True, check=None) -> Any:
        """The exact entry, else a safe semantic match's value, else None (counted once).

        ``check``: as ``TieredCache.get``'s, for the exact entry and every neighbour: a
        neighbour it refuses is corrupt, removed from the tiers and the index, and the next
        candidate is tried. A check that takes the value itself (``check.value``, see
        ``DSPyCache``) hands that over instead of a second copy."""
        turbo = self.turbo
        started = time.perf_counter()
        entry = turbo.cache.get(key, count, count_miss=False, check=check)
        if entry is not None:
            return entry.copy_value() if check is None else check.value
        value = None
        try:
            value = self._search(request, key, ignored, count, started, check)
        except Exception as exc:  # the semantic layer never breaks the program: an exact miss
            turbo.bus.emit(Event(ERROR, error=describe_error(exc), reason="semantic_lookup", key=key,
                                 namespace=self.namespace, extra={"component": "semantic"}))
        if value is None and count and turbo.bus:
            turbo.bus.emit(Event(MISS, latency=time.perf_counter() - started, key=key, namespace=self.namespace))
        return value

    def _search(self, request: dict[str, Any], key: str, ignored, count: bool, started: float, check=None) -> Any:
        query = self.prepare(request, ignored)
        if query.skip is not None:
            if count:
                self._event(SEMANTIC_SKIP, query, request, reason=query.skip, key=key)
            return None
        vector = self.batcher.embed(query.text)
        threshold = self.threshold_for(query.signature)
        if self.replication is not None:
            self.replication.sync()
        candidates = self.index.search(query.scope, vector, self.settings.candidates)
        best = candidates[0][1] if candidates else None
        now = time.time()
        alive = []
        for candidate in candidates:
            expires = candidate[2].get("expires")
            if expires is not None and expires <= now:
                self._remove(candidate[0], "expired")
            else:
                alive.append(candidate)
        judge, judged = self.judge, []

        def reject(i: int) -> str | None:
            score, cached = alive[i][1], alive[i][2].get("text", "")
            zone = judge is not None and judge.in_zone(score)
            if score < threshold and not zone:
                return "threshold"  # under the threshold, and outside the judge's zone
            reason = rejection(query.text, cached, self.settings.guards, self.verifier, self._feat)
            if reason is None and zone:
                if judged:  # one judge call per lookup at most
                    return "judge"
                verdict, from_cache = judge.verdict(query.text, cached, ask=count)
                judged.append(verdict)
                if count:
                    self._event(SEMANTIC_JUDGE, query, request, reason=verdict, key=key,
                                extra={"similarity": round(score, 4), "cached": from_cache})
                reason = None if verdict == "same" else "judge"
            return reason

        lowest = min(threshold, judge.low) if judge is not None else threshold
        while alive:
            pos, rejections = pick([score for _, score, _ in alive], lowest, self.settings.margin, reject)
            if count:
                for i, reason in rejections:
                    self._event(SEMANTIC_REJECT, query, request, reason=reason, key=key,
                                extra={"similarity": round(alive[i][1], 4)})
            if pos is None:
                break
            item, score, meta = alive[pos]
            refused = _Refusals(check)
            entry = self.turbo.cache.get(meta["key"], count=False, check=refused if check is not None else None)
            if entry is None:  # evicted, expired or corrupt in the tiers: the vector goes too, the rest are tried
                self._remove(item, "corrupt" if refused.problem else "gone")
                del alive[pos]
                continue
            if count:
                self.turbo.bus.emit(Event(HIT, tier=TIER, latency=time.perf_counter() - started, model=entry.model,
                                          tokens=entry.total_tokens, cost=entry.cost, key=key, namespace=self.namespace,
                                          extra={"scope": query.scope, "signature": query.signature,
                                                 "similarity": round(score, 4)}))
            return entry.copy_value() if check is None else check.value
        if count:
            self._event(SEMANTIC_MISS, query, request, key=key,
                        extra={"similarity": round(best, 4)} if best is not None else {})
        return None

    def add(self, request: dict[str, Any], key: str, ignored=None) -> bool:
        """Index a request whose response was just stored; never raises."""
        try:
            query = self.prepare(request, ignored)
            if query.skip is not None:
                return False
            vector = self.batcher.embed(query.text)
            ttl = self.turbo.default_ttl
            meta = {"key": key, "text": query.text, "expires": time.time() + ttl if ttl else None}
            self.index.add(query.scope, item_id(key), vector, meta)
            if self.replication is not None:
                self.replication.published_add(query.scope, item_id(key), vector, meta)
            self._event(SEMANTIC_ADD, query, request, key=key)
            return True
        except Exception as exc:
            self.turbo.bus.emit(Event(ERROR, error=describe_error(exc), reason="semantic_add", key=key,
                                      namespace=self.namespace, extra={"component": "semantic"}))
            return False

    def _remove(self, item: int, reason: str) -> None:
        if self.index.remove(item):
            # Expiry happens in every replica by itself, and an eviction from this process's own last
            # tier says nothing of the shared one: only "gone from every tier" is news for the others.
            if self.replication is not None and reason not in ("expired", "evicted"):
                self.replication.published_remove(item)
            self.turbo.bus.emit(Event(SEMANTIC_REMOVE, reason=reason, namespace=self.namespace))

    def _on_event(self, event: Event) -> None:
        self.stats(event)
        # An entry evicted from the last tier that held it is gone: so is its vector.
        if event.kind == EVICT and event.key and event.tier == self.turbo.cache.tiers[-1].name:
            self._remove(item_id(event.key), "evicted")

    def invalidate(self, key: str) -> bool:
        """Remove one entry's vector (the exact tiers are cleared by the caller)."""
        removed = self.index.remove(item_id(key))
        if removed and self.replication is not None:
            self.replication.published_remove(item_id(key))
        return removed

    def clear(self) -> int:
        if self.replication is not None:
            self.replication.published_clear()
        return self.index.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = self.stats.snapshot()
        snap["entries"] = len(self.index)
        if self.replication is not None:
            snap["shared_index"] = self.replication.snapshot()
        snap["verifier"] = self.verifier.snapshot() if self.verifier is not None else None
        snap["judge"] = self.judge.snapshot() if self.judge is not None else None
        snap["embedder"] = {"batches": self.batcher.batches, "embedded": self.batcher.embedded,
                            "cache_hits": self.batcher.cache_hits}
        return snap

    def close(self) -> None:
        self._overrides.report_unused()
        for part in (self.index, self.embedder):
            close = getattr(part, "close", None)
            if close:
                close()


def item_id(key: str) -> int:
    """The index id of a cache key: a positive 63-bit hash (FAISS ids are int64)."""
    return xxhash.xxh3_64_intdigest(key.encode()) & 0x7FFF_FFFF_FFFF_FFFF


class _Refusals:
    """A ``check`` that remembers whether it refused the entry (a corrupt neighbour)."""

    __slots__ = ("check", "problem")

    def __init__(self, check):
        self.check, self.problem = check, None

    def __call__(self, entry):
        self.problem = self.check(entry)
        return self.problem

