"""What a component is: a class with a short ``name``, a typed ``Options`` model, and a kind.

Plugins hand component classes to the host through the registration hooks
(see ``hookspecs``); the YAML picks them by ``type: <name>``. ``Options`` is a pydantic
model with unknown keys forbidden, so a misspelt option is a config error naming its path.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

# The areas a component can serve, as the YAML and ``dspy-turbo plugins`` name them.
KINDS = ("cache_backend", "similarity_index", "embedder", "batch_strategy", "model_selector", "metric_sink")


class Options(BaseModel):
    """Base for every component's options: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Component:
    """Base for component classes. Subclasses set ``name``, ``kind`` and ``Options``."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options

    @classmethod
    def from_options(cls, options: Options, turbo: Any = None) -> Component:
        """Build the component; override when construction needs the Turbo instance."""
        return cls(options)  # type: ignore[call-arg]

    def __init__(self, options: Options | None = None):
        self.options = options if options is not None else self.Options()
