"""Where the client's CPU goes in one LM call over HTTP: serial ``dspy.Predict`` calls, by part.

    python bench/bench_client_cpu.py                          # the table: known and unknown model name, plain and turbo
    python bench/bench_client_cpu.py --n 2000 --rounds 5
    python bench/bench_client_cpu.py --one turbo openai/my-selfhosted-7b --n 1000 --no-probes   # one side (callgrind)

The LM is ``dspy.LM(model, api_base=..., api_key=...)`` with DSPy's default engine selection
(native lm15 for ``openai/...``) against ``dspy_turbo.engines.openai_server`` in its own process on
loopback, latency 0; every call asks a new question, so every call is a miss and makes one
HTTP request. Sides: plain DSPy (its memory cache) and a Turbo installed (memory tier), for
a model name DSPy's price table knows (``openai/gpt-4o-mini``) and one it does not
(``openai/my-selfhosted-7b``, as any self-hosted model). ``--engine turbo`` runs the same
calls through ``dspy_turbo.engines.openai_compatible`` instead.

Each side runs in its own process (equally cold). In it, blocks of calls alternate between
no instrumentation (the total, ``time.process_time``) and probes (``time.thread_time``): each
probe wraps one function of the call path and adds its thread CPU, minus that of the probes
it contains, to its part, so the parts add up to the instrumented total. The probes cost a
few µs per call (the difference between the two totals). The total is process CPU (every
thread: a Turbo's event sinks too); the parts are thread CPU of the calling thread. Both
include the kernel's work (the socket calls). Medians over rounds.

On a shared machine CPU time moves by 10-20 % between runs; instructions do not. To compare
two versions of the code, run ``--one SIDE MODEL --no-probes`` under
``valgrind --tool=callgrind`` with ``--n 1000`` and ``--n 0`` and divide the difference of
the "Collected" totals by 1000 (imports and warm-up cancel out).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before dspy: no network fetch of the price map
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="bench-client-cpu-dspy-"))

KNOWN, UNKNOWN = "openai/gpt-4o-mini", "openai/my-selfhosted-7b"
WARM = 200

# The parts, in call order: (label, what it covers).
PARTS = [
    ("predict", "dspy.Predict, module call, callbacks, settings (the rest)"),
    ("adapter", "ChatAdapter.__call__ and capability planning"),
    ("format", "adapter: preprocess + format messages"),
    ("parse", "adapter: postprocess + parse the completion"),
    ("lm", "LM.__call__: prepare, finalize (history, usage)"),
    ("ours", "dspy-turbo's execute wrapper (key, single-flight, report)"),
    ("execute", "DSPy's execute (attempt loop, error boundary)"),
    ("cache", "dspy.cache read + write (DSPy's Cache or the Turbo)"),
    ("select", "engine selection, request conversion, plan"),
    ("engine", "engine call: build the wire request, parse the response"),
    ("http", "HTTP client: connection, send, receive (incl. kernel)"),
    ("pricing", "cost estimation (excluding metadata lookups)"),
    ("metadata", "model metadata lookups (model_info)"),
]


class Probes:
    """Exclusive thread CPU per part: a probe's time minus the probes it contains."""

    def __init__(self):
        self.parts = {name: 0.0 for name, _ in PARTS}
        self.stack: list[float] = []  # time spent in children of each open probe
        self.on = False

    def wrap(self, part: str, fn):
        clock = time.thread_time

        @functools.wraps(fn)
        def probe(*args, **kwargs):
            if not self.on:
                return fn(*args, **kwargs)
            stack = self.stack
            stack.append(0.0)
            started = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = clock() - started
                children = stack.pop()
                self.parts[part] += spent - children
                if stack:
                    stack[-1] += spent
        return probe

    def patch(self, owner, name: str, part: str) -> None:
        setattr(owner, name, self.wrap(part, getattr(owner, name)))


def _server(latency: float = 0.0):
    proc = subprocess.Popen([sys.executable, "-m", "dspy_turbo.engines.openai_server", "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        raise RuntimeError(f"the server did not start: {url!r}")
    return proc, url


def _server_cpu(url: str) -> float | None:
    with urllib.request.urlopen(f"{url.removesuffix('/v1')}/stats") as response:
        return json.load(response).get("cpu_per_request")


def _lm(model: str, url: str, engine: str):
    import dspy

    if engine == "turbo":
        from dspy_turbo.engines.openai_compatible import openai_compatible_lm

        return openai_compatible_lm(model, api_base=url, api_key="bench-not-a-secret", num_retries=0)
    return dspy.LM(model, api_base=url, api_key="bench-not-a-secret", num_retries=0)


def one(side: str, model: str, n: int, rounds: int, url: str, engine: str, probes_on: bool) -> dict:
    """One side in this process: {'total': µs per call, 'probed': µs, 'parts': {part: µs}}."""
    import dspy
    import dspy.adapters.base as adapter_base
    import dspy.clients.capabilities as capabilities
    import dspy.clients.costs as costs
    import dspy.clients.execution as execution
    from dspy._vendor.lm15.providers.base import BaseProviderLM
    from dspy.adapters.chat_adapter import ChatAdapter
    from dspy.clients.cache import Cache

    import dspy_turbo

    probes = Probes()
    if probes_on:
        # Before install, so that the Turbo's wrapper calls the probed original.
        probes.patch(execution, "execute", "execute")
        for name, part in (("_engine", "select"), ("_attempt", "engine"), ("_price_result", "pricing")):
            probes.patch(execution, name, part)
        probes.patch(BaseProviderLM, "_send", "http")
        probes.patch(adapter_base.Adapter, "__call__", "adapter")
        probes.patch(adapter_base.Adapter, "_call_preprocess", "format")
        # Adapter subclasses get format/parse wrapped with DSPy's callbacks (in __init_subclass__).
        probes.patch(ChatAdapter, "format", "format")
        probes.patch(adapter_base.Adapter, "_call_postprocess", "parse")
        probes.patch(dspy.LM, "__call__", "lm")

    lm = _lm(model, url, engine)
    dspy.configure(lm=lm, adapter=None)
    program = dspy.Predict("question -> answer")
    turbo = None
    if side == "turbo":
        turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "memory", "max_bytes": "256MB"}]}}).install()
    else:
        dspy.cache = Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None)
    if probes_on:
        # After install: the Turbo's wrapper (ours) and its guarded cache read are what DSPy calls now.
        if side == "turbo":
            probes.patch(execution, "execute", "ours")
        probes.patch(execution, "_cached", "cache")
        probes.patch(execution, "_store", "cache")
        for module in (costs, capabilities):  # whatever looks metadata up now (DSPy's, or a memo over it)
            probes.patch(module, "model_info", "metadata")
    tag = uuid.uuid4().hex[:8]
    counter = iter(range(10**9))

    def block(count: int) -> float:
        questions = [f"{tag} question number {next(counter)}: what is 2 plus 3?" for _ in range(count)]
        gc.collect()
        clock = time.thread_time if probes.on else time.process_time  # the probes are per thread
        started = clock()
        for question in questions:
            program(question=question)
        return clock() - started

    totals, probed, parts = [], [], {name: [] for name, _ in PARTS}
    try:
        with dspy.context(disable_history=True):
            block(WARM)
            for _ in range(rounds):
                totals.append(block(n) / n * 1e6)
                if probes_on:
                    probes.parts = dict.fromkeys(probes.parts, 0.0)
                    probes.on = True
                    spent = block(n)
                    probes.on = False
                    measured = sum(probes.parts.values())
                    probes.parts["predict"] += spent - measured  # what no probe covers
                    probed.append(spent / n * 1e6)
                    for name in parts:
                        parts[name].append(probes.parts[name] / n * 1e6)
    finally:
        if turbo is not None:
            turbo.close()
    result = {"total": statistics.median(totals) if totals else 0.0}
    if probes_on and probed:
        result["probed"] = statistics.median(probed)
        result["parts"] = {name: statistics.median(values) for name, values in parts.items()}
    return result


def _collected(command: list[str]) -> int:
    """Instructions valgrind's callgrind counted for one run of ``command``."""
    with tempfile.TemporaryDirectory(prefix="bench-client-cpu-cg-") as folder:
        run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out", *command],
                             capture_output=True, text=True, check=True)
    for line in run.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"no callgrind total in: {run.stderr[-500:]}")


def _callgrind(combos: list, n: int, url: str, show_engine: bool) -> int:
    names = {KNOWN: "known", UNKNOWN: "unknown"}
    print(f"\nInstructions per LM call over HTTP (callgrind, {n} serial calls minus 0), millions")
    for engine, side, model in combos:
        base = [sys.executable, __file__, "--one", side, model, "--url", url, "--engine", engine, "--no-probes",
                "--rounds", "1"]
        calls, setup = _collected([*base, "--n", str(n)]), _collected([*base, "--n", "0"])
        label = f"{engine + ' ' if show_engine else ''}{side} {names[model]}"
        print(f"{label:<22} {(calls - setup) / n / 1e6:7.2f} M", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", nargs=2, metavar=("SIDE", "MODEL"), help="run one side (dspy|turbo) here and print JSON")
    parser.add_argument("--n", type=int, default=1000, help="calls per block (0 with --one: imports and warm-up only)")
    parser.add_argument("--rounds", type=int, default=3, help="blocks of each kind per side")
    parser.add_argument("--engine", choices=["auto", "turbo"], default="auto",
                        help="auto: DSPy's default engine; turbo: dspy_turbo.engines.openai_compatible")
    parser.add_argument("--engines", default=None, help="with the table: compare engines, e.g. auto,turbo")
    parser.add_argument("--no-probes", action="store_true", help="totals only")
    parser.add_argument("--url", default=None, help="an OpenAI-compatible server (default: start one)")
    parser.add_argument("--callgrind", type=int, metavar="N", default=None,
                        help="instructions per call instead: each side under valgrind with N calls and with 0")
    args = parser.parse_args()

    proc = None
    url = args.url
    if url is None:
        proc, url = _server()
    try:
        if args.one:
            side, model = args.one
            if args.n == 0:  # the set-up alone, for callgrind's baseline
                one(side, model, 1, 0, url, args.engine, False)
                return 0
            print(json.dumps(one(side, model, args.n, args.rounds, url, args.engine, not args.no_probes)))
            return 0
        engines = args.engines.split(",") if args.engines else [args.engine]
        combos = [(engine, side, model) for engine in engines for model in (KNOWN, UNKNOWN) for side in ("dspy", "turbo")]
        load = os.getloadavg()[0]
        if args.callgrind is not None:
            return _callgrind(combos, args.callgrind, url, len(engines) > 1)
        results = {}
        for engine, side, model in combos:
            command = [sys.executable, __file__, "--one", side, model, "--n", str(args.n), "--rounds", str(args.rounds),
                       "--url", url, "--engine", engine] + (["--no-probes"] if args.no_probes else [])
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[engine, side, model] = json.loads(out.strip().splitlines()[-1])
        server = _server_cpu(url)
        columns = [(e, s, m) for e, s, m in combos]
        names = {KNOWN: "known", UNKNOWN: "unknown"}
        heads = [f"{'' if len(engines) == 1 else e + ' '}{s} {names[m]}" for e, s, m in columns]
        width = max(14, *(len(h) for h in heads))
        print(f"\nClient CPU per LM call over HTTP (serial dspy.Predict, every call a miss), µs; "
              f"n={args.n} x {args.rounds} rounds, median; load average {load:.2f} -> {os.getloadavg()[0]:.2f}; "
              f"known = {KNOWN!r}, unknown = {UNKNOWN!r}")
        print(f"{'part':<10}" + "".join(f"{h:>{width + 2}}" for h in heads) + "   what")
        if not args.no_probes:
            for name, what in PARTS:
                cells = "".join(f"{results[c]['parts'][name]:>{width + 2}.0f}" for c in columns)
                print(f"{name:<10}{cells}   {what}")
            print(f"{'(probed)':<10}" + "".join(f"{results[c]['probed']:>{width + 2}.0f}" for c in columns)
                  + "   sum of the parts (with the probes' own cost)")
        print(f"{'total':<10}" + "".join(f"{results[c]['total']:>{width + 2}.0f}" for c in columns)
              + "   no probes: process CPU per call")
        if server is not None:
            print(f"server: {server * 1e6:.0f} µs of CPU per request (its own process, not in the figures)")
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
