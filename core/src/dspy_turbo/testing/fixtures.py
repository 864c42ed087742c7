"""pytest fixtures for testing dspy-turbo and its plugins against real components.

Load them from the conftest.py at the root of a test run::

    pytest_plugins = ["dspy_turbo.testing.fixtures"]

They give an offline LM (``lm``), Turbos that are always closed (``make_turbo``, ``turbo``),
the shared Redis (``redis_url``, skipped without it unless ``DSPY_TURBO_REQUIRE_REDIS=1``),
private ``redis-server`` processes stopped by their pid (``redis_server``, ``redis_cluster``),
an OpenAI-compatible HTTP LM on loopback (``openai_server``, ``http_lm``), DSPy programs in
their own processes (``workers``), external tools (``promtool``, ``tmux``), a ``fake_clock``,
and the ``requires_plugin`` marker. Loading this module points dspy-turbo's cache directory at a
temporary one; set ``DSPY_CACHEDIR`` to a temporary directory in the conftest before this loads
(DSPy reads it when it is imported), so a test run never touches the user's own caches.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# The file tier's default directory (the embedded default config uses it): never the user's own.
# (DSPy reads DSPY_CACHEDIR when it is imported: set that in the conftest, before this loads.)
os.environ["DSPY_TURBO_CACHE_DIR"] = tempfile.mkdtemp(prefix="dspy-turbo-tests-")

import dspy  # noqa: E402
import pytest  # noqa: E402

import dspy_turbo  # noqa: E402
from dspy_turbo.engines.offline import offline_lm  # noqa: E402


@pytest.fixture(autouse=True)
def _own_cache_dir(tmp_path_factory, monkeypatch):
    """Each test its own default cache directory: a config that leaves cache.tiers out keeps the
    embedded default's file tier, which must not serve one test what another stored."""
    monkeypatch.setenv("DSPY_TURBO_CACHE_DIR", str(tmp_path_factory.mktemp("turbo-cache-dir")))


@pytest.fixture
def lm():
    """An offline LM with no latency; ``lm.engine.calls`` counts real LM calls."""
    model = offline_lm("openai/gpt-4o-mini")
    with dspy.context(lm=model, adapter=None):
        yield model


@pytest.fixture
def make_turbo():
    """Build (and always close) Turbos from config dicts."""
    made = []

    def make(config=None, **kwargs):
        turbo = dspy_turbo.load(config if config is not None else {"cache": {"tiers": [{"type": "memory"}]}}, **kwargs)
        made.append(turbo)
        return turbo

    yield make
    for turbo in made:
        turbo.close()


@pytest.fixture
def turbo(make_turbo, lm):
    """A memory-only Turbo installed as dspy.cache for the test."""
    return make_turbo().install()


@pytest.fixture
def run_threads():
    """Run ``target`` in ``n`` threads at once and wait for all of them."""
    import threading

    def run(target, n):
        threads = [threading.Thread(target=target) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return run


# -- Redis ------------------------------------------------------------------------------------
# The shared server (REDIS_URL, default 127.0.0.1:6379) serves most Redis tests; each test uses
# its own namespace and removes only its own keys. Tests that stop or restart Redis start a
# private `redis-server` on a free port and stop it by its process id. Without Redis the
# tests skip, unless DSPY_TURBO_REQUIRE_REDIS=1 (set by .ci/run) makes that a failure.

import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _no_redis(reason: str):
    if os.environ.get("DSPY_TURBO_REQUIRE_REDIS") == "1":
        pytest.fail(f"{reason} (DSPY_TURBO_REQUIRE_REDIS=1 makes this a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url():
    """The shared Redis server's URL; skips (or fails, see above) when it does not answer."""
    try:
        import redis
    except ImportError:
        _no_redis("redis-py is not installed")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        _no_redis(f"no Redis server answers at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture
def namespace():
    """A namespace of this test's own, so tests sharing one Redis never see each other's keys."""
    return f"t{uuid.uuid4().hex[:12]}"


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A free port whose +10000 is free too (a Cluster node's bus port), below 55536."""
    import random

    for _ in range(200):
        port = random.randint(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair found")


class RedisServer:
    """A private `redis-server` on a free port, stopped by its pid (never the shared one)."""

    def __init__(self, directory: str, port: int | None = None, *args: str):
        self.port = port or free_port()
        self.directory = directory
        self.args = args
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.directory, "--enable-debug-command", "local", *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):  # up (with or without a password)
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: a crash, as in production, not a graceful shutdown
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def unused_port():
    """A TCP port nothing listens on (for "server down" tests)."""
    return free_port()


@pytest.fixture
def redis_server(tmp_path):
    """Factory: ``redis_server()`` starts a private server; all are stopped after the test."""
    if shutil.which("redis-server") is None:
        _no_redis("redis-server is not on PATH")
    servers = []

    def start(port: int | None = None, *args: str) -> RedisServer:
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = RedisServer(str(directory), port, *args).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    """Three masters, no replicas, on free ports; stopped by pid afterwards."""
    if shutil.which("redis-cli") is None or shutil.which("redis-server") is None:
        _no_redis("redis-server and redis-cli are needed for the cluster test")
    servers = []
    try:
        for i in range(3):
            directory = tmp_path_factory.mktemp(f"cluster-{i}")
            servers.append(RedisServer(str(directory), None, "--cluster-enabled", "yes",
                                       "--cluster-config-file", str(directory / "nodes.conf"),
                                       "--cluster-node-timeout", "2000").start())
        nodes = [f"127.0.0.1:{s.port}" for s in servers]
        subprocess.run(["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, text=True, timeout=60)
        import redis

        # Every node must see the whole slot map before tests start: right after `create`, a
        # node may still answer CLUSTERDOWN for slots it has not heard about.
        clients = [redis.Redis(port=s.port) for s in servers]
        deadline = time.monotonic() + 30
        while not all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO")
                      and len(c.execute_command("CLUSTER", "SLOTS")) == 3 for c in clients):
            assert time.monotonic() < deadline, "the cluster did not reach state ok on every node"
            time.sleep(0.1)
        time.sleep(0.5)  # and let the gossip about the epochs settle
        for c in clients:
            c.close()
        yield nodes
    finally:
        for server in servers:
            server.stop()
# -- external tools (promtool, tmux): skipped when missing, unless CI requires them -----------


@pytest.fixture
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture
def tmux() -> str:
    return require_tool("tmux")


def require_tool(name: str) -> str:
    """The tool's path; a clear skip when it is missing, a failure when DSPY_TURBO_REQUIRE_TOOLS=1 (CI)."""
    import shutil

    path = shutil.which(name)
    if path is None:
        hint = {"promtool": "apt-get install prometheus", "tmux": "apt-get install tmux"}.get(name, f"install {name}")
        message = f"{name} is not installed ({hint}); .ci/run installs it"
        if os.environ.get("DSPY_TURBO_REQUIRE_TOOLS") == "1":
            pytest.fail(message + " and DSPY_TURBO_REQUIRE_TOOLS=1 requires it")
        pytest.skip(message)
    return path


class FakeClock:
    """Monotonic seconds that move only when something sleeps on them."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock for rate limits and backoff: ``clock()`` reads it, ``clock.sleep(s)`` advances it."""
    return FakeClock()


# -- an OpenAI-compatible HTTP LM on loopback ----------------------------------------------------


@pytest.fixture
def openai_server():
    """A real OpenAI-compatible server on a loopback port (``server.url`` is the ``api_base``);
    ``server.calls`` counts the completion requests it received."""
    from dspy_turbo.engines.openai_server import OpenAIServer

    with OpenAIServer() as server:
        yield server


@pytest.fixture
def http_lm(openai_server):
    """``dspy.LM("openai/gpt-4o-mini")`` against the loopback server, with DSPy's default engine selection."""
    model = dspy.LM("openai/gpt-4o-mini", api_base=openai_server.url, api_key="sk-test-not-a-secret")
    with dspy.context(lm=model, adapter=None):
        yield model


# -- DSPy programs in their own processes (file and redis tiers) ----------------------------------

import json  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from types import SimpleNamespace  # noqa: E402

# A worker script: loads a Turbo from a JSON config, asks questions with a real DSPy
# program on the offline LM, prints one JSON line (LM calls made by the engine, answers,
# stats). Optional: wait for a start file (to start several workers at once), threads.
WORKER = textwrap.dedent('''
    import json, os, sys, threading, time
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import dspy
    import dspy_turbo
    from dspy_turbo.engines.offline import offline_lm

    spec = json.loads(sys.argv[1])
    turbo = dspy_turbo.load(spec["config"]).install()
    lm = offline_lm("openai/gpt-4o-mini", latency=spec.get("latency", 0.0), jitter=0)
    program = dspy.Predict("question -> answer")
    start = spec.get("start_file")
    if start:
        while not os.path.exists(start):
            time.sleep(0.005)
    questions = spec["questions"]
    answers = [None] * len(questions)
    dspy.configure(lm=lm)  # global, so the worker threads see it too

    def ask(i):
        answers[i] = program(question=questions[i]).answer
    threads = spec.get("threads", 1)
    if threads == 1:
        for i in range(len(questions)):
            ask(i)
    else:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(ask, range(len(questions))))
    print(json.dumps({"lm_calls": lm.engine.calls, "answers": answers, "stats": turbo.stats()}))
    turbo.close()
''')


def start_worker(config: dict, questions: list[str], **spec) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps({"config": config, "questions": questions, **spec})],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def result(proc: subprocess.Popen, timeout: float = 120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker failed:\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def run_worker(config: dict, questions: list[str], **spec) -> dict:
    return result(start_worker(config, questions, **spec))


@pytest.fixture
def workers():
    """``workers.start(config, questions, threads=, latency=, start_file=)``, ``workers.result(proc)``
    and ``workers.run(...)``: DSPy programs in their own Python processes."""
    started: list[subprocess.Popen] = []

    def start(config, questions, **spec):
        proc = start_worker(config, questions, **spec)
        started.append(proc)
        return proc

    yield SimpleNamespace(start=start, result=result, run=lambda *a, **k: result(start(*a, **k)))
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- tests that need a plugin distribution --------------------------------------------------------


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "requires_plugin(*names): the test needs these plugin distributions (e.g. 'file' for "
        "dspy-turbo-file); skipped when one is not installed, a failure when DSPY_TURBO_REQUIRE_PLUGINS=1")


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"dspy_turbo_{name}") is not None


def pytest_runtest_setup(item):
    for mark in item.iter_markers("requires_plugin"):
        missing = [name for name in mark.args if not _installed(name)]
        if missing:
            message = "needs " + ", ".join(f"dspy-turbo-{name}" for name in missing)
            if os.environ.get("DSPY_TURBO_REQUIRE_PLUGINS") == "1":
                pytest.fail(message + " (DSPY_TURBO_REQUIRE_PLUGINS=1: every plugin must be installed)")
            pytest.skip(message)
