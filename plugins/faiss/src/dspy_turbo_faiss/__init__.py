"""dspy-turbo semantic cache components: FAISS index, sentence-transformers embedder."""
