"""The event vocabulary: every kind of metric event the core emits, with its fields, in one table.

Every hit, miss, store, eviction, error and LM call becomes one :class:`Event` (one
dataclass for every kind: a sink reads the fields it knows). :data:`EVENTS` maps each kind
to its :class:`EventKind`: which ``Event`` fields it sets, which ``extra`` keys it may carry
and, where the set is closed, the values of ``reason``. ``namespace`` and ``time`` are set on
every event; a field a kind does not list is ``None`` (``0`` for ``tokens``).
:func:`problems` checks one event against the table (the conformance tests emit events
from real calls and check each one).

Events carry no request text and no secrets: ``key`` is a hash, ``error`` an exception's
type and message cut short. Plugins may emit kinds of their own; a sink ignores kinds it
does not know.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..events.bus import Event, describe_error

__all__ = ["EVENTS", "FIELDS", "Event", "EventKind", "describe_error", "problems"]

FIELDS = tuple(f.name for f in dataclasses.fields(Event) if f.name not in ("kind", "namespace", "time", "extra"))
"""The ``Event`` fields a kind may set (``kind``, ``namespace`` and ``time`` are always set; ``extra``
is described by :attr:`EventKind.extra`)."""


@dataclass(frozen=True)
class EventKind:
    """One kind of event: its name (``Event.kind``) and the shape of its events."""

    name: str
    area: str
    """Which part emits it: ``cache``, ``lm``, ``routing``, ``semantic``, ``batching``, ``monitoring``."""
    summary: str
    fields: frozenset[str]
    """The ``Event`` fields this kind sets (a subset of :data:`FIELDS`)."""
    extra: frozenset[str] = frozenset()
    """The keys its ``extra`` may hold."""
    reasons: frozenset[str] = frozenset()
    """The values ``reason`` takes, when they are a closed set (empty: free-form or unused)."""


def _kind(name: str, area: str, summary: str, fields: str, extra: str = "", reasons: str = "") -> EventKind:
    return EventKind(name, area, summary, frozenset(fields.split()), frozenset(extra.split()), frozenset(reasons.split()))


_TABLE = (
    # -- the exact cache
    _kind("hit", "cache", "A lookup answered by a tier (``tier`` is ``semantic`` for a semantic hit); "
          "``model``, ``tokens`` and ``cost`` are what the original call used, now saved. "
          "``extra.level`` ``item``: a whole batch item's result (one per program run), not an LM call.",
          "tier latency model tokens cost key", "similarity scope signature level"),
    _kind("miss", "cache", "A lookup that no tier answered.", "latency key"),
    _kind("store", "cache", "An entry written to a tier: a new answer or a hit copied to a faster tier "
          "(``extra.level`` ``item``: a whole batch item's result).",
          "tier key reason", "level", reasons="write promote"),
    _kind("skip_store", "cache", "A response that was not stored, and why.", "tier key reason error", "size max_bytes",
          "error empty truncated vetoed unencodable too_large unkeyable"),
    _kind("evict", "cache", "An entry a bounded tier dropped to make room.", "tier key"),
    _kind("error", "cache", "Something failed and was not raised into the program: a tier's operation "
          "(``reason``: ``get``, ``set``, ``corrupt``...), a hook or a component (``extra.component``).",
          "tier key reason error", "component"),
    _kind("breaker", "cache", "A tier's circuit breaker opened after repeated failures.", "tier reason", "cooldown",
          "open open_writes"),
    # -- LM calls
    _kind("lm_call", "lm", "A real LM call finished (``error`` when it failed).", "model latency tokens cost error",
          "input_tokens output_tokens"),
    _kind("coalesced", "lm", "A request served by another caller's LM call (single-flight); ``tokens`` and "
          "``cost`` are what that call used, saved here.", "key model tokens cost"),
    # -- routing
    _kind("route", "routing", "One routing decision: the model chosen and its estimated cost.", "model cost",
          "tier score source"),
    _kind("route_saving", "routing", "What a routed LM call saved against the strongest tier.", "model cost",
          "baseline_model"),
    # -- the semantic cache
    _kind("semantic_miss", "semantic", "No cached question close enough.", "model latency key",
          "scope signature similarity"),
    _kind("semantic_reject", "semantic", "A candidate above the threshold that was not served, and why.",
          "model reason key", "scope signature similarity",
          "number date negation antonym entity order verifier judge threshold ambiguous"),
    _kind("semantic_judge", "semantic", "One verdict of the judge on a gray-zone candidate.", "model reason key",
          "scope signature similarity cached", "same different unsure error budget"),
    _kind("semantic_skip", "semantic", "A request that is exact-only, and why.", "model reason key", "scope signature",
          "empty too_long non_text no_fields unparsed"),
    _kind("semantic_add", "semantic", "A stored answer's question added to the index.", "model key", "scope signature"),
    _kind("semantic_remove", "semantic", "A vector taken out of the index.", "reason", reasons="expired gone evicted"),
    # -- batching
    _kind("batch", "batching", "One finished batch: its seconds and its counts.", "latency",
          "items hits misses coalesced executed errors retries strategy"),
    _kind("retry", "batching", "An LM call inside a batch failed with a retryable error and is tried again "
          "(``latency``: the backoff).", "model latency error"),
    _kind("rate_limited", "batching", "An LM call inside a batch waited for the rate limiter (``latency``: the wait).",
          "model latency error"),
    # -- monitoring
    _kind("timed", "monitoring", "A run of ``turbo.timed(name)`` or ``turbo.profile()`` (``reason``: the name).",
          "reason latency error"),
    _kind("alert", "monitoring", "An alert rule changed state (``reason``: the rule's name).", "reason",
          "state metric value threshold op window"),
)

EVENTS: Mapping[str, EventKind] = MappingProxyType({kind.name: kind for kind in _TABLE})
"""Every event kind the core emits, by name."""

assert all(kind.fields <= set(FIELDS) for kind in _TABLE), "an event kind lists a field Event does not have"

HIT, MISS, STORE, SKIP_STORE, EVICT, ERROR, BREAKER = "hit", "miss", "store", "skip_store", "evict", "error", "breaker"
LM_CALL, COALESCED, ROUTE, ROUTE_SAVING = "lm_call", "coalesced", "route", "route_saving"
SEMANTIC_MISS, SEMANTIC_REJECT, SEMANTIC_JUDGE, SEMANTIC_SKIP, SEMANTIC_ADD, SEMANTIC_REMOVE = (
    "semantic_miss", "semantic_reject", "semantic_judge", "semantic_skip", "semantic_add", "semantic_remove")
BATCH, RETRY, RATE_LIMITED, TIMED, ALERT = "batch", "retry", "rate_limited", "timed", "alert"


def problems(event: Event) -> list[str]:
    """What in ``event`` the table does not allow for its kind (empty: it conforms).

    A kind the table does not know (a plugin's own) has no problems: sinks ignore it.
    """
    kind = EVENTS.get(event.kind)
    if kind is None:
        return []
    out = []
    for name in FIELDS:
        value = getattr(event, name)
        if name in kind.fields or value is None or (name == "tokens" and value == 0):
            continue
        out.append(f"{event.kind}: sets {name}={value!r}, which the kind does not list")
    unknown = sorted(set(event.extra or ()) - kind.extra)
    if unknown:
        out.append(f"{event.kind}: extra keys {unknown} not listed")
    if kind.reasons and event.reason is not None and event.reason not in kind.reasons:
        out.append(f"{event.kind}: reason {event.reason!r} is not one of {sorted(kind.reasons)}")
    return out
