"""DSPy engines (``dspy.LM(model, engine=...)``) that dspy-turbo offers.

``openai_compatible``: a lean engine for OpenAI-compatible HTTP endpoints.
``offline``: an offline LM for tests, examples and the demo, and ``openai_server``, the
same LM behind an OpenAI-compatible HTTP server on loopback.
"""
