"""The DSPy integration: a Turbo installed as DSPy's cache (``dspy_cache``), the dispatch of
each real LM call to its context's call policy (``call_dispatch``), DSPy's model metadata
lookup memoised, and the field declarations of a rendered signature read back.

(Not named ``dspy``: inside ``dspy_turbo``, ``dspy_turbo.dspy`` and paths like ``dspy/...``
in tracebacks and logs would read as DSPy itself.)"""
