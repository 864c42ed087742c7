"""An offline LM for tests, examples and the demo: a real DSPy custom engine.

    lm = dspy_turbo.engines.offline.offline_lm("openai/gpt-4o-mini", latency=0.5)
    dspy.configure(lm=lm)

It answers every DSPy signature deterministically (the same inputs always give the same
outputs), in the format the adapter asked for: ``[[ ## field ## ]]`` sections for
``ChatAdapter``, a JSON object for ``JSONAdapter``, plain text for ``lm("...")``. Values
follow the declared output types (``str``, ``int``, ``float``, ``bool``, ``list[...]``,
``Literal[...]``). It sleeps ``latency`` seconds per call (``asyncio.sleep`` on the async
engine) and reports token usage, so caching, single-flight and cost accounting behave as
with a real provider. DSPy's ``DummyLM`` is never cached, so it cannot test caching.

Because it is a ``dspy.LM`` with an engine, any real model name works in its place:
drop the ``engine`` and set the provider's key.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from typing import Any

import xxhash

_FIELDS = re.compile(r"^\s*\d+\.\s*`([^`]+)`\s*\(([^)]*(?:\([^)]*\))?[^)]*)\)", re.M)
_SECTION = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with|\Z)", re.S)


def _hash(text: str) -> int:
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogatepass"))


def _block(system: str, title: str) -> str:
    start = system.find(title)
    if start < 0:
        return ""
    rest = system[start + len(title):]
    end = rest.find("All interactions will be structured")
    nxt = rest.find("Your output fields are:") if title.startswith("Your input") else -1
    cut = min(x for x in (end, nxt, len(rest)) if x >= 0)
    return rest[:cut]


def output_fields(system: str) -> list[tuple[str, str]]:
    """(name, type) of each output field, as DSPy's adapters list them in the system prompt."""
    return _FIELDS.findall(_block(system, "Your output fields are:"))


def input_values(user_text: str) -> dict[str, str]:
    """The ``[[ ## field ## ]]`` sections of a rendered DSPy user message."""
    return {name: value.strip() for name, value in _SECTION.findall(user_text)}


def answer_for(field: str, type_: str, inputs: dict[str, str]) -> Any:
    """The deterministic value of one output field for these inputs."""
    digest = _hash(json.dumps(inputs, sort_keys=True) + "|" + field)
    t = type_.strip().lower()
    subject = next(iter(inputs.values()), "") if inputs else ""
    subject = " ".join(subject.split())[:80]
    if t.startswith("literal["):
        choices = re.findall(r"'([^']*)'|\"([^\"]*)\"", type_)
        options = [a or b for a, b in choices] or ["unknown"]
        return options[digest % len(options)]
    if t == "int":
        return digest % 1000
    if t == "float":
        return round((digest % 10000) / 100, 2)
    if t == "bool":
        return bool(digest % 2)
    if t.startswith("list["):
        return [f"{field}-{(digest >> shift) % 997}" for shift in (0, 10, 20)]
    if t.startswith("dict["):
        return {"value": f"{field}-{digest % 997}"}
    if field == "reasoning":
        return f"Let me think step by step about {subject!r}. The key facts point to one answer."
    return f"Offline {field} to {subject!r} (#{digest % 0xFFFFFF:06x})"


def render(system: str, user_text: str) -> str:
    """The completion text a real model would give, in the adapter's format."""
    fields = output_fields(system)
    if not fields:
        digest = _hash(system + "|" + user_text)
        return f"Offline reply (#{digest % 0xFFFFFF:06x}) to: {' '.join(user_text.split())[:120]}"
    inputs = input_values(user_text)
    values = {name: answer_for(name, type_, inputs) for name, type_ in fields}
    return render_fields(values, system, user_text)


class OfflineEngine:
    """Sync DSPy engine: ``complete(Request) -> Response``.

    ``latency``: seconds per call; ``jitter``: +/- fraction of it, deterministic per request.
    ``answers``: ``{substring: text_or_fields}`` overrides for requests whose last message
    contains the substring. ``finish_reason``: e.g. ``"length"`` to simulate truncation.
    ``fail_next``: how many coming calls raise ``RuntimeError`` (fault injection).
    """

    def __init__(self, latency: float = 0.0, jitter: float = 0.0, answers: dict[str, Any] | None = None,
                 finish_reason: str = "stop"):
        self.latency = latency
        self.jitter = jitter
        self.answers = dict(answers or {})
        self.finish_reason = finish_reason
        self.fail_next = 0
        self.calls = 0
        self._lock = threading.Lock()

    # -- what both engines share ------------------------------------------------------------

    def _prepare(self, request) -> tuple[Any, float]:
        from dspy.clients.engines.base import validate_request

        validate_request(request)
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system or ())
        user = request.messages[-1].text if request.messages else ""
        with self._lock:
            self.calls += 1
            fail = self.fail_next > 0
            if fail:
                self.fail_next -= 1
        text = None
        for needle, answer in self.answers.items():
            if needle in (user or ""):
                text = answer if isinstance(answer, str) else render_fields(answer, system, user or "")
                break
        if text is None:
            text = render(system or "", user or "")
        digest = _hash((system or "") + (user or ""))
        delay = max(0.0, self.latency * (1 + self.jitter * ((digest % 2001) / 1000 - 1)))
        if fail:  # after the latency, like a provider that times out or errors mid-call
            return RuntimeError("offline LM: injected failure"), delay
        return self._response(request, system or "", request.messages, text), delay

    def _response(self, request, system, messages, text):
        from dspy.lm15 import Message, Response, TextPart, Usage

        prompt_chars = len(system) + sum(len(m.text or "") for m in messages)
        tokens_in, tokens_out = max(1, prompt_chars // 4), max(1, len(text) // 4)
        return Response(id=f"offline-{xxhash.xxh3_64_hexdigest(text.encode())[:12]}", model=request.model,
                        message=Message.assistant([TextPart(text)]), finish_reason=self.finish_reason,
                        usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out, total_tokens=tokens_in + tokens_out))

    # -- the engine contract ------------------------------------------------------------------

    def complete(self, request):
        response, delay = self._prepare(request)
        if delay:
            time.sleep(delay)
        if isinstance(response, Exception):
            raise response
        return response

    def stream(self, request):
        return _streamed(self.complete(request))

    def close(self) -> None:
        pass


def _streamed(response):
    """The response as stream events, its text in word-sized deltas as a provider sends it
    (DSPy's stream listeners treat a field that arrives whole in one chunk as a cache hit)."""
    import re

    from dspy.lm15 import StreamDeltaEvent, TextDelta, response_to_events

    for event in response_to_events(response):
        delta = getattr(event, "delta", None)
        if isinstance(delta, TextDelta) and not delta.logprobs and delta.text:
            for piece in re.findall(r"\s*\S+\s*$|\s*\S+", delta.text) or [delta.text]:
                yield StreamDeltaEvent(delta=TextDelta(text=piece, part_index=delta.part_index))
        else:
            yield event


class AsyncOfflineEngine:
    """The async counterpart; shares the sync engine's answers and call counter."""

    def __init__(self, sync: OfflineEngine):
        self.sync = sync

    async def complete(self, request):
        response, delay = self.sync._prepare(request)
        if delay:
            await asyncio.sleep(delay)
        if isinstance(response, Exception):
            raise response
        return response

    async def stream(self, request):
        for event in _streamed(await self.complete(request)):
            yield event

    async def aclose(self) -> None:
        pass


def render_fields(fields: dict[str, Any], system: str, user: str) -> str:
    if "Respond with a JSON object" in user or "Outputs will be a JSON object" in system:
        return json.dumps(fields)
    parts = [f"[[ ## {k} ## ]]\n{v if isinstance(v, str) else json.dumps(v)}" for k, v in fields.items()]
    return "\n\n".join([*parts, "[[ ## completed ## ]]"])


def offline_lm(model: str = "openai/gpt-4o-mini", *, latency: float = 0.0, jitter: float = 0.0,
               answers: dict[str, Any] | None = None, finish_reason: str = "stop", **lm_kwargs):
    """A ``dspy.LM`` backed by the offline engine; ``lm.engine`` is the ``OfflineEngine``."""
    import dspy

    engine = OfflineEngine(latency, jitter, answers, finish_reason)
    return dspy.LM(model, engine=engine, async_engine=AsyncOfflineEngine(engine), **lm_kwargs)
