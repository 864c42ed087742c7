import dataclasses
import functools
import os
import subprocess
import sys
import textwrap
import threading
from unittest.mock import MagicMock

import numpy as np
import pydantic
import pytest

import dspy_turbo
from dspy_turbo.cache.keys import KEY_VERSION, LM_CREDENTIALS, KeyBuilder, Unkeyable

REQ = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.0,
       "_fn_identifier": "dspy.clients.lm.litellm_completion"}
USER_FN = "myapp.tools.fetch"  # a request_cache function of the program's own


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


def test_api_key_never_counts_and_never_shows():
    kb = KeyBuilder("ns")
    with_key = {**REQ, "api_key": "sk-secret-123"}
    assert kb.key(with_key) == kb.key(REQ)
    explained = kb.explain(with_key)
    assert "sk-secret-123" not in repr(explained)
    assert explained["left_out"]["api_key"].startswith("credential")


CREDENTIALS = {
    "aws_secret_access_key": "AWS-SECRET", "aws_session_token": "AWS-SESSION", "aws_access_key_id": "AKIA-ID",
    "vertex_credentials": '{"type": "service_account", "private_key": "PEM"}', "azure_ad_token": "AZ-TOKEN",
    "client_secret": "CLIENT-SECRET", "azure_password": "AZ-PASSWORD",
}


@pytest.mark.parametrize("name", sorted(CREDENTIALS))
def test_an_lm_credential_is_no_part_of_the_key_and_is_never_shown(name):
    kb = KeyBuilder("ns")
    one, other = {**REQ, name: CREDENTIALS[name]}, {**REQ, name: CREDENTIALS[name] + "-rotated"}
    assert kb.key(one) == kb.key(other) == kb.key(REQ)
    explained = kb.explain(one)
    assert CREDENTIALS[name] not in repr(explained)
    assert explained["left_out"][name] == "credential: never part of a key"


def test_nested_lm_credentials_are_left_out_and_the_rest_of_their_field_stays_identity():
    kb = KeyBuilder("ns")

    def request(token, trace="t1", body_key="sk-body-A"):
        return {**REQ, "extra_headers": {"Authorization": f"Bearer {token}", "X-Trace": trace},
                "headers": {"api-key": token, "x-api-key": token}, "extra_body": {"api_key": body_key, "top_k": 3}}

    assert kb.key(request("sk-A")) == kb.key(request("sk-B", body_key="sk-body-B"))
    assert kb.key(request("sk-A")) != kb.key(request("sk-A", trace="t2"))  # a header of its own is identity
    explained = kb.explain(request("sk-A"))
    assert "sk-A" not in repr(explained) and "sk-body-A" not in repr(explained)
    assert explained["fields"]["extra_headers"] == {"X-Trace": "t1"}
    assert explained["fields"]["extra_body"] == {"top_k": 3}
    assert explained["left_out"]["extra_headers.Authorization"] == "credential: never part of a key"
    assert explained["left_out"]["extra_body.api_key"] == "credential: never part of a key"


def test_a_request_that_names_no_function_is_taken_as_an_lm_request():
    kb = KeyBuilder("ns")
    bare = {k: v for k, v in REQ.items() if k != "_fn_identifier"}
    assert kb.key({**bare, "aws_session_token": "A"}) == kb.key({**bare, "aws_session_token": "B"}) == kb.key(bare)


@pytest.mark.parametrize("name", ["token", "password", "authorization", "api_token", "headers", "extra_headers",
                                  "aws_secret_access_key", "extra_body"])
def test_arguments_of_a_users_function_are_identity_whatever_their_name(name):
    kb = KeyBuilder("ns")
    one = {"_fn_identifier": USER_FN, "url": "u", name: "A"}
    assert kb.key(one) != kb.key({**one, name: "B"})
    nested = {"_fn_identifier": USER_FN, "headers": {"Authorization": "A"}}
    assert kb.key(nested) != kb.key({"_fn_identifier": USER_FN, "headers": {"Authorization": "B"}})


@pytest.mark.slow  # importing litellm takes seconds on its own
def test_the_credential_list_covers_litellms_auth_parameters():
    """Every field of LiteLLM's own credential model is either a credential here or one of
    the fields that choose where a request goes (an endpoint, a region, a project)."""
    from litellm.types.router import CredentialLiteLLMParams
    from litellm.types.workload_identity import WIF_SECRET_BEARING_KEYS

    routing = {"api_base", "api_version", "region_name", "vertex_project", "vertex_location", "aws_region_name",
               "aws_sts_endpoint", "aws_bedrock_runtime_endpoint", "aws_bedrock_control_plane_endpoint",
               "aws_bedrock_project_id", "aws_batch_role_arn", "bedrock_tags", "gcs_bucket_name", "bucket_name",
               "allow_legacy_cloud_file_ids", "s3_bucket_name", "s3_endpoint_url", "s3_region_name",
               "s3_encryption_key_id", "s3_bucket_owner", "s3_output_bucket_name", "watsonx_region_name",
               "anthropic_disable_workload_identity_federation"}
    assert set(CredentialLiteLLMParams.model_fields) - LM_CREDENTIALS == routing
    assert WIF_SECRET_BEARING_KEYS <= LM_CREDENTIALS


def test_namespace_and_version_prefix_every_key():
    key = KeyBuilder("myapp").key(REQ)
    assert KEY_VERSION == 2 and key.startswith("myapp:v2:")
    assert KeyBuilder("other").key(REQ) != key


# -- values ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Size:
    x: int
    y: int


@pytest.mark.parametrize(("one", "other"), [
    ({1: "a"}, {"1": "a"}),                       # a non-string key is not its string
    (np.array([1, 2]), [1, 2]),                  # an array is not a list
    (np.array([1, 2], dtype=np.int32), np.array([1, 2], dtype=np.int64)),
    (np.float64(1.5), 1.5),
    ({1, 2}, [1, 2]),                             # a set is not a list
    (b"ab", "ab"),
    (Point(1, 2), Size(1, 2)),                    # two dataclasses with the same fields
    (Point(1, 2), {"x": 1, "y": 2}),
])
def test_values_of_different_types_never_share_a_key(one, other):
    kb = KeyBuilder("ns")
    assert kb.key({"_fn_identifier": USER_FN, "v": one}) != kb.key({"_fn_identifier": USER_FN, "v": other})


def test_equal_values_share_a_key():
    kb = KeyBuilder("ns")

    def key(v):
        return kb.key({"_fn_identifier": USER_FN, "v": v})

    assert key({2: "b", 1: "a"}) == key({1: "a", 2: "b"})
    assert key(np.arange(6).reshape(2, 3)) == key(np.arange(6).reshape(2, 3))
    assert key(np.arange(6).reshape(2, 3)) != key(np.arange(6).reshape(3, 2))
    assert key({"b", "a"}) == key({"a", "b"})


class Answer(pydantic.BaseModel):
    text: str


def test_pydantic_models_and_classes_are_keyed_as_dspy_keys_them():
    kb = KeyBuilder("ns")
    assert kb.key({**REQ, "response_format": Answer}) == kb.key({**REQ, "response_format": Answer})
    assert kb.key({"_fn_identifier": USER_FN, "a": Answer(text="x")}) == kb.key({"_fn_identifier": USER_FN,
                                                                                "a": Answer(text="x")})
    assert kb.key({"_fn_identifier": USER_FN, "a": Answer(text="x")}) != kb.key({"_fn_identifier": USER_FN,
                                                                                "a": Answer(text="y")})


class Plain:
    def __init__(self, v):
        self.v = v


@pytest.mark.parametrize("value", [Plain(1), threading.Lock(), object(), np.array([Plain(1)], dtype=object)])
def test_what_dspy_cannot_key_is_not_keyed(value):
    with pytest.raises(Unkeyable, match="cannot|counts by identity"):
        KeyBuilder("ns").key({"_fn_identifier": USER_FN, "v": value})


def test_a_magicmock_is_never_asked_for_attributes():
    # A MagicMock grows a child on every attribute asked for; keying must not ask for any
    # (its model_dump() used to recurse 255 levels).
    mock = MagicMock()
    with pytest.raises(Unkeyable):
        KeyBuilder("ns").key({"_fn_identifier": USER_FN, "client": mock})
    assert mock.mock_calls == [] and not mock._mock_children


# -- callables ---------------------------------------------------------------------------------


def _make(value):
    return lambda q: f"{value}:{q}"


def _styled(q, style="plain"):
    return f"{style}:{q}"


def _key(fn):
    return KeyBuilder("ns").key({"_fn_identifier": USER_FN, "fn": fn})


def test_callables_are_keyed_by_what_decides_their_result():
    assert _key(_make("A")) != _key(_make("B"))                   # closures over different values
    assert _key(_make("A")) == _key(_make("A"))
    assert _key(lambda q, k=1: q * k) != _key(lambda q, k=2: q * k)  # lambdas with different defaults
    assert _key(lambda q: q + 1) != _key(lambda q: q + 2)
    assert _key(functools.partial(_styled, style="A")) != _key(functools.partial(_styled, style="B"))
    assert _key(functools.partial(_styled, style="A")) == _key(functools.partial(_styled, style="A"))
    assert _key(_styled) != _key(functools.partial(_styled, style="plain"))
    assert _key(len) == _key(len) != _key(abs)


def test_globals_read_by_name_are_told_apart():
    a = compile("lambda q: A + q", "<a>", "eval")
    b = compile("lambda q: B + q", "<b>", "eval")
    assert _key(eval(a, {"A": 1})) != _key(eval(b, {"B": 1}))  # same bytecode, different names


def test_a_recursive_closure_is_keyed():
    def outer():
        def walk(n):
            return walk(n - 1) if n else 0
        return walk

    assert _key(outer()) == _key(outer())


def test_a_function_key_is_the_same_in_every_process():
    # Nested code (a comprehension, an inner function) used to be keyed by its repr, which
    # holds its memory address: no two processes agreed, so no shared tier ever hit.
    code = textwrap.dedent("""
        import os
        from dspy_turbo.cache.keys import KeyBuilder
        ballast = [object() for _ in range(int(os.environ["BALLAST"]))]  # other addresses in each process
        def pick(items, k=3):
            inner = lambda x: x * 2
            return [inner(i) for i in items if i in {"a", "b", "c"}][:k]
        print(KeyBuilder("ns").key({"_fn_identifier": "myapp.tools.fetch", "fn": pick}))
    """)
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed), "BALLAST": str(seed * 5000)}).stdout
            for seed in (1, 2)}
    assert len(keys) == 1


def test_explain_key_via_turbo(make_turbo):
    turbo = make_turbo({"namespace": "demo", "cache": {"tiers": [{"type": "memory"}]}})
    info = turbo.explain_key(REQ)
    assert info["key"] == turbo.key(REQ)
    assert info["fields"]["model"] == "openai/gpt-4o-mini"
    assert info["namespace"] == "demo"
    assert isinstance(dspy_turbo.__version__, str)
