"""The embedder's fast path gives the model's own vectors: the calibrated thresholds hold."""

import threading

import numpy as np

import dspy_turbo_faiss.embedder as embedder_module

TEXTS = [
    "What is the capital of France?",
    "How do I learn Python quickly if I already know some Java and a little C++ from university?",
    "Why?",
    "Which is the best laptop under 500 dollars for a student who mostly writes essays, browses and watches videos?",
    "Is 2026 a leap year?",
    "How can I stop procrastinating?",
    "What are the health benefits of drinking green tea every morning before breakfast?",
    "Who wrote Hamlet?",
    "Can dogs eat grapes?",
    "What is the difference between machine learning, deep learning and artificial intelligence in simple words?",
]


def test_vectors_equal_sentence_transformers_encode(minilm):
    """Single texts, and a batch of mixed lengths (sorted and chunked inside), match encode()."""
    from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    reference = minilm.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    batched = embedder.embed(TEXTS)
    single = np.vstack([embedder.embed([t]) for t in TEXTS])
    assert batched.dtype == np.float32 and batched.shape == (len(TEXTS), embedder.dimension)
    assert np.allclose(batched, reference, atol=1e-5), "a batch gives the model's vectors, in the caller's order"
    assert np.allclose(single, reference, atol=1e-5), "one text at a time gives the model's vectors"
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_micro_batched_lookups_get_the_models_vectors(semantic_turbo, minilm):
    """Concurrent callers share passes; each still gets the vector of its own text."""
    batcher = semantic_turbo.semantic.batcher
    out, lock = {}, threading.Lock()

    def caller(text):
        vector = batcher.embed(text)
        with lock:
            out[text] = vector

    threads = [threading.Thread(target=caller, args=(t,)) for t in TEXTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reference = minilm.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert np.allclose(np.vstack([out[t] for t in TEXTS]), reference, atol=1e-5)


def test_word_vectors_do_not_depend_on_the_kept_tokens(monkeypatch):
    """A text's token vectors are used from its own pass, even when other passes evicted them
    from what the embedder keeps before they were read (here: nothing is kept at all)."""
    from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    text = "How do I cook salmon in the oven without drying it out?"
    expected_words, expected = embedder.word_vectors(text)
    monkeypatch.setattr(embedder_module, "_TOKENS_KEPT", 0)
    embedder._tokens.clear()
    words, vectors = embedder.word_vectors(text)
    assert not embedder._tokens, "nothing kept: the words came from the pass itself"
    assert words == expected_words and np.allclose(vectors, expected, atol=1e-3)
