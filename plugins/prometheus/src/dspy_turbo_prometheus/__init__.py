"""dspy-turbo's Prometheus metric sink (``metrics: {sinks: [{type: prometheus}]}``)."""

from __future__ import annotations

from .sink import PrometheusSink, serve_multiprocess

__all__ = ["PrometheusSink", "serve_multiprocess"]
