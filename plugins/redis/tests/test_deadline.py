"""The redis tier's ``timeout`` is a deadline for the whole call, over a slow link too, and
only the tier's own calls move its circuit breaker (a private server behind a slow proxy)."""

from __future__ import annotations

import time

import dspy
import pytest

import dspy_turbo
from dspy_turbo.cache.entry import Entry
from dspy_turbo.cache.keys import KEY_VERSION
from dspy_turbo_redis import RedisBackend, RedisOptions

ANSWER = {"text": "x" * 2000}  # ~2 KB: about 2.6 s through the slow link, 16 bytes per 20 ms


def redis_only(url, namespace, **options):
    return {"namespace": namespace, "cache": {"tiers": [{"type": "redis", "url": url, **options}]}}


def test_a_lookup_and_a_store_over_a_slow_link_end_at_the_timeout(redis_server, slow_link, namespace):
    server = redis_server()
    link = slow_link(server.port)
    turbo = dspy_turbo.load(redis_only(link.url, namespace, timeout="250ms"))
    try:
        key = turbo.key({"q": "stored while the link was fast"})
        assert turbo.store(key, ANSWER) and turbo.lookup(key) == ANSWER
        link.slow = True  # each read now returns within 20 ms; the whole reply takes seconds
        started = time.monotonic()
        assert turbo.lookup(key) is None  # cut off: a miss, never an exception
        lookup = time.monotonic() - started
        started = time.monotonic()
        assert not turbo.store(turbo.key({"q": "another"}), ANSWER)
        store = time.monotonic() - started
        assert lookup < 0.6 and store < 0.6, (lookup, store)  # 250 ms each, plus scheduling
        assert turbo.stats()["errors"]["redis"] == 2
    finally:
        turbo.close()


def test_a_dspy_program_over_a_slow_link_waits_the_timeout_not_the_link(redis_server, slow_link, namespace, lm):
    server = redis_server()
    link = slow_link(server.port)
    config = redis_only(link.url, namespace, timeout="250ms")
    program = dspy.Predict("question -> answer")
    lm.engine.answers["slow link"] = {"answer": "y" * 2000}
    with dspy_turbo.load(config):
        first = program(question="a slow link question").answer
    link.slow = True
    with dspy_turbo.load(config) as turbo:
        started = time.monotonic()
        assert program(question="a slow link question").answer == first
        waited = time.monotonic() - started
        # the lookup, the lease and its release (single-flight across processes), the store: each cut off
        assert turbo.stats()["errors"]["redis"] == 4
    assert waited < 2.0, waited  # four deadlines of 250 ms; the link alone would take ~10 s
    assert lm.engine.calls == 2


def test_the_breaker_opens_although_invalidation_syncs_succeed(redis_server, slow_link, namespace):
    """A memory tier in front makes every read first sync invalidations through the same
    Redis (a short, quick reply even over the slow link): that success is the coordinator's,
    and must not close the breaker that the tier's slow reads are opening."""
    server = redis_server()
    link = slow_link(server.port)
    config = {"namespace": namespace, "cache": {"sync_interval": 0, "breaker": {"failures": 3, "cooldown": "1h"},
                                                "tiers": [{"type": "memory"},
                                                          {"type": "redis", "url": link.url, "timeout": "250ms"}]}}
    writer = dspy_turbo.load(config)
    keys = [writer.key({"q": i}) for i in range(6)]
    for key in keys:
        writer.store(key, ANSWER)
    writer.close()
    events = []
    turbo = dspy_turbo.load(config, plugins=[_Recorder(events)])  # a new process's view: nothing in memory
    try:
        assert turbo.invalidations is not None, "the memory tier follows the invalidation log"
        link.slow = True
        started = time.monotonic()
        assert [turbo.lookup(key) for key in keys] == [None] * 6
        elapsed = time.monotonic() - started
        assert turbo.stats()["tiers"]["redis"]["breaker"] == "open"
        assert turbo.flush_events(5)
        reads = [e for e in events if e.kind == "error" and e.reason == "get"]
        assert len(reads) == 3  # three reads cut off, then the tier is skipped
        assert elapsed < 3, elapsed  # each of the six would take ~2.6 s through the link
    finally:
        turbo.close()


class _Recorder:
    def __init__(self, events):
        self.events = events

    @dspy_turbo.hookimpl
    def dspy_turbo_metric_event(self, event):
        self.events.append(event)


def test_failing_lease_calls_do_not_open_the_tiers_read_breaker(redis_server, namespace, lm):
    """The other way round: the server refuses every lease (an ACL lets this client write
    entries only), and those failures count toward the coordinator's own breaker."""
    import redis

    server = redis_server()
    admin = redis.Redis(port=server.port)
    # entries (<namespace>:v<N>:...) read and written; everything else, leases included, read only
    admin.execute_command("ACL", "SETUSER", "default", "resetkeys", f"%RW~{namespace}:v{KEY_VERSION}:*", "%R~*")
    admin.close()
    config = {"namespace": namespace, "cache": {"breaker": {"failures": 1, "cooldown": "1h"},
                                                "tiers": [{"type": "redis", "url": server.url}]}}
    program = dspy.Predict("question -> answer")
    with dspy_turbo.load(config) as turbo:
        answers = [program(question=f"q{i}").answer for i in range(4)]  # each miss asks for a lease first
        assert turbo.stats()["tiers"]["redis"]["breaker"] == "closed"
        assert program(question="q0").answer == answers[0]
        assert turbo.stats()["hits"] == {"redis": 1} and lm.engine.calls == 4  # reads still go to Redis
        assert turbo.cache.tiers[0].coordination_breaker.state == "open"
        assert turbo.stats()["stores"]["redis"] == 4


def test_a_cluster_call_over_slow_links_ends_at_the_timeout(slow_cluster):
    nodes, links = slow_cluster
    backend = RedisBackend(RedisOptions(startup_nodes=nodes, timeout="250ms"))
    try:
        keys = [f"slow:v1:k{i}" for i in range(6)]  # spread over the masters
        for key in keys:
            backend.set(key, Entry.create(ANSWER))
        assert all(backend.get(key).value == ANSWER for key in keys)
        for link in links:
            link.slow = True
        for key in keys[:2]:
            started = time.monotonic()
            with pytest.raises(Exception, match="(?i)timeout|deadline"):
                backend.get(key)
            assert time.monotonic() - started < 0.6
    finally:
        for link in links:
            link.slow = False
        backend.clear("slow:")
        backend.close()


@pytest.fixture
def slow_cluster(redis_server, slow_link):
    """Three masters that announce a slow link's port as their own: clients reach every node
    through a proxy (the cluster bus goes direct)."""
    import subprocess

    import redis

    servers, links = [], []
    for _ in range(3):
        port = _free_port_pair()
        proxy = slow_link(port)
        links.append(proxy)
        servers.append(redis_server(port, "--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                                    "--cluster-announce-ip", "127.0.0.1", "--cluster-announce-port", str(proxy.port),
                                    "--cluster-announce-bus-port", str(port + 10000)))
    done = subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{s.port}" for s in servers],
                           "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    clients = [redis.Redis(port=s.port) for s in servers]
    deadline = time.monotonic() + 30
    while not all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients):
        assert time.monotonic() < deadline, "the cluster did not reach state ok"
        time.sleep(0.1)
    for c in clients:
        c.close()
    return [f"127.0.0.1:{link.port}" for link in links], links


def _free_port_pair() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    import random
    import socket

    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


def test_a_tls_lookup_over_a_slow_link_ends_at_the_timeout(redis_server, slow_link, tmp_path):
    """rediss://: the deadline bounds the TLS socket's reads as well (and its handshake)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    tls_port = _free_port_pair()
    try:
        redis_server(None, "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                     "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no")
    except RuntimeError:
        pytest.skip("this redis-server was built without TLS")
    # TLS reads whole records (16 KB): 2 KB per 20 ms delivers each within 160 ms, 80 KB in ~0.8 s
    link = slow_link(tls_port, chunk=2048)
    backend = RedisBackend(RedisOptions(url=f"rediss://127.0.0.1:{link.port}/0?ssl_cert_reqs=none", timeout="250ms"))
    big = {"text": "z" * 80_000}
    try:
        backend.set("tls:v1:k", Entry.create(big))
        assert backend.get("tls:v1:k").value == big
        link.slow = True
        started = time.monotonic()
        with pytest.raises(Exception, match="(?i)timeout|deadline"):
            backend.get("tls:v1:k")
        assert time.monotonic() - started < 0.6
    finally:
        link.slow = False
        backend.delete("tls:v1:k")
        backend.close()
