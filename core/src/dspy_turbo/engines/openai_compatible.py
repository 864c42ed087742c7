"""A lean DSPy engine for OpenAI-compatible endpoints (vLLM, SGLang, llama.cpp, Ollama, a gateway).

    from dspy_turbo.engines.openai_compatible import openai_compatible_lm

    lm = openai_compatible_lm("openai/my-model", api_base="http://127.0.0.1:8000/v1", api_key="...")
    dspy.configure(lm=lm)

The same wire requests and the same responses as DSPy's default (native lm15) engine:
chat calls go through the very lm15 provider DSPy's engine routes ``model`` to, built once
per engine with one pooled transport. What DSPy's default does on every call and this
engine does once: choose the engine and route the model name, pre-flight the request
(``plan``: the wire request is built twice per call), look the proxy environment
variables up (``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` are read when the engine is
built), and hop to a thread before every async call. ``model_type="text"`` posts to
``/completions`` with the prompt DSPy's LiteLLM path builds. Streaming works for both.

Differences from DSPy's default, all from DSPy's custom-engine contract: DSPy does not
price a custom engine's calls (``lm.history[i]["cost"]`` is ``None``, as it is anyway for
every model name DSPy's price table lacks, i.e. every self-hosted model; a Turbo's
stats still price them from its table and ``costs.prices``); a request the native
route cannot carry raises instead of falling back to LiteLLM; ``api_key``/``api_base``/
``timeout`` are the engine's (``dspy.LM`` refuses them next to a custom engine), which
``openai_compatible_lm`` takes care of.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

from dspy._vendor.lm15 import transports as _transports
from dspy._vendor.lm15.providers.base import _attach_error_metadata
from dspy._vendor.lm15.router import AsyncLMRouter, LMRouter
from dspy.clients.engines.base import validate_request
from dspy.clients.engines.lifecycle import aclosing_stream, closing_stream
from dspy.clients.engines.lm15_engine import _model_string, timeouts_for
from dspy.lm15 import (
    ConfigurationError,
    Message,
    Request,
    Response,
    RouterConfig,
    StreamDeltaEvent,
    StreamEndEvent,
    StreamErrorEvent,
    TextDelta,
    TextPart,
    UnsupportedFeatureError,
    Usage,
)
from dspy.lm15 import (
    TransportError as LM15TransportError,
)

MODEL_TYPES = ("chat", "text")
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_call", "function_call": "tool_call",
           "content_filter": "content_filter"}
# Config fields a /completions request carries, by their wire names (LiteLLM's text path
# passes the LM's keyword arguments through under these names).
_TEXT_FIELDS = (("max_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"),
                ("top_k", "top_k"), ("seed", "seed"), ("frequency_penalty", "frequency_penalty"),
                ("presence_penalty", "presence_penalty"), ("user_id", "user"))


def _proxy_for(base_url: str) -> str | None:
    """The proxy the environment names for ``base_url`` (read once), or None for a direct connection."""
    parsed = urllib.parse.urlsplit(base_url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parsed.scheme) or proxies.get("all")
    if not proxy:
        return None
    try:
        if urllib.request.proxy_bypass(parsed.hostname or ""):  # NO_PROXY
            return None
    except Exception:
        pass
    return proxy


class _Settings:
    """What both engines of a pair are built from (the async one keeps a pool per event loop)."""

    def __init__(self, base_url: str, api_key: Any, model_type: str, timeout: Any, max_connections: int | None,
                 proxy: str | None, hints_model: str | None = None):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {', '.join(MODEL_TYPES)}, got {model_type!r}")
        self.api_base = base_url  # as given: a Turbo keys calls by it, as it keys dspy.LM(api_base=...)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model_type = model_type
        self.timeout = timeout
        self.timeouts = timeouts_for(timeout)  # DSPy's own reading of an LM timeout
        self.max_connections = max_connections
        self.proxy = proxy if proxy is not None else _proxy_for(self.base_url)
        self.hints_model = hints_model
        self._hints = None
        self.resolver = LMRouter(RouterConfig())  # offline routing only (no keys, no transport)
        self._routes: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def transport_kwargs(self) -> dict[str, Any]:
        kwargs = RouterConfig(timeouts=self.timeouts, max_connections=self.max_connections).transport_kwargs()
        return {**kwargs, "proxy": self.proxy, "trust_env": False}

    def route(self, model: str) -> tuple[str, str]:
        """(lm15 provider, wire model) for ``model``, as DSPy's engine routes it; once per name."""
        found = self._routes.get(model)
        if found is None:
            if self.model_type == "text":  # LiteLLM's text path: "provider/model" -> model
                found = ("openai-chat", model.split("/", 1)[-1])
            else:
                resolution = self.resolver.resolve_openai_chat(_model_string(model, "chat"))
                found = (resolution.provider, resolution.model)
            with self._lock:
                self._routes[model] = found
        return found

    def config(self, provider: str, transport: Any) -> RouterConfig:
        keys = {provider: self.api_key} if self.api_key is not None else None
        return RouterConfig(api_keys=keys, base_urls={provider: self.base_url}, transport=transport)

    def hints(self) -> Any:
        """The capability hints DSPy's default engine gives ``hints_model`` (tools, reasoning,
        response schema, parameters), so that adapters format requests as they would there."""
        if self._hints is None:
            from dspy.clients.capabilities import Capabilities, capabilities

            found = Capabilities()
            if self.hints_model is not None:
                import dspy

                try:  # DSPy's own answer, offline: routing and its model table
                    found = capabilities(dspy.LM(self.hints_model, model_type=self.model_type,
                                                 api_base=self.base_url, api_key="capability-hints-only"))
                except Exception:
                    pass  # unknown stays "not supported", DSPy's convention
            self._hints = found
        return self._hints

    def state(self) -> dict[str, Any]:
        timeout = self.timeout if self.timeout is None or isinstance(self.timeout, (int, float)) else None
        return {"base_url": self.base_url, "model_type": self.model_type, "timeout": timeout,
                "max_connections": self.max_connections, "hints_model": self.hints_model}


# -- text completions (/completions) ------------------------------------------------------------


def _prompt(request: Request) -> str:
    """The prompt DSPy's LiteLLM text path sends: every message's text, then ``BEGIN RESPONSE:``."""
    system = request.system if isinstance(request.system, str) else "".join(
        part.text for part in request.system or () if isinstance(part, TextPart))
    texts = ([system] if system else []) + [message.text or "" for message in request.messages]
    return "\n\n".join([*texts, "BEGIN RESPONSE:"])


def _text_body(request: Request, model: str, stream: bool) -> dict[str, Any]:
    config = request.config
    if request.tools or config.response_format is not None or config.reasoning is not None \
            or config.cache is not None or config.tool_choice is not None:
        raise UnsupportedFeatureError("text completions carry a prompt and sampling settings only "
                                      "(no tools, response_format, reasoning or prompt cache)")
    body: dict[str, Any] = {"model": model, "prompt": _prompt(request)}
    for name, wire in _TEXT_FIELDS:
        value = getattr(config, name, None)
        if value is not None:
            body[wire] = value
    if config.stop:
        body["stop"] = list(config.stop)
    if config.logprobs is not None:
        body["logprobs"] = config.logprobs
    body.update(config.extensions or {})
    if stream:
        body["stream"] = True
    return body


def _usage(data: Any) -> Usage:
    data = data if isinstance(data, dict) else {}
    prompt = data.get("prompt_tokens_details") or {}
    completion = data.get("completion_tokens_details") or {}
    return Usage(input_tokens=data.get("prompt_tokens"), output_tokens=data.get("completion_tokens"),
                 total_tokens=data.get("total_tokens"), reasoning_tokens=completion.get("reasoning_tokens"),
                 cache_read_tokens=prompt.get("cached_tokens"))


def _text_response(data: Any, model: str, provider: Any) -> Response:
    if not isinstance(data, dict):
        raise TypeError(f"a completions response body is a JSON object, got {type(data).__name__}")
    error = data.get("error")
    if isinstance(error, dict):  # an error inside a 200 reply, read as the chat path reads one
        raise provider._response_error(str(error.get("code") or ""), str(error.get("message") or error))
    choices = data.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    text = choice.get("text")
    return Response(id=str(data["id"]) if data.get("id") else None, model=str(data.get("model") or model),
                    message=Message(role="assistant", parts=(TextPart(text=str(text or "")),)),
                    finish_reason=_FINISH.get(str(choice.get("finish_reason")), "stop"),
                    usage=_usage(data.get("usage")), provider_data=data)


def _text_events(provider: Any, raw: Any) -> Iterator[Any]:
    """lm15 stream events from one server-sent event of a /completions stream."""
    if not raw.data:
        return
    if raw.data == "[DONE]":
        yield StreamEndEvent()
        return
    payload = json.loads(raw.data)
    if not isinstance(payload, dict):
        return
    error = payload.get("error")
    if isinstance(error, dict):
        code = str(error.get("code") or error.get("type") or "provider")
        yield StreamErrorEvent(error=provider._error_detail(code, str(error.get("message") or "")))
        return
    choices = payload.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    text = choice.get("text")
    if isinstance(text, str) and text:
        yield StreamDeltaEvent(delta=TextDelta(text=text))
    finish, usage = choice.get("finish_reason"), payload.get("usage")
    if finish:
        yield StreamEndEvent(finish_reason=_FINISH.get(str(finish), "stop"),
                             usage=_usage(usage) if isinstance(usage, dict) else None, provider_data=payload)
    elif isinstance(usage, dict):
        yield StreamEndEvent(usage=_usage(usage), provider_data=payload)


def _text_request(provider: Any, body: dict[str, Any], model: str, stream: bool):
    return provider._emit(method="POST", url=f"{provider.base_url.rstrip('/')}/completions", endpoint="completions",
                          stream=stream, model=model, headers=provider._headers(), payload=body)


# -- the engines --------------------------------------------------------------------------------


class OpenAICompatibleEngine:
    """Sync DSPy engine (``complete(Request) -> Response``, ``stream``) for one OpenAI-compatible endpoint.

    ``base_url``: the endpoint's API root (``http://host:8000/v1``). ``api_key``: its key (a
    string or a zero-argument callable; None reads ``OPENAI_API_KEY`` as DSPy's engine does).
    ``model_type``: ``"chat"`` (``/chat/completions``) or ``"text"`` (``/completions``).
    ``timeout``: seconds (or an ``httpx.Timeout``), read as DSPy reads an LM's ``timeout``.
    ``max_connections``: the pool's size. ``proxy``: an ``http://`` proxy (default: the one
    the environment names for ``base_url``, read now). ``hints_model``: the model whose
    capability hints the engine declares to DSPy's adapters, as DSPy's default engine
    would for it (``openai_compatible_lm`` passes its model; None declares none).
    """

    def __init__(self, base_url: str, api_key: Any = None, *, model_type: str = "chat", timeout: Any = None,
                 max_connections: int | None = None, proxy: str | None = None, hints_model: str | None = None):
        self.settings = _Settings(base_url, api_key, model_type, timeout, max_connections, proxy, hints_model)
        self._transport = None
        self._providers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def model_type(self) -> str:
        return self.settings.model_type

    @property
    def cache_endpoint(self) -> str:
        """The endpoint, for a Turbo's keys (calls to two endpoints are never one cache entry)."""
        return self.settings.api_base

    # Read by DSPy's adapters (dspy.clients.capabilities) for a custom engine.
    supports_function_calling = property(lambda self: self.settings.hints().function_calling)
    supports_reasoning = property(lambda self: self.settings.hints().reasoning)
    supports_response_schema = property(lambda self: self.settings.hints().response_schema)
    supported_params = property(lambda self: self.settings.hints().params)

    def _target(self, request: Request) -> tuple[Any, Request]:
        validate_request(request)
        name, model = self.settings.route(request.model)
        provider = self._providers.get(name)
        if provider is None:
            with self._lock:
                if self._closed:
                    raise ConfigurationError("Engine is closed")
                provider = self._providers.get(name)
                if provider is None:
                    if self._transport is None:
                        self._transport = _transports.StdlibTransport(**self.settings.transport_kwargs())
                    provider = LMRouter(self.settings.config(name, self._transport)).lm(f"{name}:{model}")
                    self._providers[name] = provider
        elif self._closed:
            raise ConfigurationError("Engine is closed")
        return provider, request if request.model == model else replace(request, model=model)

    def complete(self, request: Request) -> Response:
        provider, routed = self._target(request)
        if self.settings.model_type == "chat":
            return provider.complete(routed)
        reply = provider._send(_text_request(provider, _text_body(routed, routed.model, False), routed.model, False))
        if reply.status >= 400:
            raise provider._http_error(reply)
        return _text_response(reply.json(), routed.model, provider)

    def stream(self, request: Request) -> Iterator[Any]:
        provider, routed = self._target(request)
        if self.settings.model_type == "chat":
            events = provider.stream(routed)
        else:
            events = self._text_stream(provider, routed)
        with closing_stream(events):
            yield from events

    def _text_stream(self, provider: Any, request: Request) -> Iterator[Any]:
        from dspy._vendor.lm15.providers.base import _iter_lines
        from dspy._vendor.lm15.result import coalesce_stream
        from dspy._vendor.lm15.sse import parse_sse

        wire = _text_request(provider, _text_body(request, request.model, True), request.model, True)

        def raw() -> Iterator[Any]:
            try:
                with provider.transport.stream(wire) as reply:
                    if reply.status >= 400:
                        error = provider.normalize_error(reply.status, reply.read().decode("utf-8", errors="replace"))
                        _attach_error_metadata(error, reply.headers)  # retry-after, rate-limit headers
                        raise error
                    for event in parse_sse(_iter_lines(reply)):
                        yield from _text_events(provider, event)
            except _transports.TransportError as exc:  # as lm15's providers report a network failure
                raise LM15TransportError(str(exc)) from exc

        return coalesce_stream(raw(), model=request.model)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._providers.clear()
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    # DSPy saves an LM with a custom engine through these (the key is never saved).
    def dump_state(self) -> dict[str, Any]:
        return self.settings.state()

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> OpenAICompatibleEngine:
        return cls(**state)


class AsyncOpenAICompatibleEngine:
    """The async counterpart (``async complete``, async ``stream``): one pool per event loop,
    no thread hop per call. Built from the sync engine it pairs with (same endpoint)."""

    def __init__(self, sync: OpenAICompatibleEngine):
        self.sync = sync
        self.settings = sync.settings
        self._loops: dict[Any, tuple[Any, dict[str, Any]]] = {}  # loop -> (transport, providers)
        self._lock = threading.Lock()
        self._closed = False

    def _target(self, request: Request) -> tuple[Any, Request]:
        validate_request(request)
        name, model = self.settings.route(request.model)
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        provider = state[1].get(name) if state is not None else None
        if provider is None:
            with self._lock:
                if self._closed:
                    raise ConfigurationError("Engine is closed")
                state = self._loops.get(loop)
                if state is None:
                    for dead in [other for other in self._loops if other.is_closed()]:
                        del self._loops[dead]  # lm15's finalizers close what they held
                    state = self._loops[loop] = (
                        _transports.StdlibAsyncTransport(**self.settings.transport_kwargs()), {})
                provider = state[1].get(name)
                if provider is None:
                    provider = AsyncLMRouter(self.settings.config(name, state[0])).lm(f"{name}:{model}")
                    state[1][name] = provider
        elif self._closed:
            raise ConfigurationError("Engine is closed")
        return provider, request if request.model == model else replace(request, model=model)

    async def complete(self, request: Request) -> Response:
        provider, routed = self._target(request)
        if self.settings.model_type == "chat":
            return await provider.complete(routed)
        inner = provider._inner
        wire = await provider._build(_text_request, inner, _text_body(routed, routed.model, False), routed.model, False)
        reply = await provider._send(wire)
        if reply.status >= 400:
            raise inner._http_error(reply)
        return _text_response(reply.json(), routed.model, inner)

    async def stream(self, request: Request) -> AsyncIterator[Any]:
        provider, routed = self._target(request)
        if self.settings.model_type == "chat":
            events = provider.stream(routed)
        else:
            events = self._text_stream(provider, routed)
        async with aclosing_stream(events):
            async for event in events:
                yield event

    async def _text_stream(self, provider: Any, request: Request) -> AsyncIterator[Any]:
        from dspy._vendor.lm15.providers.async_base import _aiter_lines
        from dspy._vendor.lm15.result import acoalesce_stream
        from dspy._vendor.lm15.sse import aparse_sse

        inner = provider._inner
        wire = await provider._build(_text_request, inner, _text_body(request, request.model, True), request.model,
                                     True)

        async def raw() -> AsyncIterator[Any]:
            try:
                async with provider.transport.stream(wire) as reply:
                    if reply.status >= 400:
                        body = await reply.read()
                        error = inner.normalize_error(reply.status, body.decode("utf-8", errors="replace"))
                        _attach_error_metadata(error, reply.headers)
                        raise error
                    async for event in aparse_sse(_aiter_lines(reply)):
                        for item in _text_events(inner, event):
                            yield item
            except _transports.TransportError as exc:  # as lm15's providers report a network failure
                raise LM15TransportError(str(exc)) from exc

        events = acoalesce_stream(raw(), model=request.model)
        async with aclosing_stream(events):
            async for event in events:
                yield event

    def dump_state(self) -> dict[str, Any]:
        return self.settings.state()

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> AsyncOpenAICompatibleEngine:
        return cls(OpenAICompatibleEngine(**state))

    async def aclose(self) -> None:
        """Close this event loop's pool (other loops' pools close with their loops)."""
        with self._lock:
            self._closed = True
            loops, self._loops = self._loops, {}
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, (transport, _) in loops.items():
            if loop is current:
                await transport.aclose()


def openai_compatible_lm(model: str, *, api_base: str, api_key: Any = None, model_type: str = "chat",
                         timeout: Any = None, max_connections: int | None = None, proxy: str | None = None,
                         **lm_kwargs: Any):
    """``dspy.LM(model, ...)`` on the lean engine pair; ``lm_kwargs`` are ``dspy.LM``'s own
    (``temperature``, ``max_tokens``, ``cache``, ``num_retries``, ...)."""
    import dspy

    engine = OpenAICompatibleEngine(api_base, api_key, model_type=model_type, timeout=timeout,
                                    max_connections=max_connections, proxy=proxy, hints_model=model)
    return dspy.LM(model, model_type=model_type, engine=engine, async_engine=AsyncOpenAICompatibleEngine(engine),
                   **lm_kwargs)


__all__ = ["AsyncOpenAICompatibleEngine", "OpenAICompatibleEngine", "openai_compatible_lm"]
