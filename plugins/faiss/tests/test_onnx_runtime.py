"""The onnx runtime's export: made once, kept in dspy-turbo's cache directory under a name
that changes with the model, re-made when damaged, safe when processes export at once."""

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import dspy_turbo
from dspy_turbo_faiss import export_key, onnx_runtime
from dspy_turbo_faiss.embedder import DEFAULT_MODEL, resolve_model

TEXTS = ["What is the capital of France?", "How do I cook salmon in the oven?"]
MINILM = Path(resolve_model(DEFAULT_MODEL))  # the packaged model's directory


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


def test_export_is_kept_and_reused(cache, minilm, monkeypatch):
    session = onnx_runtime.load(minilm, DEFAULT_MODEL, directory=MINILM)
    (exported,) = cache.iterdir()
    assert exported == session.path and exported.name == f"{export_key.model_key(MINILM)}.onnx"
    forget_sessions(monkeypatch)

    def no_export(*args):
        raise AssertionError("the kept export should have been used")

    monkeypatch.setattr(onnx_runtime, "export", no_export)
    again = onnx_runtime.load(minilm, DEFAULT_MODEL, directory=MINILM)
    assert again is not session and again.path == exported
    reference = minilm.encode(TEXTS, normalize_embeddings=True)
    vectors, _ = again.run(minilm.preprocess(TEXTS), tokens=False)
    assert np.allclose(vectors, reference, atol=1e-5)


def test_int8_is_made_from_the_export_and_kept_beside_it(cache, minilm, monkeypatch):
    session = onnx_runtime.load(minilm, DEFAULT_MODEL, int8=True, directory=MINILM)
    key = export_key.model_key(MINILM)
    assert sorted(p.name for p in cache.iterdir()) == [f"{key}-int8.onnx", f"{key}.onnx"]
    assert session.path.stat().st_size < (cache / f"{key}.onnx").stat().st_size / 3, "int8 weights"
    assert onnx_runtime.load(minilm, DEFAULT_MODEL, int8=True, directory=MINILM) is session
    assert onnx_runtime.load(minilm, DEFAULT_MODEL, directory=MINILM) is not session
    assert session.tokenizer is not None, "the int8 form keeps what the export records"
    forget_sessions(monkeypatch)
    assert onnx_runtime.load_exported(MINILM, int8=True).path == session.path, "found again without torch"
    vectors, tokens = session.run(minilm.preprocess(TEXTS), tokens=True)
    reference = minilm.encode(TEXTS, normalize_embeddings=True)
    assert np.all(np.sum(vectors * reference, axis=1) > 0.95), "close to the model's vectors, not equal"
    assert tokens.shape[:2] == minilm.preprocess(TEXTS)["input_ids"].shape


def test_a_changed_model_directory_gets_a_new_export_and_a_touched_one_does_not(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(MINILM, model)
    key = export_key.model_key(MINILM)
    assert export_key.model_key(model) == key, "the same files elsewhere"
    weights = model / "model.safetensors"
    os.utime(weights, ns=(1_000_000_000, 1_000_000_000))
    (model / "README.md").write_text("notes")
    assert export_key.model_key(model) == key, "times and documentation are not what the graph is made of"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1  # one bit of one weight, same size
    weights.write_bytes(bytes(data))
    changed = export_key.model_key(model)
    assert changed != key, "other weights"
    pooling = model / "1_Pooling" / "config.json"
    pooling.write_text(pooling.read_text().replace('"pooling_mode_cls_token": false', '"pooling_mode_cls_token": true'))
    assert export_key.model_key(model) not in (key, changed), "another pooling (a module's configuration)"


def test_a_changed_model_from_the_hub_cache_gets_a_new_export(minilm):
    """A model that is not a local directory is keyed by its loaded weights and modules."""
    changed = copy.deepcopy(minilm)
    with torch.no_grad():
        next(changed.parameters())[0, 0] += 1e-3
    assert export_key.weights_key(changed) != export_key.weights_key(minilm), "other weights"
    pooled = copy.deepcopy(minilm)
    pooled[1].pooling_mode = "cls"
    assert export_key.weights_key(pooled) != export_key.weights_key(minilm), "another pooling (part of the graph)"
    assert export_key.weights_key(copy.deepcopy(minilm)) == export_key.weights_key(minilm), "the same model"


def test_a_damaged_export_is_made_again(cache, minilm):
    from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder

    cache.mkdir(parents=True)
    path = cache / f"{export_key.model_key(MINILM)}.onnx"
    path.write_bytes(b"not a graph")
    assert onnx_runtime.load_exported(MINILM) is None, "not run without torch: it is made again with it"
    embedder = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Options(quantize=False))
    assert embedder.model is not None and path.stat().st_size > 10_000_000
    session = embedder._onnx
    assert session.path == path and session.tokenizer is not None
    assert np.allclose(embedder.embed(TEXTS), minilm.encode(TEXTS, normalize_embeddings=True), atol=1e-5)
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
    forget_sessions(monkeypatch)
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
    session = onnx_runtime.load(model, "all-MiniLM-L6-v2", directory=sys.argv[3])
    vectors, _ = session.run(model.preprocess(json.loads(sys.argv[2])), tokens=False)
    print(json.dumps(vectors.tolist()))
''')


def test_processes_exporting_at_once_leave_one_valid_file(cache, tmp_path, minilm, monkeypatch):
    signals = tmp_path / "signals"
    signals.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", EXPORTER, str(signals / "start"), json.dumps(TEXTS), str(MINILM)],
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
    assert sorted(p.name for p in cache.iterdir()) == [f"{export_key.model_key(MINILM)}.onnx"], \
        "one complete file, no temporary ones"
    monkeypatch.setattr(onnx_runtime, "export", None)  # this process uses the file they left
    vectors, _ = onnx_runtime.load(minilm, "all-MiniLM-L6-v2", directory=MINILM).run(minilm.preprocess(TEXTS), tokens=False)
    assert np.allclose(vectors, reference, atol=1e-5)


def test_the_first_load_says_it_exports_once_and_a_later_load_says_nothing(cache, minilm, monkeypatch, caplog):
    """The export takes 10-60 s: the first load says so before the wait, and how long it took."""
    import logging

    from dspy_turbo_faiss.embedder import SentenceTransformerEmbedder

    monkeypatch.setattr(onnx_runtime, "_announced", set(), raising=False)
    with caplog.at_level(logging.INFO, logger="dspy_turbo"):
        SentenceTransformerEmbedder()  # onnx is the default on cpu
    said = [(r.levelname, r.getMessage()) for r in caplog.records if "ONNX" in r.getMessage()]
    assert [level for level, _ in said] == ["WARNING", "INFO"], said
    assert f"model {DEFAULT_MODEL!r} has no ONNX export yet" in said[0][1] and "once" in said[0][1], said
    assert "later loads, in any process, read the export" in said[0][1]
    assert f"exported model {DEFAULT_MODEL!r} to ONNX in " in said[1][1] and str(cache) in said[1][1], said
    caplog.clear()
    forget_sessions(monkeypatch)  # as a new process would: the export is on disk
    monkeypatch.setattr(onnx_runtime, "_announced", set(), raising=False)
    with caplog.at_level(logging.INFO, logger="dspy_turbo"):
        SentenceTransformerEmbedder()
    assert not [r for r in caplog.records if "ONNX" in r.getMessage()]
