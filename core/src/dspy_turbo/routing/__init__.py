"""Model selection and what it weighs: the model selectors (``model_selection``),
``turbo.router()``, the dollar cost of LM calls, spend budgets, and keeping prompts within a
token budget (``context``).

``dspy_turbo.routing`` was the model selectors' module: its names read from here still work
for one release, with a DeprecationWarning naming ``dspy_turbo.routing.model_selection``."""

from .._moved import moved_into

__getattr__ = moved_into(__name__, "dspy_turbo.routing.model_selection")
