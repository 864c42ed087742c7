"""The field declarations DSPy's adapters write into a system message, read back.

``Your input fields are:`` / ``Your output fields are:`` list each field as
``1. `question` (str)``; the DSPy integration reads them to name a request's signature,
and the semantic cache (dspy-turbo-faiss, through ``dspy_turbo.plugin.signatures``) to
find which values to embed.
"""

from __future__ import annotations

import re

_INPUTS_BLOCK = re.compile(r"Your input fields are:\n(.*?)\n(?:Your output fields are:|All interactions will be structured)", re.S)
_FIELD_DECL = re.compile(r"^\s*\d+\.\s*`([^`]+)`\s*\(([^)]*(?:\([^)]*\))?[^)]*)\)", re.M)
_OUTPUTS_BLOCK = re.compile(r"Your output fields are:\n(.*?)\n(?:All interactions will be structured|\Z)", re.S)


def input_fields(system: str) -> list[tuple[str, str]]:
    """``[(name, type), ...]`` of the input fields declared in ``system`` (empty when none)."""
    block = _INPUTS_BLOCK.search(system)
    return _FIELD_DECL.findall(block.group(1)) if block else []


def output_names(system: str) -> list[str]:
    """The output field names declared in ``system``."""
    block = _OUTPUTS_BLOCK.search(system)
    return [name for name, _ in _FIELD_DECL.findall(block.group(1))] if block else []
