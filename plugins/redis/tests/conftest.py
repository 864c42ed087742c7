"""What the redis tier's tests share: a backend over keys of its own on the shared server
(dropped after the test), and a slow link to a Redis server (a TCP proxy on loopback that can
deliver bytes a few at a time)."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest
import redis

from dspy_turbo_redis import RedisBackend, RedisOptions


def drop_keys(url: str, prefix: str) -> None:
    """Remove every key under ``prefix`` from the server at ``url``."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.unlink(*keys)
    finally:
        client.close()


@pytest.fixture
def cleanup(redis_url):
    """``cleanup(prefix)``: the keys under ``prefix`` are dropped after the test."""
    prefixes: list[str] = []
    yield prefixes.append
    for prefix in prefixes:
        drop_keys(redis_url, prefix)


@pytest.fixture
def own_backend(redis_url):
    """Factory: ``own_backend(tag)`` is a RedisBackend over a prefix no other test uses
    (``<tag>-<random>:``) with a generous deadline (the contract is under test, not a loaded
    machine's scheduler); closed and its keys dropped after the test."""
    made: list[RedisBackend] = []

    def make(tag: str, **options) -> RedisBackend:
        backend = RedisBackend(RedisOptions(url=redis_url, prefix=f"{tag}-{uuid.uuid4().hex[:10]}:",
                                            **{"timeout": "2s", **options}))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
        drop_keys(redis_url, backend.prefix)


class SlowLink:
    """Forwards a loopback port to ``target_port``. While ``slow`` is set, bytes go through
    in both directions ``chunk`` at a time, one chunk every ``delay`` seconds: every socket
    read of the client returns within the delay, yet a reply of a few KB takes seconds."""

    def __init__(self, target_port: int, chunk: int = 16, delay: float = 0.02):
        self.target_port, self.chunk, self.delay = target_port, chunk, delay
        self.slow = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.slow:
                    dst.sendall(data)
                    continue
                for i in range(0, len(data), self.chunk):
                    time.sleep(self.delay)
                    dst.sendall(data[i:i + self.chunk])
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass


@pytest.fixture
def slow_link():
    """Factory: ``slow_link(port)`` puts a :class:`SlowLink` in front of a server; all closed after the test."""
    links: list[SlowLink] = []

    def make(port: int, **kwargs) -> SlowLink:
        link = SlowLink(port, **kwargs)
        links.append(link)
        return link

    yield make
    for link in links:
        link.close()
