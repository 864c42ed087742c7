"""An OpenAI-compatible HTTP server on loopback: the offline LM over a real socket.

    with OpenAIServer(latency=0.2) as server:
        lm = dspy.LM("openai/gpt-4o-mini", api_base=server.url, api_key="test")
        ...
        server.counts["/v1/chat/completions"]   # requests the provider received

It serves what DSPy's engines call: ``/v1/chat/completions`` and ``/v1/completions``
(plain and streamed as server-sent events), ``/v1/responses`` (the Responses API, plain
and streamed) and ``/v1/embeddings``. Answers are the offline LM's (``offline.render``):
deterministic, in the format the DSPy adapter asked for, with token usage, so a real
DSPy program parses them. It runs on asyncio (aiohttp), in a thread of its own
(``OpenAIServer``) or as its own process (``python -m dspy_turbo.engines.openai_server``, which
prints its URL and reports its own CPU per request at ``GET /stats``), so that the
server is never what a benchmark measures.

Fault injection: ``server.fail_next(n, status=500)`` answers the next ``n`` requests
with that status (``429`` carries ``retry-after``); ``POST /control`` does the same
from another process, and also sets ``latency``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import resource
import socket
import sys
import threading
import time
from collections import Counter
from typing import Any

from .offline import render

_CHAT, _TEXT, _RESPONSES, _EMBEDDINGS = "/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings"


def _text(content: Any) -> str:
    """The text of an OpenAI message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return ""


def _split(messages: list[dict[str, Any]]) -> tuple[str, str]:
    system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    return system, user


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dimensions)]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    return [x / norm for x in raw]


class _State:
    def __init__(self, latency: float, answers: dict[str, str] | None):
        self.latency = latency
        self.answers = dict(answers or {})
        self.counts: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.failures: list[int] = []
        self.lock = threading.Lock()
        self.cpu_start = time.process_time()
        self.served = 0

    def answer(self, system: str, user: str) -> str:
        for needle, text in self.answers.items():
            if needle in user:
                return text
        return render(system, user)


def _app(state: _State):
    from aiohttp import web

    async def respond(request: web.Request, kind: str):
        body = await request.json()
        with state.lock:
            state.counts[kind] += 1
            state.served += 1
            state.bodies.append(body)
            del state.bodies[:-1000]  # a long benchmark keeps the recent ones only
            failure = state.failures.pop(0) if state.failures else None
        delay = float(request.headers.get("x-latency", state.latency))
        if delay > 0:
            await asyncio.sleep(delay)
        if failure is not None:
            headers = {"retry-after": "0"} if failure == 429 else {}
            return web.json_response({"error": {"message": f"injected failure {failure}", "type": "server_error",
                                                "code": failure}}, status=failure, headers=headers)
        model = body.get("model") or "unknown"
        created = int(time.time())
        if kind == _EMBEDDINGS:
            inputs = body.get("input")
            inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
            dims = int(body.get("dimensions") or 8)
            data = [{"object": "embedding", "index": i, "embedding": _vector(str(t), dims)} for i, t in enumerate(inputs)]
            used = sum(_tokens(str(t)) for t in inputs)
            return web.json_response({"object": "list", "data": data, "model": model,
                                      "usage": {"prompt_tokens": used, "total_tokens": used}})
        if kind == _CHAT:
            system, user = _split(body.get("messages") or [])
        elif kind == _TEXT:
            prompt = body.get("prompt")
            system = user = prompt if isinstance(prompt, str) else "".join(prompt or [])
        else:  # responses
            raw = body.get("input")
            items = [{"role": "user", "content": raw}] if isinstance(raw, str) else list(raw or [])
            system, user = _split(items)
            if body.get("instructions"):
                system = f"{body['instructions']}\n{system}"
        n = int(body.get("n") or 1)
        texts = [state.answer(system, user) for _ in range(n)]
        prompt_tokens = _tokens(system + user)
        completion_tokens = sum(_tokens(t) for t in texts)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        ident = "srv-" + hashlib.sha256(f"{kind}|{system}|{user}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
        if body.get("stream"):
            return await _stream(request, kind, ident, model, created, texts, usage, body)
        if kind == _CHAT:
            choices = [{"index": i, "finish_reason": "stop", "logprobs": None,
                        "message": {"role": "assistant", "content": t}} for i, t in enumerate(texts)]
            return web.json_response({"id": ident, "object": "chat.completion", "created": created, "model": model,
                                      "choices": choices, "usage": usage})
        if kind == _TEXT:
            choices = [{"index": i, "finish_reason": "stop", "logprobs": None, "text": t} for i, t in enumerate(texts)]
            return web.json_response({"id": ident, "object": "text_completion", "created": created, "model": model,
                                      "choices": choices, "usage": usage})
        return web.json_response(_response_object(ident, model, created, texts[0], usage))

    async def stats(request: web.Request):
        with state.lock:
            served, counts = state.served, dict(state.counts)
        cpu = time.process_time() - state.cpu_start
        return web.json_response({"requests": counts, "served": served, "cpu_seconds": cpu,
                                  "cpu_per_request": cpu / served if served else None,
                                  "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})

    async def control(request: web.Request):
        body = await request.json()
        with state.lock:
            if "latency" in body:
                state.latency = float(body["latency"])
            if body.get("fail_next"):
                state.failures.extend([int(body.get("status", 500))] * int(body["fail_next"]))
            if body.get("reset"):
                state.counts.clear()
                state.bodies.clear()
                state.served = 0
                state.cpu_start = time.process_time()
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    for path in (_CHAT, _TEXT, _RESPONSES, _EMBEDDINGS):
        app.router.add_post(path, lambda request, kind=path: respond(request, kind))
        app.router.add_post(path.removeprefix("/v1"), lambda request, kind=path: respond(request, kind))
    app.router.add_get("/stats", stats)
    app.router.add_post("/control", control)
    return app


def _response_object(ident: str, model: str, created: int, text: str, usage: dict[str, int]) -> dict[str, Any]:
    return {"id": ident, "object": "response", "created_at": created, "status": "completed", "model": model,
            "output": [{"type": "message", "id": f"msg-{ident}", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
                      "total_tokens": usage["total_tokens"], "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}


def _pieces(text: str, size: int = 12) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


async def _stream(request, kind, ident, model, created, texts, usage, body):
    from aiohttp import web

    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await response.prepare(request)

    async def send(payload: dict[str, Any], event: str | None = None) -> None:
        head = f"event: {event}\n" if event else ""
        await response.write(f"{head}data: {json.dumps(payload)}\n\n".encode())

    if kind == _RESPONSES:
        full = _response_object(ident, model, created, texts[0], usage)
        await send({"type": "response.created", "response": {**full, "status": "in_progress", "output": []}},
                   "response.created")
        for piece in _pieces(texts[0]):
            await send({"type": "response.output_text.delta", "item_id": f"msg-{ident}", "output_index": 0,
                        "content_index": 0, "delta": piece}, "response.output_text.delta")
        await send({"type": "response.completed", "response": full}, "response.completed")
    else:
        obj = "chat.completion.chunk" if kind == _CHAT else "text_completion"
        for index, text in enumerate(texts):
            for piece in _pieces(text):
                delta = {"index": index, "finish_reason": None}
                if kind == _CHAT:
                    delta["delta"] = {"role": "assistant", "content": piece}
                else:
                    delta["text"] = piece
                await send({"id": ident, "object": obj, "created": created, "model": model, "choices": [delta]})
        for index in range(len(texts)):
            end = {"index": index, "finish_reason": "stop"}
            end["delta" if kind == _CHAT else "text"] = {} if kind == _CHAT else ""
            await send({"id": ident, "object": obj, "created": created, "model": model, "choices": [end]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({"id": ident, "object": obj, "created": created, "model": model, "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


class OpenAIServer:
    """The server on a free loopback port, in a background thread with its own event loop.

    ``url`` is the ``api_base`` to give ``dspy.LM`` (it ends in ``/v1``); ``counts`` holds
    how many requests each path received and ``bodies`` the recent request bodies.
    """

    def __init__(self, latency: float = 0.0, *, answers: dict[str, str] | None = None, port: int = 0,
                 host: str = "127.0.0.1"):
        self.host = host
        self.port = port
        self._state = _State(latency, answers)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def counts(self) -> Counter[str]:
        return self._state.counts

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return self._state.bodies

    @property
    def calls(self) -> int:
        """Completion requests received (chat, text and responses; embeddings not counted)."""
        c = self._state.counts
        return c[_CHAT] + c[_TEXT] + c[_RESPONSES]

    @property
    def latency(self) -> float:
        return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._state.latency = seconds

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        with self._state.lock:
            self._state.failures.extend([status] * n)

    def reset(self) -> None:
        with self._state.lock:
            self._state.counts.clear()
            self._state.bodies.clear()
            self._state.failures.clear()

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(target=self._run, name="openai-server", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        from aiohttp import web

        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(_app(self._state), access_log=None)
        try:
            loop.run_until_complete(runner.setup())
            sock = _listen(self.host, self.port)
            self.port = sock.getsockname()[1]
            loop.run_until_complete(web.SockSite(runner, sock).start())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def main(argv: list[str] | None = None) -> None:
    """``python -m dspy_turbo.engines.openai_server --latency 0.2``: prints the URL, serves until killed."""
    from aiohttp import web

    parser = argparse.ArgumentParser(prog="python -m dspy_turbo.engines.openai_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each completion takes")
    args = parser.parse_args(argv)
    state = _State(args.latency, None)
    sock = _listen(args.host, args.port)
    print(f"http://{args.host}:{sock.getsockname()[1]}/v1", flush=True)
    try:
        import uvloop  # optional: the server is then even further from being the bottleneck

        uvloop.install()
    except ImportError:
        pass
    web.run_app(_app(state), sock=sock, access_log=None, print=None, handle_signals=True)


if __name__ == "__main__":  # pragma: no cover - a command-line entry
    sys.exit(main())
