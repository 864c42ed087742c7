"""What every component is: a class with a short ``name``, a ``kind`` and a typed ``Options`` model.

A plugin hands component classes to the host through the registration hooks; the YAML
picks one by ``type: <name>``. ``Options`` is a pydantic model with unknown keys forbidden,
so a misspelt option is a config error naming its YAML path. A secret option is typed as
one (:class:`SecretURL`, pydantic's ``SecretStr``) and is masked in every repr, dump,
schema and message. ``from_options(options, host)`` builds the component; ``host`` is the
:class:`~dspy_turbo.plugin.host.Host` it serves (``None`` when built outside one, e.g. by
``dspy-turbo calibrate``). A component that cannot work here (a package that does not
import, a model that is not on disk) raises :class:`ComponentUnavailable` from
``from_options``: the host reports it as a config error at the component's YAML path.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..host.components import KINDS, Component, Options, SecretStr, SecretURL
from ..host.redaction import SECRET_TYPES

__all__ = ["KINDS", "SECRET_TYPES", "Component", "ComponentUnavailable", "Options", "SecretStr", "SecretURL",
           "import_object"]


class ComponentUnavailable(RuntimeError):
    """Raised by a component's ``from_options`` when what it needs is missing or broken
    (a package that does not import, a model that is not on disk). The Turbo turns it into
    a ``ConfigError`` at the component's YAML path, so it fails at load, not at a call.
    ``package`` names what to install, when that is the fix."""

    def __init__(self, message: str, package: str | None = None):
        super().__init__(message)
        self.package = package


def import_object(spec: str) -> Any:
    """The object an option names as ``"package.module:attr.path"`` (e.g. an app's own
    registry or tracer provider), imported now. Raises the ``ImportError`` or
    ``AttributeError`` that says what is missing; the component words it for its config."""
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
