"""A model's tokenizer read from its ``tokenizer.json`` by the tokenizers library alone.

Set up the way sentence-transformers sets up the model's own tokenizer (lower-casing when
the model asks for it, truncation to the model's length, padding to the longest text of a
batch), it lets the onnx runtime run without importing torch or transformers. Whether it
gives the model's own tokens is checked once, when the model is exported with the model
loaded (:func:`dspy_turbo_faiss.onnx_runtime.export`); the export records the settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _lowercases(normalizer) -> bool:
    """Whether ``normalizer`` is, or is a sequence holding, a Lowercase: sentence-transformers'
    test, kept as it is so both add one in the same cases."""
    from tokenizers.normalizers import Lowercase, Sequence

    if isinstance(normalizer, Sequence):
        return any(isinstance(part, Lowercase) for part in normalizer)
    return isinstance(normalizer, Lowercase)


class FastTokenizer:
    """``batch`` makes a model's inputs for texts; ``encode`` one text's tokens (word ids,
    offsets); ``count`` how many tokens a text is, uncut. Safe from many threads."""

    def __init__(self, path: Path, max_length: int, lowercase: bool, pad_id: int):
        from tokenizers import Tokenizer, normalizers

        self.max_length = max_length
        whole = Tokenizer.from_file(str(path))
        whole.no_truncation()  # tokenizer.json may carry its own (all-MiniLM-L6-v2's: 128, padded to 128)
        whole.no_padding()
        if lowercase and not _lowercases(whole.normalizer):
            # what sentence-transformers does for do_lower_case: a Lowercase in front
            rest = [] if whole.normalizer is None else [whole.normalizer]
            whole.normalizer = normalizers.Sequence([normalizers.Lowercase(), *rest])
        self._whole = whole
        # Truncation and padding are settings of a Tokenizer, not arguments of a call: a second
        # one holds them, so counting never has to switch them off under a concurrent batch.
        self._cut = Tokenizer.from_str(whole.to_str())
        self._cut.enable_truncation(max_length)
        self._cut.enable_padding(pad_id=pad_id, pad_token=whole.id_to_token(pad_id) or "[PAD]")

    def batch(self, texts: list[str]) -> dict[str, Any]:
        """``input_ids``, ``token_type_ids`` and ``attention_mask`` (int64, one row per text,
        padded to the longest)."""
        encodings = self._cut.encode_batch(texts)
        return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64)}

    def encode(self, text: str):
        """``text``'s tokens as the model reads them (cut to its length): a tokenizers ``Encoding``."""
        return self._cut.encode(text)

    def count(self, text: str) -> int:
        """Tokens in ``text``, special ones included, not cut."""
        return len(self._whole.encode(text))
