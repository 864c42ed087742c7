"""Dollar cost of an LM call from its token usage, with the price table DSPy ships.

The table is DSPy's bundled copy of LiteLLM's price map (offline when
``LITELLM_LOCAL_MODEL_COST_MAP=True``). An unknown model costs ``None`` (unknown), never 0.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=512)
def prices(model: str) -> tuple[float, float] | None:
    """(dollars per input token, dollars per output token) for ``provider/model`` or ``model``."""
    try:
        from dspy.clients.model_metadata import model_info
    except ImportError:  # an older DSPy without the bundled table
        return None
    provider, _, name = model.partition("/")
    candidates = [(provider, name)] if name else []
    candidates.append(("openai", model))
    for prov, mod in candidates:
        try:
            info = model_info(prov, mod)
        except Exception:
            info = None
        if info and info.get("input_cost_per_token") is not None:
            return float(info["input_cost_per_token"]), float(info.get("output_cost_per_token") or 0.0)
    return None


def estimate(model: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    if not model:
        return None
    price = prices(model)
    if price is None:
        return None
    return prompt_tokens * price[0] + completion_tokens * price[1]
