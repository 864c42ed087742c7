"""The RAG example end to end on a small corpus: offline LM, real embedding model, cold then warm."""

import importlib
from pathlib import Path

import pytest


@pytest.fixture
def rag(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DSPY_TURBO_NAMESPACE", "rag-example-test")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1]))
    return importlib.import_module("rag")


@pytest.mark.slow
def test_rag_runs_cold_then_warm_with_routing_caching_and_budgeted_context(rag, capsys):
    cold, warm = rag.main(["--towns", "25", "--questions", "6", "--latency", "0.05", "--threads", "4",
                           "--context-tokens", "300"])
    out = capsys.readouterr().out
    assert "corpus: 200 passages; 6 questions; offline LM" in out
    assert len(cold.rows) == len(warm.rows) == 6
    # cold: one generate call per question, the whole corpus embedded once
    assert cold.lm_calls == 6 and cold.embedded >= 200 and cold.cost > 0
    # warm: every stage is served from the cache
    assert warm.lm_calls == 0 and warm.embedded == 0 and warm.cost == 0
    assert [r.answer for r in warm.rows] == [r.answer for r in cold.rows]
    # routed: lookups on the small tier, multi-step questions on the large one
    models = {m for r in cold.rows for m in r.models}
    assert models == {"openai/gpt-4o-mini", "openai/gpt-4o"}
    assert all(0 < r.context_tokens <= 300 for r in cold.rows)
    assert "saved by routing $" in out and "p95 ms" in out
    assert warm.latency(0.5) < cold.latency(0.5)

    # a new process (a new Turbo) with the file tier kept starts warm: nothing embedded, no LM call
    first, _ = rag.main(["--towns", "25", "--questions", "6", "--threads", "4", "--context-tokens", "300", "--keep-cache"])
    assert first.lm_calls == 0 and first.embedded == 0
    assert [r.answer for r in first.rows] == [r.answer for r in cold.rows]
