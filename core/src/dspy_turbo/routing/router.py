"""``turbo.router()``: a DSPy LM that picks the model for every call.

    turbo = dspy_turbo.load("turbo.yaml").install()
    dspy.configure(lm=turbo.router())      # every predictor is now routed

Per call, in this order: the budget (when reached: the cheapest tier, or ``BudgetExceeded``),
an explicit ``tier="name"`` argument on the call (``predict(..., config={"tier": "large"})``),
the ``dspy_turbo_select_model`` hook (first non-None wins), then the configured selector.
The call then runs as the chosen tier's own ``dspy.LM`` through DSPy's execution path, so
the chosen model is part of the cache key (routing happens before the cache lookup) and
caching, single-flight, history and usage tracking work as for any LM.

Every decision is a ``route`` event (model, estimated cost; tier, score, source in ``extra``);
a routed LM call that ran on a cheaper tier than the last one is a ``route_saving`` event:
what the same tokens would have cost on the last (strongest) tier, minus what they cost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dspy.clients.base_lm import BaseLM
from dspy.utils.callback import with_callbacks

from ..events import bus as ev
from ..events.bus import Event, describe_error
from .budget import Budget
from .context import count_tokens
from .model_selection import Decision, ModelSelector, ModelTier

if TYPE_CHECKING:
    from ..host.turbo import Turbo

EXPECTED_OUTPUT_TOKENS = 256
"""Completion tokens assumed for a cost estimate when the call sets no ``max_tokens``."""
HINT_ARGUMENT = "tier"


@functools.lru_cache(maxsize=1024)  # a repeated request (a cache hit) is estimated again on every call
def _prompt_tokens(text: str, model: str) -> int:
    return count_tokens(text, model)


def _messages(prompt: Any, messages: Any) -> list[dict[str, Any]]:
    if messages:
        return list(messages)
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return []


class RouterLM(BaseLM):
    """A ``dspy.BaseLM`` that routes each call to one tier's model (see the module docstring).

    ``lms``: ready LMs by model name (e.g. offline LMs in tests); ``lm_factory(model, **lm_kwargs)``
    builds the others (default ``dspy.LM``), with each tier's ``lm_kwargs`` from the YAML.
    """

    def __init__(self, turbo: Turbo, *, lms: Mapping[str, BaseLM] | None = None,
                 lm_factory: Callable[..., BaseLM] | None = None, **kwargs: Any):
        super().__init__(model="dspy-turbo/router", model_type="chat", **kwargs)
        self.turbo = turbo
        self.selector: ModelSelector = turbo.model_selector()
        self.budget: Budget | None = turbo.routing_budget()
        self.lm_factory = lm_factory
        self._lms: dict[str, BaseLM] = dict(lms or {})
        self._lock = threading.Lock()
        self._hook = turbo.pm.hook.dspy_turbo_select_model
        self._has_hooks = bool(self._hook.get_hookimpls())

    # -- which LM ---------------------------------------------------------------------------

    @property
    def tiers(self) -> list[ModelTier]:
        return self.selector.tiers

    def lm_for(self, model: str) -> BaseLM:
        lm = self._lms.get(model)
        if lm is not None:
            return lm
        with self._lock:
            if model not in self._lms:
                tier = self.selector.tier_for_model(model)
                options = dict(tier.lm_kwargs) if tier else {}
                if self.lm_factory is not None:
                    self._lms[model] = self.lm_factory(model, **options)
                else:
                    import dspy

                    self._lms[model] = dspy.LM(model, **options)
            return self._lms[model]

    def _all(self, attribute: str) -> bool:
        return all(getattr(self.lm_for(t.model), attribute, False) for t in self.tiers)

    @property
    def supports_function_calling(self) -> bool:
        return self._all("supports_function_calling")

    @property
    def supports_reasoning(self) -> bool:
        return self._all("supports_reasoning")

    @property
    def supports_response_schema(self) -> bool:
        return self._all("supports_response_schema")

    # -- deciding -----------------------------------------------------------------------------

    def decide(self, prompt: Any = None, messages: Any = None, *, emit: bool = True, **kwargs: Any) -> Decision:
        """The decision for one call, without making it (``emit=False``: no event)."""
        kwargs = {**{k: v for k, v in self.kwargs.items() if v is not None}, **kwargs}
        hint = kwargs.pop(HINT_ARGUMENT, None)
        request = {"model": self.model, "messages": _messages(prompt, messages), **kwargs}
        decision = self._decide(request, hint)
        decision.estimated_cost = self._estimate(decision.model, request)
        if emit:
            self.turbo.bus.emit(Event(ev.ROUTE, model=decision.model, cost=decision.estimated_cost,
                                      namespace=self.turbo.namespace,
                                      extra={"tier": decision.tier, "score": decision.score, "source": decision.source}))
        return decision

    def _decide(self, request: dict[str, Any], hint: str | None) -> Decision:
        tiers = self.tiers
        if self.budget is not None and self.budget.exceeded():
            cheapest = tiers[0]
            source = "budget" if self.budget.on_exceeded == "cheapest" else "over_budget"
            return Decision(cheapest.name, cheapest.model, None, source)
        if hint is not None:
            tier = self.selector.tier_named(str(hint))
            if tier is None:
                raise ValueError(f"unknown routing tier {hint!r} in the call's {HINT_ARGUMENT}= argument; "
                                 f"tiers: {', '.join(t.name for t in tiers)}")
            return Decision(tier.name, tier.model, None, "hint")
        if self._has_hooks:
            try:
                model = self._hook(request=request, models=[t.model for t in tiers], turbo=self.turbo)
            except Exception as exc:  # a broken policy plugin never breaks the program
                self.turbo.bus.emit(Event(ev.ERROR, error=describe_error(exc), reason="dspy_turbo_select_model",
                                          namespace=self.turbo.namespace, extra={"component": "hook"}))
                model = None
            if model is not None:
                tier = self.selector.tier_for_model(model)
                return Decision(tier.name if tier else "hook", model, None, "hook")
        try:
            return self.selector.select(request)
        except Exception as exc:  # a broken selector: the strongest tier keeps answers right
            self.turbo.bus.emit(Event(ev.ERROR, error=describe_error(exc), reason="model_selector",
                                      namespace=self.turbo.namespace, extra={"component": self.selector.name}))
            return Decision(tiers[-1].name, tiers[-1].model, None, "fallback")

    def _estimate(self, model: str, request: dict[str, Any]) -> float | None:
        price = self.turbo.prices.prices(model)
        if price is None:
            return None
        text = "\n".join(str(m.get("content") or "") for m in request.get("messages") or [])
        completion = request.get("max_tokens") or request.get("max_completion_tokens") or EXPECTED_OUTPUT_TOKENS
        completion = min(int(completion), EXPECTED_OUTPUT_TOKENS)
        return _prompt_tokens(text, model) * price[0] + completion * price[1]

    def explain(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> dict[str, Any]:
        """What ``dspy-turbo route`` prints: the decision, its features and every tier's estimate."""
        decision = self.decide(prompt, messages, emit=False, **kwargs)
        request = {"model": self.model, "messages": _messages(prompt, messages), **kwargs}
        n = len(self.tiers)
        tiers = []
        for i, tier in enumerate(self.tiers):
            upper = tier.max_score if tier.max_score is not None else (i + 1) / n
            tiers.append({"name": tier.name, "model": tier.model, "scores": "rest" if i == n - 1 else f"< {upper:g}",
                          "estimated_cost": self._estimate(tier.model, request),
                          "priced": self.turbo.prices.known(tier.model)})
        return {"tier": decision.tier, "model": decision.model, "score": decision.score, "source": decision.source,
                "features": {k: round(v, 3) for k, v in decision.features.items()},
                "priority": getattr(self.selector.options, "priority", None),
                "estimated_cost": decision.estimated_cost, "tiers": tiers,
                "budget": self.budget.status() if self.budget else None}

    # -- calling --------------------------------------------------------------------------------

    def _route(self, prompt, messages, kwargs) -> tuple[Decision, BaseLM, Any, dict]:
        from dspy.lm15 import Request

        decision = self.decide(prompt, messages, **kwargs)
        kwargs = {k: v for k, v in kwargs.items() if k != HINT_ARGUMENT}
        kwargs = {**{k: v for k, v in self.kwargs.items() if v is not None}, **kwargs}
        lm = self.lm_for(decision.model)
        if isinstance(prompt, Request):  # an explicit Request names its model: the chosen one
            prompt = dataclasses.replace(prompt, model=lm.model)
        return decision, lm, prompt, kwargs

    def _over_budget(self, lm, call, cached) -> Any:
        """``on_exceeded: error``: a request already answered costs nothing, so serve it."""
        from dspy.clients import execution

        if cached is not None:
            return execution.finalize(lm, call, cached)
        raise self.budget.error()

    def _account(self, decision: Decision, lm: BaseLM, result: Any) -> None:
        if getattr(result, "cache_hit", False):
            return
        usage = dict(getattr(result, "usage", None) or {})
        cost = self.turbo.prices.cost(decision.model, usage, getattr(result, "cost", None))
        if self.budget is not None:
            self.budget.add(cost)
        top = self.tiers[-1].model
        if cost is None or decision.model == top or not usage:
            return
        baseline = self.turbo.prices.estimate(top, int(usage.get("prompt_tokens") or 0),
                                              int(usage.get("completion_tokens") or 0))
        if baseline is not None:
            self.turbo.bus.emit(Event(ev.ROUTE_SAVING, model=decision.model, cost=baseline - cost,
                                      namespace=self.turbo.namespace, extra={"baseline_model": top}))

    @with_callbacks
    def __call__(self, prompt=None, *, messages=None, **kwargs):
        from dspy.clients import execution

        decision, lm, prompt, kwargs = self._route(prompt, messages, kwargs)
        call = execution.prepare(lm, prompt, messages, kwargs)
        if decision.source == "over_budget":
            return self._over_budget(lm, call, execution._cached(lm, call, False) if call.cache else None)
        result = execution.execute(lm, call)  # looked up at call time: the Turbo wraps it when installed
        self._account(decision, lm, result)
        return execution.finalize(lm, call, result)

    @with_callbacks
    async def acall(self, prompt=None, *, messages=None, **kwargs):
        from dspy.clients import execution

        decision, lm, prompt, kwargs = self._route(prompt, messages, kwargs)
        call = await asyncio.to_thread(execution.prepare, lm, prompt, messages, kwargs, asynchronous=True)
        if decision.source == "over_budget":
            cached = await asyncio.to_thread(execution._cached, lm, call, True) if call.cache else None
            return self._over_budget(lm, call, cached)
        result = await execution.aexecute(lm, call)
        self._account(decision, lm, result)
        return execution.finalize(lm, call, result)

    def __repr__(self) -> str:
        return f"<RouterLM tiers={' < '.join(f'{t.name}:{t.model}' for t in self.tiers)}>"
