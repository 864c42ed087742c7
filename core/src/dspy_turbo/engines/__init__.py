"""DSPy engines (``dspy.LM(model, engine=...)``) that dspy-turbo offers.

``openai_compatible``: a lean engine for OpenAI-compatible HTTP endpoints.
"""
