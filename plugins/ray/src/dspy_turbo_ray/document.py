"""The configuration a Ray worker builds its own Turbo from.

By default it is the driver Turbo's own configuration (``dspy_turbo.plugin.worker_config``,
shared with dspy-turbo-batching's ``process`` strategy), rebuilt from what ``load``
validated, so a worker has the same tiers, namespace, key rules, single-flight and signing
key as the driver. Secrets are in it as plain values (a worker needs the real Redis URL),
so it travels only as an argument of the worker actors, never into a log, an event or a
repr. Metric sinks are left out (a Prometheus port is the driver's; see the README), and so
is ``batching`` (a worker runs items, it does not batch).
"""

from __future__ import annotations

from typing import Any

from dspy_turbo.plugin import worker_config
from dspy_turbo.plugin.worker_config import driver_document

__all__ = ["driver_document", "encode"]


def encode(document: dict[str, Any]) -> bytes:
    return worker_config.encode(document, "pass ray.worker_config as a mapping or a YAML path")
