"""The metric families, their names, units and labels. Imports prometheus_client.

Names follow the Prometheus conventions (``snake_case``, base units in the name:
seconds, bytes, dollars; counters end in ``_total``) and, for the LM calls, the
OpenTelemetry GenAI semantic conventions as Prometheus spells them
(``gen_ai.client.operation.duration`` -> ``gen_ai_client_operation_duration_seconds``,
attribute ``gen_ai.request.model`` -> label ``gen_ai_request_model``). Every label has
a bounded set of values: tier names, model names, event reasons, configured alert
and timer names; never keys, request text or error messages.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The bucket boundaries the OTel GenAI semantic conventions advise.
OPERATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
# Cache lookups are micro- to milliseconds (memory) up to tens of ms (redis, disk).
LOOKUP_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                  0.1, 0.25, 0.5, 1.0)
SIMILARITY_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0)
TIMED_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


# The names of the families ``dspy-turbo top`` (dashboard.py) reads back from /metrics:
# one definition for the sink that writes them and the view that reads them. In the
# exposition a counter's samples end in ``_total`` and a histogram's buckets in ``_bucket``.
LOOKUPS = "dspy_turbo_cache_lookups"
LOOKUP_DURATION = "dspy_turbo_cache_lookup_duration_seconds"
LM_CALLS = "dspy_turbo_lm_calls"
OPERATION_DURATION = "gen_ai_client_operation_duration_seconds"
TOKENS = "dspy_turbo_tokens"
DOLLARS = "dspy_turbo_cost_dollars"
ERRORS = "dspy_turbo_errors"
ALERT_ACTIVE = "dspy_turbo_alert_active"
DROPPED = "dspy_turbo_events_dropped"
MEMORY = "dspy_turbo_process_memory_bytes"


class Metrics:
    """Every family, registered in ``registry`` (``None``: multiprocess files only)."""

    def __init__(self, registry: CollectorRegistry | None):
        r = {"registry": registry}
        self.lookups = Counter(LOOKUPS, "Cache lookups by the tier that answered (tier=none: a miss in every tier) and result.",
                               ["tier", "result"], **r)
        self.lookup_duration = Histogram(LOOKUP_DURATION, "Time to answer a cache lookup, by result.",
                                         ["result"], buckets=LOOKUP_BUCKETS, **r)
        self.stores = Counter("dspy_turbo_cache_stores", "Entries written to a tier (reason: write or promote).",
                              ["tier", "reason"], **r)
        self.store_skips = Counter("dspy_turbo_cache_store_skips", "Responses not stored, by reason (error, empty, truncated, vetoed, ...).",
                                   ["reason"], **r)
        self.evictions = Counter("dspy_turbo_cache_evictions", "Entries evicted from a tier to stay within its bounds.", ["tier"], **r)
        self.similarity = Histogram("dspy_turbo_semantic_similarity", "Cosine similarity of semantic-cache candidates, by result "
                                    "(hit, near_miss: under the threshold, rejected: a guard refused it).",
                                    ["result"], buckets=SIMILARITY_BUCKETS, **r)
        self.lm_calls = Counter(LM_CALLS, "LM calls made (cache misses that reached the model), by model and result.",
                                ["model", "result"], **r)
        self.operation_duration = Histogram(
            OPERATION_DURATION, "GenAI operation duration (OpenTelemetry gen_ai.client.operation.duration).",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"],
            buckets=OPERATION_BUCKETS, **r)
        self.token_usage = Histogram(
            "gen_ai_client_token_usage", "Tokens used per GenAI operation (OpenTelemetry gen_ai.client.token.usage).",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS, **r)
        self.tokens = Counter(TOKENS, "Tokens: spent by LM calls, saved by cache hits and coalesced calls.",
                              ["model", "kind"], **r)
        self.dollars = Counter(DOLLARS, "US dollars: spent by LM calls, saved by cache hits and coalesced calls, saved by routing.",
                               ["model", "kind"], **r)
        self.routes = Counter("dspy_turbo_route_decisions", "Model routing decisions, by tier, model and what decided.",
                              ["tier", "model", "source"], **r)
        self.coalesced = Counter("dspy_turbo_coalesced_calls", "Requests served by another caller's in-flight LM call (single-flight).",
                                 ["model"], **r)
        self.errors = Counter(ERRORS, "Errors by component (a tier, core, hook, lm) and operation; never raised into the program.",
                              ["component", "operation"], **r)
        self.breaker = Counter("dspy_turbo_circuit_breaker_transitions", "Circuit breaker state changes of a tier.",
                               ["tier", "state"], **r)
        self.batch_events = Counter("dspy_turbo_batch_events", "Batch progress events, by kind.", ["kind"], **r)
        self.batch_items = Counter("dspy_turbo_batch_items", "Batch items, by result (from batch events' counts).", ["result"], **r)
        # Whole batch items served from or stored in the item cache: also counted in lookups and
        # stores (as turbo.stats() counts them), so an LM-level hit rate can subtract them.
        self.item_hits = Counter("dspy_turbo_batch_item_hits", "Whole batch items served from the item cache, by tier "
                                 "(also counted in dspy_turbo_cache_lookups_total).", ["tier"], **r)
        self.item_stores = Counter("dspy_turbo_batch_item_stores", "Whole batch items written to a tier's item cache "
                                   "(also counted in dspy_turbo_cache_stores_total).", ["tier"], **r)
        self.other_events = Counter("dspy_turbo_other_events", "Events of kinds this sink has no metric of its own for "
                                    "(routing decisions, retries, semantic index changes, ...), by kind.", ["kind"], **r)
        self.timed = Histogram("dspy_turbo_timed_duration_seconds", "Duration of user code timed with turbo.timed(name) or turbo.profile().",
                               ["name"], buckets=TIMED_BUCKETS, **r)
        self.timed_errors = Counter("dspy_turbo_timed_errors", "Timed blocks that raised.", ["name"], **r)
        self.alert_active = Gauge(ALERT_ACTIVE, "1 while an alert rule is firing, 0 once it resolved.",
                                  ["alert"], multiprocess_mode="max", **r)
        self.dropped = Counter(DROPPED, "Events a metric sink lost because its queue was full.", ["sink"], **r)
        self.memory = Gauge(MEMORY, "Resident memory of the process (multiprocess: of all live workers).",
                            multiprocess_mode="livesum", **r)
        self.tier_bytes = Gauge("dspy_turbo_cache_tier_bytes", "Bytes held by an in-process (memory) tier.", ["tier"],
                                multiprocess_mode="livesum", **r)
        self.tier_entries = Gauge("dspy_turbo_cache_tier_entries", "Entries held by an in-process (memory) tier.", ["tier"],
                                  multiprocess_mode="livesum", **r)
