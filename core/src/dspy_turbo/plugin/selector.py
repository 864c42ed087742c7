"""The model selector contract: which tier's model answers a request (``routing: {type: ...}``).

Subclass :class:`ModelSelector`, set ``name``, implement ``select(request)`` returning a
:class:`Decision` (the tier, its model, a score). Every selector's options share the tier
list and the optional budget (:class:`SelectorOptions`, a list of :class:`ModelTier`,
:class:`BudgetSettings`); ``tier_for_score`` maps a score in ``[0, 1]`` to a tier. Register
the class through ``dspy_turbo_model_selectors``. The router asks the
``dspy_turbo_select_model`` hook first, and the selector only when every implementation
returned ``None``. ``dspy_turbo.testing.ModelSelectorSuite`` checks every rule.
"""

from __future__ import annotations

from ..routing.model_selection import BudgetSettings, Decision, ModelSelector, ModelTier, SelectorOptions

__all__ = ["BudgetSettings", "Decision", "ModelSelector", "ModelTier", "SelectorOptions"]
