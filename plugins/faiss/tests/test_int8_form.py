"""The model's int8 form: made so that every processor computes the same vectors, made again
when an older recipe is found, and searched with a threshold of its own."""

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from dspy_turbo_faiss import export_key, onnx_runtime
from dspy_turbo_faiss.embedder import DEFAULT_MODEL, FP32_THRESHOLD, INT8_THRESHOLD, SentenceTransformerEmbedder, resolve_model
from dspy_turbo_faiss.onnx_runtime import INT8_RECIPE

MINILM = Path(resolve_model(DEFAULT_MODEL))
TEXTS = ["What is the capital of France?", "How do I cook salmon in the oven?"]


def forget_sessions(monkeypatch):
    """No session loaded yet in this process."""
    monkeypatch.setattr(onnx_runtime, "_sessions", {})
    monkeypatch.setattr(onnx_runtime, "_by_model", type(onnx_runtime._by_model)())
    monkeypatch.setattr(onnx_runtime, "_by_directory", {})


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty dspy-turbo cache directory, and no session loaded yet in this process."""
    monkeypatch.setenv("DSPY_TURBO_CACHE_DIR", str(tmp_path))
    forget_sessions(monkeypatch)
    return tmp_path / "onnx"


def integer_weights(path) -> list[np.ndarray]:
    """The int8 weights the graph multiplies with (the MatMulInteger operands held in the file)."""
    graph = onnx.load(str(path)).graph
    held = {t.name: t for t in graph.initializer}
    return [numpy_helper.to_array(held[name]) for node in graph.node if node.op_type == "MatMulInteger"
            for name in node.input[1:2] if name in held]


def test_int8_weights_keep_seven_bits_so_no_processor_saturates(cache, minilm):
    """ONNX Runtime multiplies uint8 activations by int8 weights with VNNI where the processor
    has it and with AVX2's vpmaddubsw elsewhere, which saturates pairs of products past 32,767:
    with 8-bit weights the two give other vectors (measured: up to 0.012 cosine apart), so one
    index could not be shared. 7-bit weights cannot saturate (2 x 255 x 64 < 32,768)."""
    session = onnx_runtime.load(minilm, DEFAULT_MODEL, int8=True, directory=MINILM)
    weights = integer_weights(session.path)
    assert len(weights) >= 36, "every linear layer of the 6 blocks is int8"
    assert all(w.dtype == np.int8 for w in weights)
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64
    assert min(int(w.min()) for w in weights) >= -64
    assert session.int8 == INT8_RECIPE, "the form says how it was made"
    vectors, _ = session.run(minilm.preprocess(TEXTS), tokens=False)
    reference = minilm.encode(TEXTS, normalize_embeddings=True)
    assert np.all(np.sum(vectors * reference, axis=1) > 0.95), "close to the model's vectors"


def test_an_int8_form_of_an_older_recipe_is_made_again(cache, minilm, monkeypatch):
    """An int8 file already in the cache directory from a release that quantized with 8-bit
    weights is not run: its vectors depend on the processor, and differ from this recipe's."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = onnx_runtime.load(minilm, DEFAULT_MODEL, directory=MINILM).path
    old = cache / f"{export_key.model_key(MINILM)}-int8.onnx"
    quantize_dynamic(fp32, old, weight_type=QuantType.QInt8, per_channel=True)  # the older recipe
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in integer_weights(old)) > 64
    forget_sessions(monkeypatch)
    embedder = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(quantize=True))
    assert embedder._onnx.path == old and embedder._onnx.int8 == INT8_RECIPE
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in integer_weights(old)) <= 64, "made again in place"
    record = json.loads(next(e.value for e in onnx.load(str(old)).metadata_props if e.key == "dspy_turbo"))
    assert record["int8"] == INT8_RECIPE and record["tokenizer"], "what the export records is kept"
    mtime = os.stat(old).st_mtime_ns
    forget_sessions(monkeypatch)
    SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(quantize=True))
    assert os.stat(old).st_mtime_ns == mtime, "this recipe's form is reused"


def test_the_int8_vector_space_names_its_recipe(minilm):
    int8 = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(quantize=True))
    fp32 = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(quantize=False))
    assert int8.vector_space == "sentence-transformers/all-minilm-l6-v2|int8-onnx-7bit"
    assert fp32.vector_space == "sentence-transformers/all-minilm-l6-v2|fp32"


@pytest.mark.parametrize(("quantize", "expected"), [(False, FP32_THRESHOLD), (True, INT8_THRESHOLD)])
def test_the_default_threshold_is_the_one_calibrated_for_the_models_precision(make_turbo, minilm, quantize,
                                                                              expected):
    config = {"namespace": f"int8-{quantize}", "cache": {"tiers": [{"type": "memory"}], "semantic": {
        "index": {"type": "faiss"}, "embedder": {"type": "sentence-transformers", "quantize": quantize}}}}
    turbo = make_turbo(config)
    assert turbo.semantic.threshold_for("question -> answer") == expected
    assert turbo.semantic.embedder.default_threshold == expected
    config["cache"]["semantic"]["threshold"] = 0.97
    config["namespace"] += "-set"
    assert make_turbo(config).semantic.threshold_for("question -> answer") == 0.97, "a threshold set wins"


def test_the_int8_threshold_is_its_own():
    """int8 moves the vectors (pairs' cosines shift by about -0.007 on average): at fp32's 0.95
    its paraphrase precision is lower than fp32's (bench/semantic_eval.py --compare-int8)."""
    assert INT8_THRESHOLD > FP32_THRESHOLD


def test_a_texts_int8_vector_does_not_depend_on_the_texts_embedded_with_it(minilm):
    """int8 quantizes a layer's inputs with one scale per run: texts sharing a run would move
    each other's vectors (measured: up to 0.018 cosine). Each text runs alone."""
    embedder = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(quantize=True))
    texts = ["What is the capital of France?", "How do I cook salmon in the oven? " * 6, "Hi", *TEXTS]
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([text]) for text in texts])
    assert np.min(np.sum(together * alone, axis=1)) > 1 - 1e-5
    reversed_ = embedder.embed(texts[::-1])[::-1]
    assert np.min(np.sum(together * reversed_, axis=1)) > 1 - 1e-5


def test_int8_vectors_are_shared_only_with_processors_measured_to_agree(minilm, monkeypatch):
    import platform

    from dspy_turbo_faiss import embedder as module

    assert module.int8_processors() == "", "this machine: x86-64 with AVX2"
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert module.int8_processors() == "-aarch64"
    int8 = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(quantize=True))
    assert int8.vector_space == "sentence-transformers/all-minilm-l6-v2|int8-onnx-7bit-aarch64"
    fp32 = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(quantize=False))
    assert fp32.vector_space == "sentence-transformers/all-minilm-l6-v2|fp32", "fp32 agrees everywhere"


def test_int8_is_the_default_for_the_packaged_model_on_onnx_only(tmp_path):
    options = SentenceTransformerEmbedder.Options
    assert options().resolved_quantize is True
    assert options(quantize=False).resolved_quantize is False
    assert options(runtime="torch").resolved_quantize is False, "torch's int8 has no calibrated threshold"
    assert options(model=str(tmp_path)).resolved_quantize is False, "another model: its own vectors"
