"""Reading a DSPy-rendered prompt: the input and output fields its system message declares.

For a plugin that looks inside LM requests (the semantic cache embeds only the input
fields' values): ``input_fields(system)`` is ``[(name, type), ...]``, ``output_names(system)``
the output field names, as DSPy's ChatAdapter and JSONAdapter write them.
"""

from __future__ import annotations

from ..integration.signature_text import input_fields, output_names

__all__ = ["input_fields", "output_names"]
