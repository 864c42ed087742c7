"""LM credentials are never part of a key: a rotated credential keeps the cache, and no
credential shows in ``explain_key``. Real ``dspy.LM``s against the loopback HTTP server."""

from __future__ import annotations

import dspy
import pytest


def _lm(server, secret: str, **extra):
    return dspy.LM("openai/gpt-4o-mini", api_base=server.url, api_key=f"sk-{secret}",
                   extra_headers={"Authorization": f"Bearer tok-{secret}", "X-Team": "search"},
                   extra_body={"api_key": f"body-{secret}"},
                   aws_secret_access_key=f"aws-{secret}", aws_session_token=f"sess-{secret}",
                   azure_ad_token=f"az-{secret}", vertex_credentials=f"vx-{secret}", **extra)


def test_a_rotated_credential_still_hits(make_turbo, openai_server):
    turbo = make_turbo().install()
    first = _lm(openai_server, "A")("What is 2 + 2?")
    assert openai_server.calls == 1
    again = _lm(openai_server, "B")("What is 2 + 2?")  # every credential rotated
    assert again == first and openai_server.calls == 1
    _lm(openai_server, "B", temperature=0.5)("What is 2 + 2?")  # a real parameter is identity
    assert openai_server.calls == 2
    assert turbo.stats()["hits_total"] == 1


def test_a_header_of_its_own_is_identity(make_turbo, openai_server):
    make_turbo().install()
    dspy.LM("openai/gpt-4o-mini", api_base=openai_server.url, api_key="k", extra_headers={"X-Team": "a"})("q")
    dspy.LM("openai/gpt-4o-mini", api_base=openai_server.url, api_key="k", extra_headers={"X-Team": "b"})("q")
    assert openai_server.calls == 2


@pytest.mark.parametrize("secret", ["sk-A", "tok-A", "body-A", "aws-A", "sess-A", "az-A", "vx-A"])
def test_explain_key_shows_no_credential(make_turbo, openai_server, secret):
    turbo = make_turbo()
    seen = []

    class Spy(dspy.clients.cache.Cache):
        def get(self, request, ignored=None):
            seen.append((request, ignored))

    previous = dspy.cache
    dspy.cache = Spy(False, False, None)
    try:
        _lm(openai_server, "A")("hello")
    finally:
        dspy.cache = previous
    (request, ignored), = seen[:1]
    assert secret in repr(request)  # DSPy's own request carries it
    explained = turbo.explain_key(request, ignored)
    assert secret not in repr(explained)
    assert explained["fields"]["extra_headers"] == {"X-Team": "search"}
