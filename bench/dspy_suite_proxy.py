"""A stand-in for ``litellm --host H --port P --config FILE`` (LiteLLM's proxy server) for
DSPy's own tests, when the proxy's extra packages are not installed.

DSPy's ``litellm_test_server`` fixture starts the proxy with a config naming a custom
handler (``litellm_server.dspy_test_model``, in the config's directory) that logs each
request and answers through ``litellm.completion(mock_response=...)``. This serves the
same handler over the OpenAI HTTP API the proxy speaks (chat and text completions, plain
and streamed; any path prefix, so Azure deployment paths too), turning the handler's
errors into their HTTP status. ``bench/dspy_suite.sh`` puts it first on ``PATH`` as
``litellm`` for both runs, plain and with a Turbo, so both see the same server.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import yaml
from aiohttp import web


def _handler(config_path: Path):
    config = yaml.safe_load(config_path.read_text())
    entry = config["litellm_settings"]["custom_provider_map"][0]["custom_handler"]
    module_name, attribute = entry.rsplit(".", 1)
    spec = importlib.util.spec_from_file_location(module_name, config_path.parent / f"{module_name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attribute)


def _plain(response) -> dict:
    return json.loads(response.model_dump_json()) if hasattr(response, "model_dump_json") else dict(response)


def main() -> None:
    parser = argparse.ArgumentParser(prog="litellm")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    handler = _handler(Path(args.config))

    async def complete(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        text_api = request.path.rstrip("/").endswith("/completions") and "chat" not in request.path
        messages = body.get("messages") or [{"role": "user", "content": body.get("prompt") or ""}]
        kwargs = {"model": body.get("model"), "messages": messages}
        try:
            if body.get("stream"):
                return await _stream(request, handler, kwargs)
            response = _plain(await handler.acompletion(**kwargs))
        except Exception as exc:
            status = getattr(exc, "status_code", None) or 500
            return web.json_response({"error": {"message": str(exc), "type": type(exc).__name__}}, status=status)
        if text_api:
            response["object"] = "text_completion"
            response["choices"] = [{"index": c.get("index", 0), "text": (c.get("message") or {}).get("content"),
                                    "finish_reason": c.get("finish_reason"), "logprobs": None}
                                   for c in response.get("choices", [])]
        return web.json_response(response)

    async def _stream(request, handler, kwargs):
        out = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await out.prepare(request)
        async for chunk in handler.astreaming(**kwargs):
            payload = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": int(time.time()),
                       "model": kwargs["model"], "choices": [{"index": chunk.get("index", 0), "finish_reason": None,
                                                              "delta": {"role": "assistant", "content": chunk["text"]}}]}
            await out.write(f"data: {json.dumps(payload)}\n\n".encode())
            if chunk.get("finish_reason"):
                payload["choices"] = [{"index": 0, "finish_reason": chunk["finish_reason"], "delta": {}}]
                await out.write(f"data: {json.dumps(payload)}\n\n".encode())
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", complete)
    app.router.add_route("GET", "/{tail:.*}", lambda request: web.json_response({"status": "ok"}))
    try:
        web.run_app(app, host=args.host, port=args.port, print=lambda *a: None, handle_signals=True)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
