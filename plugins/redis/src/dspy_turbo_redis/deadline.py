"""A deadline for each call of the redis tier: connect, send, every read, retries, all of it.

redis-py's ``socket_timeout`` bounds each read on its own: over a slow link that delivers a
reply a few bytes at a time, a call waits up to ``timeout`` per read, many times over (a
lookup took seconds against a 250 ms timeout). Here a method decorated ``@bounded`` opens a
deadline of its object's ``_timeout`` seconds for its thread; until it returns, every
socket operation of the connections below waits at most what is left of it, one that
starts after it raises ``socket.timeout`` (redis-py's ``TimeoutError``), a new connection
connects (and shakes hands, TLS included) within it, and a pool hands out a connection
within it. Off a deadline, sockets behave as redis-py set them.
"""

from __future__ import annotations

import functools
import socket
import threading
import time

import redis
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection

_state = threading.local()
# An operation this close to the call's start keeps the socket's own timeout (it ends at most
# this much past the deadline): the first operations of a call cost no settimeout syscall.
_SLACK = 0.001


def _remaining() -> float | None:
    deadline = getattr(_state, "deadline", None)
    return None if deadline is None else deadline - time.monotonic()


def bounded(method):
    """Run ``method`` under a deadline of ``self._timeout`` seconds (None: no deadline). A
    deadline already open on this thread (a call inside a call) is never extended."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        seconds = self._timeout
        if seconds is None:
            return method(self, *args, **kwargs)
        state = _state
        previous = getattr(state, "deadline", None)
        deadline = time.monotonic() + seconds
        state.deadline = deadline if previous is None or deadline < previous else previous
        try:
            return method(self, *args, **kwargs)
        finally:
            state.deadline = previous

    return call


class unbounded:
    """A block outside the current call's deadline (``with unbounded(): ...``): building a
    Cluster client discovers the cluster's topology once per process, bounded per round trip
    by the socket timeouts, not by the deadline of the call that happened to need it first."""

    __slots__ = ("_saved",)

    def __enter__(self) -> None:
        self._saved = getattr(_state, "deadline", None)
        _state.deadline = None

    def __exit__(self, *exc) -> None:
        _state.deadline = self._saved


def _expired() -> TimeoutError:
    # socket.timeout is TimeoutError: redis-py turns it into its own TimeoutError and drops the connection
    return TimeoutError("the call's deadline has passed")


def _timeout_for(deadline: float, base: float | None) -> float | None:
    """The timeout an operation starting now may wait under ``deadline``: None to keep
    ``base`` (the operation cannot outlast the deadline by more than the slack)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise _expired()
    if base == 0:
        return None  # a non-blocking peek (redis-py's health checks) never waits anyway
    return left if base is None or left < base - _SLACK else None


class DeadlineSocket(socket.socket):
    """A TCP or Unix socket whose blocking operations end by the current deadline. A socket
    subclass, not a wrapper: everything but the four calls below stays C (a hit makes no
    extra Python call for ``fileno`` or a ``pending`` lookup)."""

    __slots__ = ("_base", "_lowered")

    @classmethod
    def adopt(cls, sock: socket.socket, timeout: float | None) -> DeadlineSocket:
        adopted = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        adopted._base, adopted._lowered = timeout, False
        socket.socket.settimeout(adopted, timeout)
        return adopted

    def _bound(self) -> None:
        deadline = getattr(_state, "deadline", None)
        wait = None if deadline is None else _timeout_for(deadline, self._base)
        if wait is not None:
            socket.socket.settimeout(self, wait)
            self._lowered = True
        elif self._lowered:
            socket.socket.settimeout(self, self._base)
            self._lowered = False

    def recv(self, *args):
        self._bound()
        return socket.socket.recv(self, *args)

    def recv_into(self, *args):
        self._bound()
        return socket.socket.recv_into(self, *args)

    def send(self, *args):
        self._bound()
        return socket.socket.send(self, *args)

    def sendall(self, *args):
        self._bound()  # Python bounds a whole sendall by the timeout, not each chunk of it
        return socket.socket.sendall(self, *args)

    def settimeout(self, timeout: float | None) -> None:
        self._base, self._lowered = timeout, False
        socket.socket.settimeout(self, timeout)

    def gettimeout(self) -> float | None:
        return self._base


class DeadlineTLSSocket:
    """The same for a TLS socket (``ssl.SSLSocket`` cannot be adopted): a thin wrapper."""

    __slots__ = ("_sock", "_base", "_lowered")

    def __init__(self, sock, timeout: float | None):
        self._sock, self._base, self._lowered = sock, timeout, False
        sock.settimeout(timeout)

    def _bound(self) -> None:
        deadline = getattr(_state, "deadline", None)
        wait = None if deadline is None else _timeout_for(deadline, self._base)
        if wait is not None:
            self._sock.settimeout(wait)
            self._lowered = True
        elif self._lowered:
            self._sock.settimeout(self._base)
            self._lowered = False

    def recv(self, *args):
        self._bound()
        return self._sock.recv(*args)

    def recv_into(self, *args):
        self._bound()
        return self._sock.recv_into(*args)

    def send(self, *args):
        self._bound()
        return self._sock.send(*args)

    def sendall(self, *args):
        self._bound()
        return self._sock.sendall(*args)

    def settimeout(self, timeout: float | None) -> None:
        self._base, self._lowered = timeout, False
        self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._base

    def __getattr__(self, name: str):
        return getattr(self._sock, name)  # fileno, close, shutdown, pending, getsockname...


class _DeadlineConnect:
    """Mixed in before a redis-py connection class: its sockets are DeadlineSockets, and a
    connection made under a deadline connects and shakes hands within it."""

    def _connect(self):
        left = _remaining()
        timeouts = self.socket_connect_timeout, self.socket_timeout
        if left is not None:
            if left <= 0:
                raise _expired()
            self.socket_connect_timeout = left if timeouts[0] is None else min(timeouts[0], left)
            self.socket_timeout = left if timeouts[1] is None else min(timeouts[1], left)  # a TLS handshake
        try:
            sock = super()._connect()
        finally:
            self.socket_connect_timeout, self.socket_timeout = timeouts
        if type(sock) is socket.socket:
            return DeadlineSocket.adopt(sock, timeouts[1])
        return DeadlineTLSSocket(sock, timeouts[1])


class DeadlineConnection(_DeadlineConnect, Connection):
    pass


class DeadlineSSLConnection(_DeadlineConnect, SSLConnection):
    pass


class DeadlineUnixConnection(_DeadlineConnect, UnixDomainSocketConnection):
    pass


_PLAIN = {Connection: DeadlineConnection, SSLConnection: DeadlineSSLConnection,
          UnixDomainSocketConnection: DeadlineUnixConnection}


def deadline_class(connection_class: type) -> type:
    """The deadline-bound counterpart of one of redis-py's connection classes."""
    return _PLAIN.get(connection_class, connection_class)


class DeadlinePool(redis.BlockingConnectionPool):
    """Waits for a free connection no longer than the current deadline allows."""

    @property
    def timeout(self) -> float | None:
        left = _remaining()
        own = self._own_timeout
        if left is None:
            return own
        left = max(0.0, left)
        return left if own is None else min(own, left)

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._own_timeout = value


class DeadlineClusterPool(redis.ConnectionPool):
    """A Cluster node's pool: its connections are the deadline-bound kind of what the URL asks for."""

    def __init__(self, connection_class: type = Connection, **kwargs):
        super().__init__(connection_class=deadline_class(connection_class), **kwargs)
