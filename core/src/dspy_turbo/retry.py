"""Moved: retries are batch machinery, in dspy-turbo-batching (``dspy_turbo_batching.retry``);
their settings are the SDK's (``dspy_turbo.plugin.batch``). The old names warn for one release."""

from __future__ import annotations

from ._moved import moved, moved_to_plugin
from .plugin.batch import RetrySettings  # noqa: F401 (its old path)

moved(__name__, {"RetrySettings": "dspy_turbo.plugin.batch"})
__getattr__ = moved_to_plugin(__name__, "dspy_turbo_batching.retry", "dspy-turbo-batching",
                              ("RetryPolicy", "TRANSIENT_STATUS", "is_transient", "retry_after"))
