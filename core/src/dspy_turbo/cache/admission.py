"""Which LM responses are worth storing, and what a response cost.

Understands DSPy's native result records (``{"_dspy_format": ...}``), LiteLLM
``ModelResponse`` objects, and plain values from ``@cached`` functions.
"""

from __future__ import annotations

from typing import Any

from ..routing import costs


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def refusal_reason(value: Any) -> str | None:
    """``"error"``, ``"empty"`` or ``"truncated"`` when the value should not be stored by default."""
    if value is None:
        return "empty"
    if isinstance(value, BaseException):
        return "error"
    if isinstance(value, dict) and "_dspy_format" in value:
        finished = [_get(r, "finish_reason") for r in value.get("responses") or ()]  # one pass, on every store
        if "length" in finished:
            return "truncated"
        if "error" in finished:
            return "error"
        outputs = value.get("outputs") or []
        if not outputs or all(_is_empty_output(o) for o in outputs):
            return "empty"
        return None
    choices = _get(value, "choices", None)
    if (choices is not None and hasattr(value, "model_dump")) or (isinstance(value, dict) and "choices" in value):
        choices = choices or []
        if any(_get(c, "finish_reason") == "length" for c in choices):
            return "truncated"
        if not choices or all(_is_empty_choice(c) for c in choices):
            return "empty"
    return None


def _is_empty_output(output: Any) -> bool:
    if isinstance(output, str):
        return not output.strip()
    if isinstance(output, dict):
        text = output.get("text") or ""
        return not str(text).strip() and not output.get("tool_calls")
    return output is None


def _is_empty_choice(choice: Any) -> bool:
    message = _get(choice, "message")
    if message is None:
        return not str(_get(choice, "text") or "").strip()
    return not str(_get(message, "content") or "").strip() and not _get(message, "tool_calls")


def usage_and_cost(value: Any, model: str | None, prices: costs.PriceTable | None = None) -> tuple[dict[str, int], float | None, str | None]:
    """(usage, dollars, model) of the original call that produced ``value``; ``prices``: the Turbo's table."""
    usage: dict[str, int] = {}
    cost = None
    raw_usage = None
    if isinstance(value, dict) and "_dspy_format" in value:
        raw_usage = value.get("usage")
        cost = value.get("cost")
        responses = value.get("responses") or []
        if responses and not model:
            model = _get(responses[0], "model")
    elif hasattr(value, "choices") and hasattr(value, "model_dump"):
        raw_usage = getattr(value, "usage", None)
        hidden = getattr(value, "_hidden_params", None) or {}
        cost = hidden.get("response_cost")
    if raw_usage:
        prompt = int(_get(raw_usage, "prompt_tokens", 0) or 0)
        completion = int(_get(raw_usage, "completion_tokens", 0) or 0)
        total = int(_get(raw_usage, "total_tokens", 0) or prompt + completion)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
        if prices is not None:
            cost = prices.cost(model, usage, cost)
        elif cost is None:
            cost = costs.estimate(model, prompt, completion)
    return usage, cost, model
