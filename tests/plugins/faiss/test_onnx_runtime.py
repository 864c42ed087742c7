"""The onnx runtime's export: made once, kept in dspy-turbo's cache directory under a name
that changes with the model, re-made when damaged, safe when processes export at once."""

import copy
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import dspy_turbo
from dspy_turbo_faiss import onnx_runtime

TEXTS = ["What is the capital of France?", "How do I cook salmon in the oven?"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty dspy-turbo cache directory, and no session loaded yet in this process."""
    monkeypatch.setenv("DSPY_TURBO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(onnx_runtime, "_sessions", {})
    monkeypatch.setattr(onnx_runtime, "_by_model", type(onnx_runtime._by_model)())
    return tmp_path / "onnx"


def test_export_is_kept_and_reused(cache, minilm, monkeypatch):
    session = onnx_runtime.load(minilm, "all-MiniLM-L6-v2")
    (exported,) = cache.iterdir()
    assert exported == session.path and exported.name == f"{onnx_runtime.model_key(minilm)}.onnx"
    monkeypatch.setattr(onnx_runtime, "_sessions", {})
    monkeypatch.setattr(onnx_runtime, "_by_model", type(onnx_runtime._by_model)())

    def no_export(*args):
        raise AssertionError("the kept export should have been used")

    monkeypatch.setattr(onnx_runtime, "export", no_export)
    again = onnx_runtime.load(minilm, "all-MiniLM-L6-v2")
    assert again is not session and again.path == exported
    reference = minilm.encode(TEXTS, normalize_embeddings=True)
    vectors, _ = again.run(minilm.preprocess(TEXTS), tokens=False)
    assert np.allclose(vectors, reference, atol=1e-5)


def test_int8_is_made_from_the_export_and_kept_beside_it(cache, minilm):
    session = onnx_runtime.load(minilm, "all-MiniLM-L6-v2", int8=True)
    key = onnx_runtime.model_key(minilm)
    assert sorted(p.name for p in cache.iterdir()) == [f"{key}-int8.onnx", f"{key}.onnx"]
    assert session.path.stat().st_size < (cache / f"{key}.onnx").stat().st_size / 3, "int8 weights"
    assert onnx_runtime.load(minilm, "all-MiniLM-L6-v2", int8=True) is session
    assert onnx_runtime.load(minilm, "all-MiniLM-L6-v2") is not session
    vectors, tokens = session.run(minilm.preprocess(TEXTS), tokens=True)
    reference = minilm.encode(TEXTS, normalize_embeddings=True)
    assert np.all(np.sum(vectors * reference, axis=1) > 0.95), "close to the model's vectors, not equal"
    assert tokens.shape[:2] == minilm.preprocess(TEXTS)["input_ids"].shape


def test_a_changed_model_gets_a_new_export(minilm):
    changed = copy.deepcopy(minilm)
    with torch.no_grad():
        next(changed.parameters())[0, 0] += 1e-3
    assert onnx_runtime.model_key(changed) != onnx_runtime.model_key(minilm), "other weights"
    pooled = copy.deepcopy(minilm)
    pooled[1].pooling_mode = "cls"
    assert onnx_runtime.model_key(pooled) != onnx_runtime.model_key(minilm), "another pooling (part of the graph)"
    assert onnx_runtime.model_key(copy.deepcopy(minilm)) == onnx_runtime.model_key(minilm), "the same model"


def test_a_damaged_export_is_made_again(cache, minilm):
    cache.mkdir(parents=True)
    path = cache / f"{onnx_runtime.model_key(minilm)}.onnx"
    path.write_bytes(b"not a graph")
    session = onnx_runtime.load(minilm, "all-MiniLM-L6-v2")
    assert session.path == path and path.stat().st_size > 10_000_000
    vectors, _ = session.run(minilm.preprocess(TEXTS), tokens=False)
    assert np.allclose(vectors, minilm.encode(TEXTS, normalize_embeddings=True), atol=1e-5)


def test_without_onnx_an_export_is_a_load_error_naming_the_package(cache, minilm, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}], "semantic": {
            "index": {"type": "faiss"}, "embedder": {"type": "sentence-transformers"}}}})
    (issue,) = info.value.issues
    assert issue.path == "cache.semantic.embedder" and "pip install onnx" in issue.message
    assert "runtime: torch" in issue.message
    assert not cache.exists() or not list(cache.iterdir()), "nothing half-written is left behind"


def test_an_unwritable_cache_directory_falls_back_to_torch_unless_onnx_was_asked_for(tmp_path, monkeypatch, caplog):
    from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("DSPY_TURBO_CACHE_DIR", str(blocker / "dspy-turbo"))  # mkdir under a file fails, even as root
    monkeypatch.setattr(onnx_runtime, "_sessions", {})
    monkeypatch.setattr(onnx_runtime, "_by_model", type(onnx_runtime._by_model)())
    embedder = SentenceTransformerEmbedder()  # onnx is the default on cpu
    assert embedder.runtime == "torch" and embedder._onnx is None
    assert "embedding with torch instead" in caplog.text and str(blocker) in caplog.text
    assert np.allclose(embedder.embed(TEXTS), embedder.model.encode(TEXTS, normalize_embeddings=True), atol=1e-5)
    with pytest.raises(dspy_turbo.ConfigError) as info:  # asked for by name: the error stands
        dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}], "semantic": {
            "index": {"type": "faiss"}, "embedder": {"type": "sentence-transformers", "runtime": "onnx"}}}})
    (issue,) = info.value.issues
    assert issue.path == "cache.semantic.embedder" and str(blocker) in issue.message

EXPORTER = textwrap.dedent('''
    import json, os, pathlib, sys, time
    from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder
    from dspy_turbo_faiss import onnx_runtime
    model = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(runtime="torch")).model
    start = pathlib.Path(sys.argv[1])
    (start.parent / f"ready-{os.getpid()}").touch()
    while not start.exists():
        time.sleep(0.005)
    session = onnx_runtime.load(model, "all-MiniLM-L6-v2")
    vectors, _ = session.run(model.preprocess(json.loads(sys.argv[2])), tokens=False)
    print(json.dumps(vectors.tolist()))
''')


def test_processes_exporting_at_once_leave_one_valid_file(cache, tmp_path, minilm, monkeypatch):
    signals = tmp_path / "signals"
    signals.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", EXPORTER, str(signals / "start"), json.dumps(TEXTS)],
                              env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        deadline = time.monotonic() + 180
        while len(list(signals.glob("ready-*"))) < 2 and time.monotonic() < deadline and None in [p.poll() for p in procs]:
            time.sleep(0.05)
        (signals / "start").touch()  # both have their model loaded and no export: both make one now
        outs = [proc.communicate(timeout=180) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    reference = minilm.encode(TEXTS, normalize_embeddings=True)
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert np.allclose(np.array(json.loads(out)), reference, atol=1e-5)
    assert sorted(p.name for p in cache.iterdir()) == [f"{onnx_runtime.model_key(minilm)}.onnx"], \
        "one complete file, no temporary ones"
    monkeypatch.setattr(onnx_runtime, "export", None)  # this process uses the file they left
    vectors, _ = onnx_runtime.load(minilm, "all-MiniLM-L6-v2").run(minilm.preprocess(TEXTS), tokens=False)
    assert np.allclose(vectors, reference, atol=1e-5)
