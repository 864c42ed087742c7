"""The attribute names the spans carry: OpenTelemetry's GenAI semantic conventions where they
apply (https://opentelemetry.io/docs/specs/semconv/gen-ai/), ``dspy_turbo.*`` for the cache.

The GenAI names are still "development" status in the conventions (the Python package has them
only under ``opentelemetry.semconv._incubating``, a private path), so they are spelt here.
"""

from __future__ import annotations

SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"

# -- GenAI (semantic conventions 1.37)
OPERATION_NAME = "gen_ai.operation.name"
CHAT = "chat"  # DSPy's LMs default to chat; the events do not say otherwise (as the Prometheus sink's label)
REQUEST_MODEL = "gen_ai.request.model"
PROVIDER_NAME = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # the name before 1.37, which many backends still read
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
ERROR_TYPE = "error.type"

# -- dspy-turbo
LOOKUP_SPAN = "dspy_turbo.cache.lookup"
COALESCED_SPAN = "dspy_turbo.cache.coalesced"
NAMESPACE = "dspy_turbo.namespace"
CACHE_RESULT = "dspy_turbo.cache.result"
CACHE_TIER = "dspy_turbo.cache.tier"
CACHE_KEY = "dspy_turbo.cache.key"
SIMILARITY = "dspy_turbo.semantic.similarity"
SAVED_TOKENS = "dspy_turbo.saved.tokens"
SAVED_COST = "dspy_turbo.saved.cost_usd"
COST = "dspy_turbo.cost_usd"


def provider(model: str) -> str | None:
    """The provider part of a LiteLLM model name (``openai/gpt-4o-mini`` -> ``openai``), or None
    when the name has none (the Prometheus sink's ``gen_ai_provider_name`` label, there ``unknown``)."""
    head, sep, _ = model.partition("/")
    return head if sep and head else None
