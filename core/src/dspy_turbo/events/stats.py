"""The in-process aggregator behind ``turbo.stats()``: a metric sink like any other.

Two levels of lookups are counted together in ``hits``, ``stores``, ``hits_total`` and
``hit_rate``: LM calls (and ``@cached`` functions), one per request, and whole batch items
(``turbo.batch``'s item cache: one per program run, whose LM calls are then never looked
up). ``batch_items`` says how many of them were items (events with ``extra.level ==
"item"``); the rest are LM-call-level. An item that misses counts no miss: its program's
LM calls count theirs.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

from . import bus as ev
from .bus import Event

_SAMPLES = 20_000  # latency reservoir per kind: enough for stable p99, bounded memory


def _percentiles(samples: deque) -> dict[str, float | int | None]:
    if not samples:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}
    ordered = sorted(samples)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] * 1000, 3)

    return {"count": n, "p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99)}


class StatsAggregator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.hits: Counter[str] = Counter()
            self.misses = 0
            self.stores: Counter[str] = Counter()
            self.skipped: Counter[str] = Counter()
            self.evictions: Counter[str] = Counter()
            self.errors: Counter[str] = Counter()
            self.lm_calls = 0
            self.lm_errors = 0
            self.coalesced = 0
            self.tokens_spent = 0
            self.tokens_saved = 0
            self.dollars_spent = 0.0
            self.dollars_saved = 0.0
            self.by_model: dict[str, Counter] = {}
            self.hit_latency: deque[float] = deque(maxlen=_SAMPLES)
            self.miss_latency: deque[float] = deque(maxlen=_SAMPLES)
            self.other: Counter[str] = Counter()
            # model routing (router.py)
            self.dollars_saved_by_routing = 0.0
            self.routes: Counter[str] = Counter()
            self.route_sources: Counter[str] = Counter()
            self.batches: Counter[str] = Counter()
            # of hits and stores, those of whole batch items (events with extra.level "item")
            self.item_hits: Counter[str] = Counter()
            self.item_stores: Counter[str] = Counter()

    def _model(self, name: str | None) -> Counter:
        """The counters of one model, made on its first event (not one thrown away per event)."""
        counters = self.by_model.get(name or "?")
        if counters is None:
            counters = self.by_model[name or "?"] = Counter()
        return counters

    def __call__(self, event: Event) -> None:
        kind = event.kind
        with self._lock:
            if kind == ev.HIT:
                self.hits[event.tier or "?"] += 1
                self.tokens_saved += event.tokens
                self.dollars_saved += event.cost or 0.0
                if event.cost:
                    self._model(event.model)["dollars_saved_by_cache"] += event.cost
                if event.latency is not None:
                    self.hit_latency.append(event.latency)
                if event.extra is not None and event.extra.get("level") == "item":
                    self.item_hits[event.tier or "?"] += 1
            elif kind == ev.MISS:
                self.misses += 1
            elif kind == ev.LM_CALL:
                model = self._model(event.model)
                if event.error:
                    self.lm_errors += 1
                    model["errors"] += 1
                    return
                self.lm_calls += 1
                self.tokens_spent += event.tokens
                self.dollars_spent += event.cost or 0.0
                model["lm_calls"] += 1
                model["tokens"] += event.tokens
                model["dollars"] += event.cost or 0.0
                if event.latency is not None:
                    self.miss_latency.append(event.latency)
            elif kind == ev.COALESCED:
                # counted as a miss at lookup; it made no LM call of its own
                self.coalesced += 1
                self.tokens_saved += event.tokens
                self.dollars_saved += event.cost or 0.0
                if event.cost:
                    self._model(event.model)["dollars_saved_by_cache"] += event.cost
            elif kind == ev.STORE:
                self.stores[event.tier or "?"] += 1
                if event.extra is not None and event.extra.get("level") == "item":
                    self.item_stores[event.tier or "?"] += 1
            elif kind == ev.SKIP_STORE:
                self.skipped[event.reason or "?"] += 1
            elif kind == ev.EVICT:
                self.evictions[event.tier or "?"] += 1
            elif kind == ev.ERROR:
                self.errors[event.tier or (event.extra or {}).get("component", "?")] += 1
            elif kind == ev.ROUTE:
                extra = event.extra or {}
                self.routes[extra.get("tier") or "?"] += 1
                self.route_sources[extra.get("source") or "?"] += 1
                self._model(event.model)["routed"] += 1
            elif kind == ev.ROUTE_SAVING:
                self.dollars_saved_by_routing += event.cost or 0.0
                self._model(event.model)["dollars_saved_by_routing"] += event.cost or 0.0
            elif kind == "batch":  # batching.BATCH: one finished batch and what its items did
                self.batches["batches"] += 1
                self.batches["seconds"] += event.latency or 0.0
                for name, value in (event.extra or {}).items():
                    if isinstance(value, int):
                        self.batches[name] += value
            else:
                self.other[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            hits = sum(self.hits.values())
            lookups = hits + self.misses
            return {
                "hits": dict(self.hits),
                "hits_total": hits,
                "misses": self.misses,
                "hit_rate": round(hits / lookups, 4) if lookups else None,
                "lm_calls": self.lm_calls,
                "lm_errors": self.lm_errors,
                "coalesced": self.coalesced,
                "stores": dict(self.stores),
                "skipped_stores": dict(self.skipped),
                "evictions": dict(self.evictions),
                "errors": dict(self.errors),
                "tokens": {"spent": self.tokens_spent, "saved": self.tokens_saved},
                "dollars": {"spent": round(self.dollars_spent, 6), "saved": round(self.dollars_saved, 6),
                            "saved_by_routing": round(self.dollars_saved_by_routing, 9)},
                "by_model": {m: {k: round(v, 9) if isinstance(v, float) else v for k, v in c.items()}
                             for m, c in self.by_model.items()},
                "routing": {"decisions": dict(self.routes), "sources": dict(self.route_sources)},
                "latency": {"hit": _percentiles(self.hit_latency), "miss": _percentiles(self.miss_latency)},
                **({"other_events": dict(self.other)} if self.other else {}),
                **({"batches": {k: round(v, 3) if isinstance(v, float) else v for k, v in self.batches.items()}}
                   if self.batches else {}),
                **({"batch_items": {"hits": dict(self.item_hits), "hits_total": sum(self.item_hits.values()),
                                    "stores": dict(self.item_stores)}}
                   if self.item_hits or self.item_stores else {}),
            }
