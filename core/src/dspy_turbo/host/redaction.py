"""Keeping secrets out of what dspy-turbo shows: reprs, dumps, schemas, messages, CLI output.

A config value typed as a secret (:class:`~dspy_turbo.host.components.SecretURL`, pydantic's
``SecretStr``) is never shown. As a safety net for values nobody marked, the credentials
of any URL (``redis://:***@host:6379/0``) and the value of any credential-named key
(``password``, ``api_key``, ``Authorization``...) in a free-form mapping are masked
wherever config is shown. The real values stay where the component that needs them reads
them (``get_secret_value()``, the validated options).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Secret, SecretBytes, SecretStr

MASK = "***"

SECRET_TYPES = (Secret, SecretStr, SecretBytes)
"""What a field typed as a secret holds: its repr, str and JSON dump show no secret."""

# Names of credentials as a word of a key: `password`, `redis_password`, `api_key`,
# `aws_secret_access_key`, `azure_ad_token`, `vertex_credentials`, `Authorization`.
# Not `max_tokens` nor `tokens_per_minute`: the word must be `token` itself.
_WORDS = {"password", "passwd", "pwd", "secret", "token", "apikey", "credential", "credentials", "authorization",
          "cookie"}
_ENDINGS = ("api_key", "private_key", "signing_key", "secret_key", "access_key", "auth_key", "session_key")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def sensitive_name(name: object) -> bool:
    """Does a key with this name hold a credential?"""
    if not isinstance(name, str):
        return False
    lowered = name.lower().replace("-", "_")
    return lowered.endswith(_ENDINGS) or any(word in _WORDS for word in re.split(r"[_\s.]+", lowered))


def redact_url(url: str) -> str:
    """``url`` with its credentials masked: ``redis://user:pw@h:6379/0`` -> ``redis://user:***@h:6379/0``.

    The user name stays when there is a password (it says who connects); a user part alone
    (``https://TOKEN@host``) is masked, as are query parameters with a credential's name.
    A value that is no URL with credentials comes back unchanged.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    head_end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head, tail = rest[:head_end], rest[head_end:]
    if "@" in head:
        # the last @: a password with an unescaped @ or / is still all masked
        userinfo, _, host = head.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        head = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    if "=" in tail:
        tail = re.sub(r"([?&;])([^=&;#]+)=([^&;#]*)",
                      lambda m: f"{m[1]}{m[2]}={MASK}" if sensitive_name(m[2]) else m[0], tail)
    return f"{scheme}://{head}{tail}"


def redact_text(text: str) -> str:
    """Every URL in ``text`` (a message, an error) with its credentials masked."""
    return _URL.sub(lambda m: redact_url(m[0]), text) if "://" in text else text


def scrub(value: Any, _depth: int = 0) -> Any:
    """A copy of a free-form value (dicts, lists, strings) safe to show: secrets shown as such
    (masked), credential-named keys masked, URL credentials masked. Other values as they are."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, SECRET_TYPES):
        return str(value)
    if _depth > 64:  # config values are shallow; a deeper one is shown no further
        return MASK
    if isinstance(value, dict):
        return {k: (MASK if sensitive_name(k) and v is not None else scrub(v, _depth + 1)) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(scrub(v, _depth + 1) for v in value)
    return value
