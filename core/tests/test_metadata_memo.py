"""DSPy's model metadata lookup, memoised per model name while a Turbo is installed.

The memo must answer exactly as DSPy's ``model_info`` does (prices, usage and history of
real LM calls are the same, for a known and an unknown model name), scan DSPy's table
once per name instead of a few times per call, and be gone after ``uninstall()``.
"""

from __future__ import annotations

import dspy
import dspy.clients.capabilities as capabilities
import dspy.clients.costs as dspy_costs
import pytest
from dspy.clients import model_metadata
from dspy.clients.cache import Cache

from dspy_turbo.integration import metadata_memo

KNOWN, UNKNOWN = "openai/gpt-4o-mini", "openai/my-selfhosted-7b"
DSPY_MODEL_INFO = model_metadata.model_info


class CountingTable(dict):
    """DSPy's table, counting the whole-table scans a lookup of an unknown name makes."""

    scans = 0

    def items(self):
        type(self).scans += 1
        return super().items()


@pytest.fixture
def counting_table(monkeypatch):
    table = CountingTable(model_metadata._load())
    CountingTable.scans = 0
    monkeypatch.setattr(model_metadata, "_data", table)
    return CountingTable


def _lookups():
    """Arguments DSPy passes (pricing: the response's and the requested model; capabilities)."""
    table = model_metadata._load()
    listed = [key for key in table if "/" in key][:200:7]
    cases = [("openai-chat", "gpt-4o-mini"), ("openai", "gpt-4o-mini"), ("openai-chat", "my-selfhosted-7b"),
             ("vllm", "my-selfhosted-7b"), ("anthropic", "claude-3-5-sonnet-20240620"), ("gemini", "gemini-1.5-pro"),
             ("openai-chat", "gpt-4o-mini-2024-07-18"), ("nobody", "nothing")]
    cases += [(key.split("/", 1)[0], key.split("/", 1)[1]) for key in listed]
    return cases


@pytest.mark.parametrize("namespaces", [None, ("openai",), ()], ids=["own namespaces", "declared", "none"])
def test_memo_answers_as_dspy_does(turbo, namespaces):
    assert dspy_costs.model_info is not DSPY_MODEL_INFO  # the memo stands in while installed
    for provider, model in _lookups():
        expected = DSPY_MODEL_INFO(provider, model, namespaces=namespaces)
        first = dspy_costs.model_info(provider, model, namespaces=namespaces)
        again = capabilities.model_info(provider, model, namespaces=namespaces)
        assert first == expected and again == expected, (provider, model)


def test_each_caller_gets_its_own_copy(turbo):
    first = dspy_costs.model_info("openai-chat", "gpt-4o-mini")
    assert first["input_cost_per_token"] > 0
    first["input_cost_per_token"] = -1.0
    first.clear()
    assert dspy_costs.model_info("openai-chat", "gpt-4o-mini") == DSPY_MODEL_INFO("openai-chat", "gpt-4o-mini")


def test_unknown_name_scans_the_table_once_not_per_call(turbo, counting_table, openai_server):
    lm = dspy.LM(UNKNOWN, api_base=openai_server.url, api_key="sk-test-not-a-secret")
    program = dspy.Predict("question -> answer")
    with dspy.context(lm=lm, adapter=None):
        program(question="first")
        after_first = counting_table.scans
        for i in range(10):
            program(question=f"question {i}")
    assert openai_server.calls == 11
    assert lm.history[-1]["cost"] is None  # still unknown: DSPy's answer, only kept
    assert after_first >= 1  # DSPy looked the name up (and scanned) on the first call
    assert counting_table.scans == after_first  # and never again


def test_a_reloaded_table_is_read_afresh(turbo, monkeypatch):
    assert dspy_costs.model_info("openai-chat", "my-selfhosted-7b") == {}
    table = dict(model_metadata._load())
    table["openai/my-selfhosted-7b"] = {"litellm_provider": "openai", "input_cost_per_token": 1e-7,
                                        "output_cost_per_token": 2e-7, "mode": "chat"}
    monkeypatch.setattr(model_metadata, "_data", table)
    assert dspy_costs.model_info("openai-chat", "my-selfhosted-7b") == DSPY_MODEL_INFO("openai-chat",
                                                                                       "my-selfhosted-7b")
    assert dspy_costs.model_info("openai-chat", "my-selfhosted-7b")["input_cost_per_token"] == 1e-7


def test_bounded():
    memo = metadata_memo.MetadataMemo(model_metadata, DSPY_MODEL_INFO, max_entries=5)
    for i in range(20):
        assert memo.lookup("openai-chat", f"gpt-4o-mini-{i}") == DSPY_MODEL_INFO("openai-chat", f"gpt-4o-mini-{i}")
    assert len(memo) == 5
    assert memo.lookup("openai-chat", "gpt-4o-mini-19") == DSPY_MODEL_INFO("openai-chat", "gpt-4o-mini-19")


def test_concurrent_lookups_agree(turbo, run_threads):
    expected = {case: DSPY_MODEL_INFO(*case) for case in _lookups()}
    wrong = []

    def lookups():
        for case, answer in expected.items():
            if dspy_costs.model_info(*case) != answer:
                wrong.append(case)

    run_threads(lookups, 8)
    assert wrong == []


def test_uninstall_puts_dspy_back(make_turbo, lm):
    turbo = make_turbo().install()
    assert model_metadata.model_info is not DSPY_MODEL_INFO
    assert dspy_costs.model_info is not DSPY_MODEL_INFO and capabilities.model_info is not DSPY_MODEL_INFO
    turbo.uninstall()
    assert model_metadata.model_info is DSPY_MODEL_INFO
    assert dspy_costs.model_info is DSPY_MODEL_INFO and capabilities.model_info is DSPY_MODEL_INFO
    assert metadata_memo.active() is None
    make_turbo().install()  # a second Turbo installs it again
    assert dspy_costs.model_info is not DSPY_MODEL_INFO


def test_a_function_someone_else_put_there_stays(make_turbo, lm, monkeypatch):
    def theirs(provider, model, *, namespaces=None):
        return {"theirs": True}

    monkeypatch.setattr(capabilities, "model_info", theirs)
    turbo = make_turbo().install()
    assert capabilities.model_info is theirs  # not memoised: not DSPy's lookup
    assert dspy_costs.model_info is not DSPY_MODEL_INFO
    turbo.uninstall()
    assert capabilities.model_info is theirs and dspy_costs.model_info is DSPY_MODEL_INFO


def _history(use_turbo: bool, model: str, server, make_turbo, asynchronous: bool) -> list[dict]:
    """Three calls (two distinct questions and a repeat) and what DSPy recorded of each."""
    import asyncio

    turbo = make_turbo().install() if use_turbo else None
    if turbo is None:
        dspy.cache = Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None)
    lm = dspy.LM(model, api_base=server.url, api_key="sk-test-not-a-secret")
    program = dspy.Predict("question -> answer")
    questions = ("what is 2 + 2?", "name a colour", "what is 2 + 2?")

    async def acall_all():
        return [(await program.acall(question=q)).answer for q in questions]

    try:
        with dspy.context(lm=lm, adapter=None), dspy.track_usage() as usage:
            if asynchronous:
                answers = asyncio.run(acall_all())
            else:
                answers = [program(question=q).answer for q in questions]
        return [{key: entry.get(key) for key in ("cost", "cost_details", "usage", "outputs", "response_model")}
                for entry in lm.history] + [{"answers": answers, "usage": usage.get_total_tokens()}]
    finally:
        if turbo is not None:
            turbo.uninstall()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("model", [KNOWN, UNKNOWN], ids=["known name", "unknown name"])
def test_costs_usage_and_history_as_plain_dspy(model, asynchronous, openai_server, make_turbo):
    previous = dspy.cache
    try:
        plain = _history(False, model, openai_server, make_turbo, asynchronous)
        installed = _history(True, model, openai_server, make_turbo, asynchronous)
    finally:
        dspy.cache = previous
    assert len(plain) == 4 and installed == plain
    assert openai_server.calls == 4  # two distinct questions per side; the repeats were cache hits
    if model == KNOWN:
        assert plain[0]["cost"] > 0 and plain[0]["cost_details"]["kind"] == "estimate"
    else:
        assert plain[0]["cost"] is None and plain[0]["cost_details"]["kind"] == "unknown"
