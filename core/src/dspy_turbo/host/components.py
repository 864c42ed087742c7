"""What a component is: a class with a short ``name``, a typed ``Options`` model, and a kind.

Plugins hand component classes to the host through the registration hooks
(see ``hookspecs``); the YAML picks them by ``type: <name>``. ``Options`` is a pydantic
model with unknown keys forbidden, so a misspelt option is a config error naming its path.

A secret option is typed as one: :class:`SecretURL` for a URL (only its credentials are
masked: ``redis://:***@host:6379/0``), pydantic's ``SecretStr`` for a key or token. The
component reads the real value with ``get_secret_value()``; repr, str, ``model_dump``,
``model_dump_json``, the JSON schema, config messages and the CLI show it masked.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Secret, SecretStr, model_serializer
from pydantic.json_schema import WithJsonSchema

from .redaction import SECRET_TYPES, redact_url, scrub

__all__ = ["KINDS", "Component", "Options", "SecretStr", "SecretURL"]

# The areas a component can serve, as the YAML and ``dspy-turbo plugins`` name them.
KINDS = ("cache_backend", "similarity_index", "embedder", "batch_strategy", "model_selector", "metric_sink")


def _url(value: str) -> str:
    # Messages never echo the value: it may hold a password.
    value = value.strip()
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("the URL's port is not a number from 1 to 65535") from None
    if not parts.scheme or "://" not in value:
        raise ValueError("not a URL: expected scheme://host[:port][/path], e.g. redis://127.0.0.1:6379/0")
    if port == 0:
        raise ValueError("the URL's port is not a number from 1 to 65535")
    return value


class SecretURL(Secret[Annotated[str, AfterValidator(_url), WithJsonSchema({"type": "string", "format": "uri"})]]):
    """A URL option whose credentials are a secret: shown as ``redis://user:***@host:6379/0``
    (in repr, str, JSON dumps, schema defaults), so its shape stays readable. The component
    reads the real URL with ``get_secret_value()``."""

    def _display(self) -> str:
        return redact_url(self.get_secret_value())


class Options(BaseModel):
    """Base for every component's options: unknown keys are an error, numbers are finite.

    Nothing secret is shown: fields typed as secrets (``SecretURL``, ``SecretStr``) are masked
    by their type, and as a safety net repr and ``model_dump_json`` also mask URL credentials
    in any string and credential-named keys (``password``, ``api_key``...) in free-form
    mappings (see ``redaction``). A python ``model_dump`` is data: unmarked values come back
    as given, so mark what is secret. Errors never echo the input (``hide_input_in_errors``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, hide_input_in_errors=True)

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, value if isinstance(value, SECRET_TYPES) else scrub(value)

    @model_serializer(mode="wrap")
    def _masked(self, handler, info):
        data = handler(self)
        # JSON is what gets written out (logs, files, schemas); a python dump keeps the secret
        # objects themselves (masked in their repr), so options still round-trip.
        return scrub(data) if info.mode_is_json() else data


class Component:
    """Base for component classes. Subclasses set ``name``, ``kind`` and ``Options``."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options

    @classmethod
    def check_available(cls, options: Options) -> None:
        """Raise (``dspy_turbo.plugin.ComponentUnavailable``, with a message saying what to
        install or give) when the component cannot be built on this machine: a package that
        does not import, a model that is not here. Cheap: no connection, no model loaded.
        Part of validating a config, so ``dspy-turbo check`` refuses what ``load()`` would;
        the message is reported at the component's YAML path. The default finds nothing."""

    @classmethod
    def from_options(cls, options: Options, turbo: Any = None) -> Component:
        """Build the component; override when construction needs the Turbo instance."""
        return cls(options)  # type: ignore[call-arg]

    def __init__(self, options: Options | None = None):
        self.options = options if options is not None else self.Options()
