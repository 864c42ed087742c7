"""A local Ray cluster (loopback only, started once per module), a private redis-server,
and the OpenAI-compatible HTTP LM server on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="dspy-cache-ray-tests-"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(request):
    """``ray.init`` on loopback with 2 CPUs: a head node and its workers on this machine, no dashboard.
    The test module's own code travels by value: Ray pickles a class by reference to its
    module, and the workers cannot import a test module (a notebook's or a script's
    classes go by value the same way)."""
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(request.module)
    assert not ray.is_initialized()
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory):
    """A redis-server of this module's own on a free loopback port, killed by its pid."""
    if shutil.which("redis-server") is None:
        if os.environ.get("DSPY_TURBO_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is not on PATH (DSPY_TURBO_REQUIRE_REDIS=1)")
        pytest.skip("redis-server is not on PATH")
    port = _free_port()
    directory = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="module")
def lm_server():
    """The OpenAI-compatible server on loopback; its URL reaches the workers inside the LM."""
    from dspy_turbo.engines.openai_server import OpenAIServer

    with OpenAIServer(latency=0.05) as server:
        yield server
