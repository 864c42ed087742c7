"""Dollar cost of an LM call from its token usage, with the price table DSPy ships.

The table is DSPy's bundled copy of LiteLLM's price map (offline when
``LITELLM_LOCAL_MODEL_COST_MAP=True``). An unknown model costs ``None`` (unknown), never 0.

A Turbo prices through a :class:`PriceTable`: the YAML's ``costs.prices`` (for private or
self-hosted models, or negotiated rates) first, then the bundled table. A model with no
price is a warning naming it, once per model, never an error: its calls count $0.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..host.components import Options

if TYPE_CHECKING:
    from ..host.turbo import Turbo

logger = logging.getLogger("dspy_turbo")


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


# -- price overrides from the YAML ---------------------------------------------------------------


class ModelPrice(Options):
    """One model's price in dollars per million tokens, as providers quote them."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(default=0.0, ge=0)


class CostSettings(Options):
    """``costs:`` in the YAML."""

    prices: dict[str, ModelPrice] = {}
    """``{model: {input_per_million: 0.2, output_per_million: 0.6}}``; wins over the bundled table."""


class PriceTable:
    """Prices for one Turbo: the YAML's overrides, then DSPy's bundled table."""

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None):
        self.overrides = {m: (p.input_per_million / 1e6, p.output_per_million / 1e6) for m, p in (overrides or {}).items()}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def prices(self, model: str | None) -> tuple[float, float] | None:
        if not model:
            return None
        return self.overrides.get(model) or prices(model)

    def known(self, model: str) -> bool:
        return self.prices(model) is not None

    def estimate(self, model: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
        price = self.prices(model)
        if price is None:
            self._warn_unknown(model)
            return None
        return prompt_tokens * price[0] + completion_tokens * price[1]

    def cost(self, model: str | None, usage: Mapping[str, Any] | None, reported: float | None = None) -> float | None:
        """What a call cost: an override wins, then the provider's reported cost, then the table."""
        prompt = int((usage or {}).get("prompt_tokens") or 0)
        completion = int((usage or {}).get("completion_tokens") or 0)
        if model in self.overrides and usage:
            return self.estimate(model, prompt, completion)
        if reported is not None:
            return float(reported)
        if not usage:
            return None
        return self.estimate(model, prompt, completion)

    def _warn_unknown(self, model: str | None) -> None:
        if not model or model in self._warned:
            return
        with self._lock:
            if model in self._warned:
                return
            self._warned.add(model)
        logger.warning("no price known for model %r: its calls count as $0 in stats and budgets; "
                       "add it to the config under costs.prices", model)


def unpriced(models: Iterable[tuple[str, str]], overrides: Mapping[str, ModelPrice]) -> list[tuple[str, str]]:
    """The ``(yaml_path, model)`` pairs whose model has no price, for config warnings."""
    table = PriceTable(overrides)
    return [(path, model) for path, model in models if not table.known(model)]


def usage_cost(lm: Any, result: Any, turbo: Turbo | None = None) -> tuple[dict, float | None]:
    """The token usage and dollar cost of one LM result: the YAML's price overrides (``turbo.prices``)
    over what DSPy estimated, else DSPy's cost, else the bundled price table's estimate."""
    model = getattr(lm, "model", None)
    usage = dict(getattr(result, "usage", None) or {})
    cost = getattr(result, "cost", None)
    if turbo is not None:  # the YAML's price overrides win over what DSPy estimated
        return usage, turbo.prices.cost(model, usage, cost)
    if cost is None and usage:
        cost = estimate(model, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    return usage, cost
