"""No secret of a config shows anywhere dspy-turbo shows config: reprs, dumps, the JSON
schema, config messages, `dspy-turbo check`; the component still gets the real value.

A plugin marks an option secret by its type (``SecretURL``, ``SecretStr``); URL credentials
and credential-named keys of free-form mappings are masked even when nobody marked them.
"""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
from pydantic import SecretStr

import dspy_turbo
from dspy_turbo.cache.memory import MemoryBackend, MemoryOptions
from dspy_turbo.cli import main as cli
from dspy_turbo.host.components import SecretURL
from dspy_turbo.host.redaction import redact_text, redact_url

PASSWORD = "Pa55-w0rd-zq"
TOKEN = "tok-4f9a1c"
API_KEY = "sk-live-77aa"


class VaultOptions(MemoryOptions):
    endpoint: SecretURL = SecretURL("https://vault.internal:8200/v1")
    token: SecretStr | None = None
    mirror: str = ""
    """An unmarked string: a URL's credentials in it are still masked where config is shown."""
    headers: dict[str, str] = {}


class VaultBackend(MemoryBackend):
    """A memory tier with secret options, as a third-party plugin would declare them."""

    name: ClassVar[str] = "vault"
    Options: ClassVar[type[VaultOptions]] = VaultOptions
    built: ClassVar[list] = []

    def __init__(self, options=None):
        super().__init__(options)
        VaultBackend.built.append(self)


class VaultPlugin:
    @dspy_turbo.hookimpl
    def dspy_turbo_cache_backends(self):
        return [VaultBackend]


def _config(tmp_path, monkeypatch):
    monkeypatch.setenv("VAULT_URL", f"https://ops:{PASSWORD}@vault.internal:8200/v1")
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    path = tmp_path / "turbo.yaml"
    path.write_text(
        "cache:\n"
        "  tiers:\n"
        "    - type: vault\n"
        "      endpoint: ${VAULT_URL}\n"
        "      token: ${VAULT_TOKEN}\n"
        f"      mirror: https://{TOKEN}@mirror.internal/cache\n"
        f"      headers: {{Authorization: Bearer {TOKEN}, X-Trace: '7'}}\n"
        "routing:\n"
        "  type: complexity\n"
        "  tiers:\n"
        f"    - {{name: small, model: openai/gpt-4o-mini, lm_kwargs: {{api_key: {API_KEY}, max_tokens: 64}}}}\n"
        "    - {name: large, model: openai/gpt-4o}\n")
    return path


def _shown(turbo) -> dict[str, str]:
    config, settings = turbo.config, turbo.settings
    options = config.tiers[0].options
    return {
        "repr(config)": repr(config),
        "str(config)": str(config),
        "repr(settings)": repr(settings),
        "str(settings)": str(settings),
        "settings.model_dump()": repr(settings.model_dump()),
        "settings.model_dump_json()": settings.model_dump_json(),
        "repr(options)": repr(options),
        "options.model_dump_json()": options.model_dump_json(),
        "routing options": repr(config.routing.options) + config.routing.options.model_dump_json(),
        "repr(turbo)": repr(turbo),
    }


def test_secret_options_are_masked_in_every_view_and_reach_the_component(tmp_path, monkeypatch):
    VaultBackend.built.clear()
    turbo = dspy_turbo.load(_config(tmp_path, monkeypatch), plugins=[VaultPlugin()])
    try:
        for where, text in _shown(turbo).items():
            for secret in (PASSWORD, TOKEN, API_KEY):
                assert secret not in text, f"{secret!r} shows in {where}"
        # the shape stays readable: only the credentials are masked
        assert "https://ops:***@vault.internal:8200/v1" in repr(turbo.settings)
        assert "https://***@mirror.internal/cache" in turbo.settings.model_dump_json()
        tier_view = turbo.settings.cache.tiers[0]
        assert tier_view["headers"] == {"Authorization": "***", "X-Trace": "7"}
        # ... and the component has the real values
        backend = VaultBackend.built[-1]
        assert backend.options.endpoint.get_secret_value() == f"https://ops:{PASSWORD}@vault.internal:8200/v1"
        assert backend.options.token.get_secret_value() == TOKEN
        assert backend.options.mirror == f"https://{TOKEN}@mirror.internal/cache"
        assert backend.options.headers["Authorization"] == f"Bearer {TOKEN}"
        assert turbo.config.routing.options.tiers[0].lm_kwargs["api_key"] == API_KEY
        # A python dump of options is data: marked secrets stay secret objects (masked when shown)
        # and round-trip with their real values; unmarked values are as given.
        dumped = backend.options.model_dump()
        assert PASSWORD not in repr(dumped) and repr(dumped["token"]) == "SecretStr('**********')"
        again = VaultOptions.model_validate(dumped)
        assert again.endpoint.get_secret_value() == backend.options.endpoint.get_secret_value()
    finally:
        turbo.close()


def test_check_output_shows_no_secret(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLM_KEY", API_KEY)
    good = tmp_path / "turbo.yaml"
    good.write_text(
        "routing:\n"
        "  type: complexity\n"
        "  tiers:\n"
        f"    - {{name: small, model: openai/gpt-4o-mini, lm_kwargs: {{api_key: '${{LLM_KEY}}', "
        f"api_base: 'https://ops:{PASSWORD}@llm.internal/v1'}}}}\n"
        "    - {name: large, model: openai/gpt-4o}\n")
    assert cli(["check", str(good)]) == 0
    out = capsys.readouterr()
    assert "OK" in out.out and all(s not in out.out + out.err for s in (PASSWORD, API_KEY))

    # A secret put where it does not belong is quoted by the message about it: masked there too.
    monkeypatch.setenv("REDIS_URL", f"redis://:{PASSWORD}@cache.internal:6379/0")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cache:\n  ttl: ${REDIS_URL}\n")
    assert cli(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cache.ttl" in err and PASSWORD not in err and "redis://:***@cache.internal:6379/0" in err


def test_schema_defaults_are_masked(capsys):
    class Defaults(MemoryOptions):
        upstream: str = f"https://ops:{PASSWORD}@up.internal/"
        endpoint: SecretURL = SecretURL(f"https://ops:{PASSWORD}@vault.internal/")

    class WithDefaults(MemoryBackend):
        name: ClassVar[str] = "with-defaults"
        Options: ClassVar[type[Defaults]] = Defaults

    class Plugin:
        @dspy_turbo.hookimpl
        def dspy_turbo_cache_backends(self):
            return [WithDefaults]

    from dspy_turbo.host.config import json_schema
    from dspy_turbo.host.plugin_manager import build_registry, make_plugin_manager

    schema = json_schema(build_registry(make_plugin_manager([Plugin()])))
    text = json.dumps(schema)
    assert PASSWORD not in text
    tier = next(t for t in schema["$defs"]["CacheSettings"]["properties"]["tiers"]["items"]["oneOf"]
                if t["title"] == "cache_backend:with-defaults")
    assert tier["properties"]["endpoint"]["default"] == "https://ops:***@vault.internal/"
    assert tier["properties"]["upstream"]["default"] == "https://ops:***@up.internal/"


def test_a_validation_error_of_options_never_echoes_the_input():
    with pytest.raises(Exception) as info:
        VaultOptions(endpoint=f"https://ops:{PASSWORD}@vault.internal:port/")
    assert PASSWORD not in str(info.value) and "port" in str(info.value)


@pytest.mark.parametrize("url,shown", [
    ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
    ("redis://alice:pw@host:6379/0", "redis://alice:***@host:6379/0"),
    ("https://TOKEN@host/x", "https://***@host/x"),
    ("redis://:p@ss/w@host:6379/0", "redis://:***@host:6379/0"),  # unescaped @ and /: all of it masked
    ("rediss://host:6380/0?ssl_password=pw&db=1", "rediss://host:6380/0?ssl_password=***&db=1"),
    ("redis://host:6379/0", "redis://host:6379/0"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
])
def test_redact_url_masks_only_credentials(url, shown):
    assert redact_url(url) == shown


def test_redact_text_masks_every_url_in_a_message():
    text = "failed: 'redis://:pw1@a:1/0' then https://u:pw2@b/x."
    assert redact_text(text) == "failed: 'redis://:***@a:1/0' then https://u:***@b/x."
