"""What crosses to and from a Ray worker (no Ray needed): JSON bytes, never a pickle."""

from __future__ import annotations

import pickle

import dspy
import pytest

import dspy_turbo
from dspy_turbo.cache.codec import DecodeError, EncodeError
from dspy_turbo_ray import document, wire


def test_inputs_and_results_round_trip_with_their_types():
    inputs = {"question": "why?", "k": 3, "extra": {"a": [1, 2]}}
    assert wire.decode_inputs(wire.encode_inputs(inputs)) == inputs
    value, usage, cost = wire.decode_result(wire.encode_result(dspy.Prediction(answer="42"), {"prompt_tokens": 5}, 0.25))
    assert isinstance(value, dspy.Prediction) and value.answer == "42"
    assert usage == {"prompt_tokens": 5} and cost == 0.25


def test_a_pickle_or_foreign_bytes_are_refused_not_loaded():
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('a pickle ran')",))

    for payload in (pickle.dumps(Boom()), b"not json", b'{"v": 99, "ok": true}', "text"):
        with pytest.raises(DecodeError):
            wire.decode_result(payload)
        with pytest.raises(DecodeError):
            wire.decode_inputs(payload)


def test_an_input_that_cannot_be_encoded_is_named():
    with pytest.raises(EncodeError, match="input field 'question' cannot be sent to a Ray worker"):
        wire.encode_inputs({"question": object()})


def test_errors_come_back_as_built_ins_or_remote_item_errors_never_by_imported_name():
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        payload = wire.encode_error(exc)
    with pytest.raises(ValueError, match="bad input") as caught:
        wire.decode_result(payload)
    assert "Traceback" in caught.value.remote_traceback

    class Own(Exception):
        pass

    with pytest.raises(wire.RemoteItemError) as caught:
        wire.decode_result(wire.encode_error(Own("mine")))
    assert caught.value.remote_type.endswith("Own") and "mine" in str(caught.value)
    # a name that looks importable is never imported
    assert isinstance(wire.rebuild_error("os.system", "x", ""), wire.RemoteItemError)
    assert isinstance(wire.rebuild_error("SystemExit", "x", ""), wire.RemoteItemError)  # not an Exception


@pytest.mark.requires_plugin("file", "redis", "logsink", "batching")
def test_the_workers_config_is_the_drivers_with_real_secrets_and_no_sinks(tmp_path):
    config = {"namespace": "rayconf",
              "cache": {"tiers": [{"type": "memory", "max_bytes": "1MB"},
                                  {"type": "file", "directory": str(tmp_path), "ttl": "1d"}],
                        "signing_key": "a-signing-key-of-some-length"},
              "metrics": {"sinks": [{"type": "log"}]},
              "batching": {"type": "thread", "max_concurrency": 4}}
    with dspy_turbo.load(config) as driver:
        doc = document.driver_document(driver)
        encoded = document.encode(doc)
    assert b"a-signing-key-of-some-length" in encoded  # the worker needs the real key
    assert "sinks" not in doc.get("metrics", {}) and "batching" not in doc
    with dspy_turbo.load(doc) as worker:
        assert worker.namespace == "rayconf"
        assert [t.name for t in worker.cache.tiers] == [t.name for t in driver.cache.tiers]
        assert worker.settings.cache.signing_key.get_secret_value() == "a-signing-key-of-some-length"
        assert worker.config.tiers[1].options.ttl == driver.config.tiers[1].options.ttl
        assert worker.sinks == []
