"""dspy-turbo batching: the batch machinery behind ``turbo.batch`` and the ``thread`` and ``async`` strategies.

- :mod:`~dspy_turbo_batching.runner`: the entry points (``BatchRunner``, what the core's
  ``dspy_turbo_batch_runner`` hook gets from this plugin);
- :mod:`~dspy_turbo_batching.batch`: one batch (cache-first lookup, windows, dedup, order, errors);
- :mod:`~dspy_turbo_batching.policy`, :mod:`~dspy_turbo_batching.ratelimit`,
  :mod:`~dspy_turbo_batching.retry`: what happens around each LM call of a batch;
- :mod:`~dspy_turbo_batching.progress`, :mod:`~dspy_turbo_batching.workers`: the progress
  bar and the thread pool;
- :mod:`~dspy_turbo_batching.thread`, :mod:`~dspy_turbo_batching.asynchronous`: the strategies
  (contract: ``dspy_turbo.plugin.batch``).
"""

from .asynchronous import AsyncStrategy
from .thread import ThreadStrategy

__all__ = ["AsyncStrategy", "ThreadStrategy"]
