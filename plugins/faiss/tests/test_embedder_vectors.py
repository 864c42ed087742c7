"""The embedder's fast path gives the model's own vectors on both runtimes: the calibrated
thresholds hold; so do the verifier's word vectors."""

import threading

import numpy as np
import pytest

import dspy_turbo_faiss.embedder as embedder_module
from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder

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
    "Qu'est-ce que la « mise en cache » sémantique ? 東京の天気は？ naïve café, émigré résumé 🎉",
    "   spaces,   tabs\tand\nnew lines   ",
    # longer than the model reads (256 tokens): truncated, as encode() truncates
    "Please summarise the following report. " + "The committee reviewed the quarterly figures in detail. " * 60,
    " ".join(f"item{i} costs {i * 3} dollars" for i in range(120)),
]


@pytest.fixture(scope="module", params=["torch", "onnx"])
def embedder(request):
    return SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(runtime=request.param, quantize=False))


def cosines(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_vectors_equal_sentence_transformers_encode(minilm, embedder):
    """Single texts, and a batch of mixed lengths (sorted and chunked inside), match encode(),
    including texts past the model's 256 tokens."""
    assert max(embedder.count_tokens(t) for t in TEXTS) > embedder.max_tokens == 256
    reference = minilm.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    batched = embedder.embed(TEXTS)
    single = np.vstack([embedder.embed([t]) for t in TEXTS])
    assert batched.dtype == np.float32 and batched.shape == (len(TEXTS), embedder.dimension)
    assert np.allclose(batched, reference, atol=1e-5), "a batch gives the model's vectors, in the caller's order"
    assert np.allclose(single, reference, atol=1e-5), "one text at a time gives the model's vectors"
    assert cosines(batched, reference).min() >= 0.99999 and cosines(single, reference).min() >= 0.99999
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_onnx_is_the_default_runtime_on_cpu():
    assert SentenceTransformerEmbedder.Options().resolved_runtime == "onnx"
    assert SentenceTransformerEmbedder.Options(device="cuda").resolved_runtime == "torch"
    assert SentenceTransformerEmbedder.Options(quantize=True).resolved_runtime == "onnx"


def test_word_vectors_are_the_same_on_both_runtimes(minilm):
    """The verifier reads the same words and (to float16 storage) the same vectors from onnx as from torch."""
    runs = {rt: SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(runtime=rt, quantize=False))
            for rt in ("torch", "onnx")}
    for text in TEXTS:
        (words, torch_vectors), (onnx_words, onnx_vectors) = (runs[rt].word_vectors(text) for rt in ("torch", "onnx"))
        assert words == onnx_words and len(words) > 0
        assert cosines(torch_vectors, onnx_vectors).min() >= 0.9999, text
        assert np.allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, atol=1e-5)


def test_word_vectors_do_not_depend_on_the_kept_tokens(embedder, monkeypatch):
    """A text's token vectors are used from its own pass, even when other passes evicted them
    from what the embedder keeps before they were read (here: nothing is kept at all)."""
    text = "How do I cook salmon in the oven without drying it out?"
    expected_words, expected = embedder.word_vectors(text)
    monkeypatch.setattr(embedder_module, "_TOKENS_KEPT", 0)
    embedder._tokens.clear()
    words, vectors = embedder.word_vectors(text)
    assert not embedder._tokens, "nothing kept: the words came from the pass itself"
    assert words == expected_words and np.allclose(vectors, expected, atol=1e-3)


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


def test_loading_a_model_prints_no_progress_bar_and_leaves_other_bars_alone(monkeypatch, capfd):
    from transformers.utils import logging as hf_logging

    monkeypatch.setattr(embedder_module, "_models", {})  # not loaded yet in this process
    before = type(hf_logging.tqdm([], disable=True))
    embedder_module.load_model(embedder_module.DEFAULT_MODEL, "cpu")
    assert "Loading weights" not in capfd.readouterr().err
    assert type(hf_logging.tqdm([], disable=True)) is before, "the program's own transformers bars are as they were"
