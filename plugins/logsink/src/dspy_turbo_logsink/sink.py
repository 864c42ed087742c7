"""The ``log`` metric sink: one structured line per event through the ``logging`` module.

::

    metrics:
      sinks:
        - type: log
          format: json              # or kv (key=value, logfmt style)
          logger: dspy_turbo.events.log
          levels: {lm_call: INFO}   # per event kind; defaults below
          sample: {hit: 0.01}       # keep 1% of hits (high volume); others: every event
          include_details: false    # keys (hashes) and error messages; off by default

Lines go through a standard logger, so the application's logging configuration decides
where they end up (stderr, a file, a collector). They never contain request text: events
carry none. Cache keys and error messages are left out unless ``include_details: true``;
the error's type is always there.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any, Literal

import orjson
from pydantic import Field, field_validator

from dspy_turbo.plugin.components import Options
from dspy_turbo.plugin.sink import Event, MetricSink

# Level per event kind when the config does not say: trouble is a warning, traffic is info
# (LM calls, costs) or debug (the high-volume cache chatter).
DEFAULT_LEVELS = {
    "error": "WARNING",
    "breaker": "WARNING",
    "alert": "WARNING",
    "lm_call": "INFO",
    "coalesced": "INFO",
    "timed": "INFO",
    "hit": "DEBUG",
    "miss": "DEBUG",
    "store": "DEBUG",
    "skip_store": "DEBUG",
    "evict": "DEBUG",
}
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LogOptions(Options):
    format: Literal["json", "kv"] = "json"
    logger: str = "dspy_turbo.events.log"
    """The logger the lines go to."""
    levels: dict[str, str] = {}
    """Level per event kind (DEBUG, INFO, WARNING, ERROR), over the defaults; ``default`` for unlisted kinds."""
    sample: dict[str, float] = {}
    """Fraction of events of a kind to log (0..1); kinds not listed: all of them."""
    include_details: bool = False
    """Log cache keys (hashes) and error messages too. Off: never anything derived from a request."""
    seed: int | None = Field(default=None, exclude=True)
    """Seed for sampling (reproducible logs in tests)."""

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: dict[str, str]) -> dict[str, str]:
        out = {}
        for kind, level in value.items():
            upper = str(level).upper()
            if upper not in _LEVELS:
                raise ValueError(f"level {level!r} for {kind!r} is not one of {', '.join(_LEVELS)}")
            out[kind] = upper
        return out

    @field_validator("sample")
    @classmethod
    def _sample(cls, value: dict[str, float]) -> dict[str, float]:
        for kind, rate in value.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"sample rate for {kind!r} must be between 0 and 1, got {rate}")
        return value


def _kv(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    if not text or any(c in text for c in ' ="\n'):
        return orjson.dumps(text).decode()  # quoted and escaped, logfmt style
    return text


class LogSink(MetricSink):
    name = "log"
    Options = LogOptions

    def __init__(self, options: LogOptions | None = None):
        super().__init__(options)
        opts = self.options
        self.logger = logging.getLogger(opts.logger)
        levels = {**DEFAULT_LEVELS, **opts.levels}
        self._default_level = logging.getLevelName(levels.pop("default", "INFO"))
        self._levels = {kind: logging.getLevelName(level) for kind, level in levels.items()}
        self._sample = dict(opts.sample)
        self._random = random.Random(opts.seed)
        self._lock = threading.Lock()
        self.sampled_out = 0

    def fields(self, event: Event) -> dict[str, Any]:
        out: dict[str, Any] = {"event": event.kind}
        for name in ("tier", "model", "reason", "namespace"):
            value = getattr(event, name)
            if value is not None:
                out[name] = value
        if event.latency is not None:
            out["latency_s"] = round(event.latency, 6)
        if event.tokens:
            out["tokens"] = event.tokens
        if event.cost:
            out["cost_usd"] = round(event.cost, 8)
        if event.error:
            out["error_type"] = event.error.split(":", 1)[0]
            if self.options.include_details:
                out["error"] = event.error
        if event.key and self.options.include_details:
            out["key"] = event.key
        if event.extra:
            out.update({k: v for k, v in event.extra.items() if k not in out})
        return out

    def __call__(self, event: Event) -> None:
        level = self._levels.get(event.kind, self._default_level)  # an alert's resolution as its firing
        if not self.logger.isEnabledFor(level):
            return
        rate = self._sample.get(event.kind)
        if rate is not None and rate < 1.0:
            with self._lock:
                keep = self._random.random() < rate
            if not keep:
                self.sampled_out += 1
                return
        fields = self.fields(event)
        if self.options.format == "json":
            line = orjson.dumps(fields, default=str).decode()
        else:
            line = " ".join(f"{k}={_kv(v)}" for k, v in fields.items())
        self.logger.log(level, line)
