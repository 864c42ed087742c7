import dspy_turbo
from dspy_turbo.keys import KEY_VERSION, KeyBuilder

REQ = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.0,
       "_fn_identifier": "dspy.clients.lm.litellm_completion"}


def test_key_ignores_dict_and_kwarg_order():
    kb = KeyBuilder("ns")
    shuffled = dict(reversed(list(REQ.items())))
    shuffled["messages"] = [{"content": "hi", "role": "user"}]
    assert kb.key(REQ) == kb.key(shuffled)


def test_key_changes_with_any_field_value():
    kb = KeyBuilder("ns")
    assert kb.key(REQ) != kb.key({**REQ, "temperature": 0.7})
    assert kb.key(REQ) != kb.key({**REQ, "model": "openai/gpt-4o"})


def test_sync_and_async_doors_share_a_key():
    kb = KeyBuilder("ns")
    assert kb.key(REQ) == kb.key({**REQ, "_fn_identifier": "dspy.clients.lm.alitellm_completion"})
    lm15 = {"_fn_identifier": "dspy.clients.lm15.complete", "request": {"model": "m"}, "rollout_id": None}
    assert kb.key(lm15) == kb.key({**lm15, "_fn_identifier": "dspy.clients.lm15.complete.async"})


def test_endpoint_is_identity_unless_turned_off():
    dspy_ignored = ["api_key", "api_base", "base_url"]  # what DSPy asks to ignore
    a = {**REQ, "api_base": "http://server-a/v1"}
    b = {**REQ, "api_base": "http://server-b/v1"}
    assert KeyBuilder("ns").key(a, dspy_ignored) != KeyBuilder("ns").key(b, dspy_ignored)
    off = KeyBuilder("ns", include_endpoint=False)
    assert off.key(a, dspy_ignored) == off.key(b, dspy_ignored) == off.key(REQ)


def test_secrets_never_count_and_never_show():
    kb = KeyBuilder("ns")
    with_key = {**REQ, "api_key": "sk-secret-123"}
    assert kb.key(with_key) == kb.key(REQ)
    explained = kb.explain(with_key)
    assert "sk-secret-123" not in repr(explained)
    assert explained["left_out"]["api_key"].startswith("secret")


def test_namespace_and_version_prefix_every_key():
    key = KeyBuilder("myapp").key(REQ)
    assert key.startswith(f"myapp:v{KEY_VERSION}:")
    assert KeyBuilder("other").key(REQ) != key


def test_pydantic_types_and_callables_are_keyable():
    import pydantic

    class Answer(pydantic.BaseModel):
        text: str

    kb = KeyBuilder("ns")
    a = kb.key({**REQ, "response_format": Answer})
    assert a == kb.key({**REQ, "response_format": Answer})
    assert kb.key({"_fn_identifier": "f", "fn": lambda x: x + 1}) != kb.key({"_fn_identifier": "f", "fn": lambda x: x + 2})


def test_explain_key_via_turbo(make_turbo):
    turbo = make_turbo({"namespace": "demo", "cache": {"tiers": [{"type": "memory"}]}})
    info = turbo.explain_key(REQ)
    assert info["key"] == turbo.key(REQ)
    assert info["fields"]["model"] == "openai/gpt-4o-mini"
    assert info["namespace"] == "demo"
    assert isinstance(dspy_turbo.__version__, str)
