"""Once a model directory's export exists, the onnx runtime runs it without torch: the
tokenizers library reads the model's tokenizer.json, ONNX Runtime runs the graph, and
everything the embedder gives is what the loaded model gives."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dspy_turbo_faiss import onnx_runtime
from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder

FP32 = SentenceTransformerEmbedder.Options(quantize=False)  # the model's own vectors

TEXTS = [
    "What is the capital of France?",
    "How do I learn Python quickly if I already know some Java and a little C++ from university?",
    "Is 2026 a leap year?",
    "MiXeD CaSe: NASA, iPhone and McDonald's",
    "Qu'est-ce que la « mise en cache » sémantique ? 東京の天気は？ naïve café, émigré résumé 🎉",
    "İstanbul, straße, ǅ, ﬁne, Ωmega",
    "   spaces,   tabs\tand\nnew lines   ",
    "",
    "?!",
    # longer than the model reads (256 tokens): cut as encode() cuts
    "Please summarise the following report. " + "The committee reviewed the quarterly figures in detail. " * 60,
]
HEAVY = ("torch", "transformers", "sentence_transformers")


def forget_sessions(mp):
    mp.setattr(onnx_runtime, "_sessions", {})
    mp.setattr(onnx_runtime, "_by_model", type(onnx_runtime._by_model)())
    mp.setattr(onnx_runtime, "_by_directory", {})


@pytest.fixture(scope="module")
def embedders(minilm):
    """``(torch-free, today's)``: the default embedder built from an existing export, and one
    built as before (the model loaded, its own tokenizer feeding the same export)."""
    with pytest.MonkeyPatch.context() as mp:
        # A session an earlier test left in memory may come from an export in another test's
        # cache directory: forget it, so the export is made (or found) in this one.
        forget_sessions(mp)
        SentenceTransformerEmbedder(FP32)  # the export, made here if this run has none yet
        forget_sessions(mp)
        light = SentenceTransformerEmbedder(FP32)
        forget_sessions(mp)
        mp.setattr(onnx_runtime, "FastTokenizer", None)  # as without the tokenizers library
        today = SentenceTransformerEmbedder(FP32)
    assert light.model is None and light._fast is not None, "built from the export alone"
    assert today.model is minilm and today._fast is None
    return light, today


def cosines(a, b):
    return np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def test_tokens_and_counts_are_the_models_own(embedders, minilm):
    light, today = embedders
    assert (light.dimension, light.max_tokens) == (today.dimension, today.max_tokens) == (384, 256)
    counts = [light.count_tokens(t) for t in TEXTS]
    assert counts == [today.count_tokens(t) for t in TEXTS] and max(counts) > 256 and min(counts) == 2
    mine, own = light._fast.batch(TEXTS), minilm.preprocess(TEXTS)
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        assert np.array_equal(mine[name], own[name].numpy()), name


def test_vectors_token_vectors_and_word_vectors_are_todays(embedders):
    light, today = embedders
    assert cosines(light.embed(TEXTS), today.embed(TEXTS)).min() >= 0.99999
    singles = [np.vstack([e.embed([t]) for t in TEXTS]) for e in embedders]
    assert cosines(*singles).min() >= 0.99999
    (vectors, mine), (_, own) = light._forward(TEXTS, tokens=True), today._forward(TEXTS, tokens=True)
    assert cosines(vectors, today.embed(TEXTS)).min() >= 0.99999
    for text, a, b in zip(TEXTS, mine, own, strict=True):
        assert a.shape == b.shape and a.dtype == np.float16, text
        assert cosines(a.astype(np.float32), b.astype(np.float32)).min() >= 0.99999, text
    for text in TEXTS:
        (words, a), (own_words, b) = light.word_vectors(text), today.word_vectors(text)
        assert words == own_words, text
        if words:
            assert cosines(a, b).min() >= 0.99999, text
    assert light.word_vectors("MiXeD CaSe: NASA")[0] == ["MiXeD", "CaSe", "NASA"], "words as written"


PROCESS = textwrap.dedent('''
    import json, sys
    import dspy_turbo
    turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}], "semantic": {"index": {"type": "faiss"},
        "embedder": {"type": "sentence-transformers", "quantize": sys.argv[2] == "int8"}}}})
    embedder = turbo.semantic.embedder
    texts = json.loads(sys.argv[1])
    vectors = embedder.embed(texts)
    words, _ = embedder.word_vectors(texts[0])
    print(json.dumps({"loaded": [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules],
                      "vectors": vectors.tolist(), "words": words, "count": embedder.count_tokens(texts[0])}))
''')


def run(cache, form="fp32"):
    env = {**os.environ, "DSPY_TURBO_CACHE_DIR": str(cache)}
    proc = subprocess.run([sys.executable, "-c", PROCESS, json.dumps(TEXTS[:4]), form], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), proc.stderr


def test_the_first_process_exports_with_torch_and_the_next_ones_need_none(tmp_path, minilm):
    first, _ = run(tmp_path)
    assert set(first["loaded"]) >= {"torch", "sentence_transformers"}, "no export yet: the model is loaded"
    (exported,) = (tmp_path / "onnx").iterdir()
    second, stderr = run(tmp_path)
    assert second["loaded"] == [], "the export exists: neither torch nor transformers is imported"
    assert "Loading weights" not in stderr
    reference = minilm.encode(TEXTS[:4], normalize_embeddings=True)
    for out in (first, second):
        assert cosines(np.array(out["vectors"]), reference).min() >= 0.99999
    assert (second["words"], second["count"]) == (first["words"], first["count"])
    int8, _ = run(tmp_path, "int8")
    assert int8["loaded"] == [], "int8 is quantized from the export, without torch"
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == [f"{exported.stem}-int8.onnx", exported.name]
    assert cosines(np.array(int8["vectors"]), reference).min() > 0.95, "close to the model's vectors, not equal"
