"""The configuration a batch worker (another process or host) builds its own Turbo from.

For batch strategies that run items elsewhere (``process`` in dspy-turbo-batching, ``ray``
in dspy-turbo-ray). :func:`driver_document` is the running Turbo's own configuration,
rebuilt from what ``load`` validated (``Config``: the settings and every component's
options), so a worker has the same tiers, namespace, key rules, single-flight and signing
key. Secrets are in it as plain values (a worker needs the real Redis URL), so it travels
only to the workers, never into a log, an event or a repr. Metric sinks are left out (a
Prometheus port is the driver's), and so is ``batching`` (a worker runs items, it does not
batch).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import orjson
from pydantic import BaseModel

from .components import SECRET_TYPES

__all__ = ["driver_document", "encode"]


def _plain(value: Any) -> Any:
    """Options as plain JSON values, secrets unwrapped."""
    if isinstance(value, SECRET_TYPES):
        return _plain(value.get_secret_value())
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(exclude_unset=True))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return value


def _block(spec: Any) -> dict[str, Any]:
    return {"type": spec.cls.name, **_plain(spec.options)}


def driver_document(turbo: Any) -> dict[str, Any]:
    """The Turbo's configuration as a document ``dspy_turbo.load`` accepts."""
    config = turbo.config
    doc = _plain(config.settings.model_dump(exclude_unset=True))
    cache = doc.setdefault("cache", {})
    cache["tiers"] = [_block(spec) for spec in config.tiers]
    semantic = cache.get("semantic")
    if isinstance(semantic, dict):
        semantic["index"] = _block(config.component("cache.semantic.index"))
        semantic["embedder"] = _block(config.component("cache.semantic.embedder"))
    if config.routing is not None:
        doc["routing"] = _block(config.routing)
    doc.pop("batching", None)
    metrics = doc.get("metrics")
    if isinstance(metrics, dict):
        metrics.pop("sinks", None)
    return doc


def encode(document: dict[str, Any], hint: str = "pass the workers' configuration as a mapping or a YAML path") -> bytes:
    try:
        return orjson.dumps(document)
    except TypeError as exc:
        raise TypeError(f"the worker configuration holds a value that is not JSON ({exc}); {hint}") from None
