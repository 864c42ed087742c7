"""The redis tier's options: a URL is checked when the config is loaded (not at the first
call), and its password shows nowhere (reprs, dumps, `check`, `clear`, stats, events,
logs) while the client still authenticates with it. Against real private servers."""

from __future__ import annotations

import logging

import pytest

import dspy_turbo
from dspy_turbo.cli import main as cli

SECRET = "s3cret-Pa55-9qz"


def _problems(config) -> dict[str, str]:
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load(config)
    assert SECRET not in str(info.value)
    return {issue.path: issue.message for issue in info.value.issues}


BAD_URLS = [
    (f"redis://:{SECRET}@127.0.0.1:abc/0", "port is not a number"),
    (f"redis://:{SECRET}@127.0.0.1:99999/0", "port is not a number"),
    (f"redis://:{SECRET}@127.0.0.1:0/0", "port is not a number"),
    (f"redis://:{SECRET}@127.0.0.1:6379/zero", "database number"),
    (f"redis://:{SECRET}@:6379/0", "no host"),
    (f"http://:{SECRET}@127.0.0.1:6379/0", "must start with redis://"),
    (f"redis:{SECRET}@127.0.0.1", "not a URL"),
    ("unix://", "socket's path"),
    (f"redis://:{SECRET}@127.0.0.1:6379/0?socket_timeout=1e20", "use the tier's `timeout`"),
    (f"redis://:{SECRET}@127.0.0.1:6379/0?max_connections=10000000", "use the tier's `max_connections`"),
    (f"redis://:{SECRET}@127.0.0.1:6379/0?retry_on_timeout=yes", "no call is retried"),
    (f"redis://:{SECRET}@127.0.0.1:6379/0?colour=blue", "unknown parameter 'colour'"),
    (f"redis://:{SECRET}@127.0.0.1:6379/0?ssl_certfile=c.pem", "rediss:// only"),
    (f"redis://:{SECRET}@127.0.0.1:6379/0?db=two", "whole number"),
    (f"redis://:{SECRET}@127.0.0.1:6379/0?protocol=4", "2 or 3"),
    ("redis://:pa@ss/word@127.0.0.1:6379/0", "percent-encoded"),
]


@pytest.mark.parametrize("url,words", BAD_URLS, ids=[w for _, w in BAD_URLS])
def test_a_bad_url_is_a_config_error_at_its_path_without_the_password(tmp_path, monkeypatch, capsys, url, words):
    monkeypatch.setenv("TEST_REDIS_URL", url)
    found = _problems({"cache": {"tiers": [{"type": "redis", "url": "${TEST_REDIS_URL}"}]}})
    assert words in found["cache.tiers[0].url"]
    path = tmp_path / "turbo.yaml"
    path.write_text("cache:\n  tiers:\n    - type: redis\n      url: ${TEST_REDIS_URL}\n")
    assert cli(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cache.tiers[0].url" in err and SECRET not in err and "pa@ss" not in err


@pytest.mark.parametrize("options,path,words", [
    ({"timeout": 2**63}, "cache.tiers[0].timeout", "at most 100 years"),
    ({"timeout": float("inf")}, "cache.tiers[0].timeout", "at most 100 years"),
    ({"ttl": float("nan")}, "cache.tiers[0].ttl", "not NaN"),
    ({"ttl": 0}, "cache.tiers[0].ttl", "more than 0"),
    ({"max_connections": 10**12}, "cache.tiers[0].max_connections", "less than or equal to 10000"),
    ({"log_max": 2**64}, "cache.tiers[0].log_max", "less than or equal to"),
    ({"cluster": True, "url": "redis://127.0.0.1:7000/3"}, "cache.tiers[0]", "only database 0"),
    ({"cluster": True, "url": "unix:///run/redis.sock"}, "cache.tiers[0]", "not a unix socket"),
])
def test_options_the_client_could_not_use_are_config_errors(options, path, words):
    found = _problems({"cache": {"tiers": [{"type": "redis", **options}]}})
    assert words in found[path], found


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379", "redis://127.0.0.1:6379/", "redis://127.0.0.1/15", "redis://h.example:6380/0?db=2&protocol=3",
    "rediss://h.example:6380/0?ssl_cert_reqs=required&ssl_check_hostname=true", "unix:///run/redis/redis.sock?db=1",
    "redis://alice:pw%40x@h.example:6379/0",
])
def test_good_urls_load(url):
    turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "redis", "url": url}]}})
    try:
        assert turbo.cache.tiers[0].backend.options.url.get_secret_value() == url
    finally:
        turbo.close()


def _shown(turbo) -> str:
    config, settings = turbo.config, turbo.settings
    opts = config.tiers[1].options
    return "\n".join([repr(config), str(config), repr(settings), str(settings), repr(settings.model_dump()),
                      settings.model_dump_json(), repr(opts), str(opts), repr(opts.model_dump()), opts.model_dump_json(),
                      repr(turbo), repr(turbo.cache.tiers[1].backend), repr(turbo.stats())])


def test_the_password_reaches_redis_and_shows_nowhere(redis_server, namespace, tmp_path, monkeypatch, capsys, lm):
    import dspy

    server = redis_server(None, "--requirepass", SECRET)
    url = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
    monkeypatch.setenv("TEST_REDIS_URL", url)
    path = tmp_path / "turbo.yaml"
    path.write_text(f"namespace: {namespace}\ncache:\n  tiers:\n    - type: memory\n    - type: redis\n"
                    "      url: ${TEST_REDIS_URL}\n")
    assert cli(["check", str(path)]) == 0
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err

    turbo = dspy_turbo.load(path).install()
    try:
        shown = _shown(turbo)
        assert SECRET not in shown
        assert f"redis://:***@127.0.0.1:{server.port}/0" in shown, "the URL's shape stays readable"
        assert turbo.cache.tiers[1].backend.options.url.get_secret_value() == url
        program = dspy.Predict("question -> answer")
        first = program(question="Does the password reach Redis?")
        turbo.cache.tiers[0].backend.clear()  # the next read goes to Redis
        assert program(question="Does the password reach Redis?").answer == first.answer
        stats = turbo.stats()
        assert stats["errors"] == {} and stats["hits"] == {"redis": 1} and lm.engine.calls == 1
        assert SECRET not in _shown(turbo)
    finally:
        turbo.close()


def test_a_wrong_password_shows_in_no_error_stat_log_or_cli_output(redis_server, namespace, tmp_path, monkeypatch,
                                                                   capsys, caplog, lm):
    import dspy

    server = redis_server(None, "--requirepass", "the-right-one")
    monkeypatch.setenv("TEST_REDIS_URL", f"redis://app:{SECRET}@127.0.0.1:{server.port}/0")
    path = tmp_path / "turbo.yaml"
    path.write_text(f"namespace: {namespace}\ncache:\n  tiers:\n    - type: memory\n    - type: redis\n"
                    "      url: ${TEST_REDIS_URL}\n")
    events = []

    class Recorder:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_event(self, event):
            events.append(event)

    caplog.set_level(logging.DEBUG)
    turbo = dspy_turbo.load(path, plugins=[Recorder()]).install()
    try:
        dspy.Predict("question -> answer")(question="with a wrong password")
        assert turbo.flush_events(5)
        stats = turbo.stats()
        assert stats["errors"].get("redis", 0) >= 1, "the failing tier is an error, not an exception"
        errors = [e for e in events if e.kind == "error"]
        assert errors and all(SECRET not in repr(e) for e in events)
        assert SECRET not in repr(stats) and SECRET not in caplog.text
    finally:
        turbo.close()
    assert cli(["clear", "--config", str(path), "--tier", "redis"]) == 1
    out = capsys.readouterr()
    assert "FAILED" in out.out and SECRET not in out.out + out.err
