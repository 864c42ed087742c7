"""The ``redis`` tier: a Redis server or Cluster shared by every process and host.

Values are dspy-turbo entry bytes (``Entry.to_bytes``), never pickles: anything under our
keys that does not decode (a foreign value, a planted pickle) is a miss, an error event,
and is deleted. Keys are the cache keys (``<namespace>:v<N>:<hash>``), behind
``<prefix>:`` when a ``prefix`` is set: ``app`` and ``app:`` both give ``app:<namespace>:...``,
so prefix ``app`` with namespace ``x`` (``app:x:...``) is never namespace ``appx``
(``appx:...``: a namespace holds no colon). A tag index is a Redis set per tag.

Failures never reach the program: every call is bounded by ``timeout`` as a deadline
for all of it (waiting for a pooled connection, connecting, sending, every read:
``deadline.py``), with no client-side retry loop except one immediate reconnect on a
dropped connection (after a server restart), inside the same deadline. ``clear`` and
``delete_tagged`` bound each round trip. The engine turns raised errors into error
events and a circuit breaker; the client reconnects by itself when the server is back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from dspy_turbo.plugin.backend import BackendOptions, CacheBackend, DecodeError, Entry, effective_ttl
from dspy_turbo.plugin.components import SecretURL
from dspy_turbo.plugin.units import Duration

from .coordinator import RedisCoordinator
from .deadline import DeadlineClusterPool, DeadlinePool, bounded, deadline_class, unbounded

_SCAN_COUNT = 1000
_DELETE_CHUNK = 500


# Query parameters of a URL that redis-py passes on to its connections. Not the timeouts,
# the pool size or retries: those are the tier's own options (a URL must not lift the bound
# on every call); nothing else, as redis-py would pass an unknown one on and fail at connect.
_URL_QUERY = {"db": int, "protocol": int, "health_check_interval": int, "client_name": str, "socket_keepalive": bool}
_URL_QUERY_TLS = {"ssl_cert_reqs": str, "ssl_ca_certs": str, "ssl_ca_path": str, "ssl_certfile": str,
                  "ssl_keyfile": str, "ssl_password": str, "ssl_check_hostname": bool, "ssl_min_version": int}
_OWN_OPTION = {"socket_timeout": "timeout", "socket_connect_timeout": "timeout", "timeout": "timeout",
               "max_connections": "max_connections", "retry_on_timeout": None, "retry_on_error": None,
               "password": "password", "username": "username"}


def _check_url(url: str) -> int:
    """Validate a Redis URL as redis-py will read it; returns its database number.

    Messages never quote the URL (it may hold a password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"url must start with redis://, rediss:// or unix://, not "
                         f"{parts.scheme + '://' if parts.scheme else 'no scheme'}")
    if "@" in parts.path or "@" in parts.query:
        raise ValueError("the url has an '@' after its host: write a password's '@', '/', '?' or '#' "
                         "percent-encoded (%40, %2F, %3F, %23), or give it in `password`")
    query = parse_qsl(parts.query, keep_blank_values=True)
    allowed = {**_URL_QUERY, **(_URL_QUERY_TLS if parts.scheme == "rediss" else {})}
    db = 0
    for name, value in query:
        if name in _OWN_OPTION:
            own = _OWN_OPTION[name]
            raise ValueError(f"the url's query sets {name!r}: " + (f"use the tier's `{own}` option instead"
                             if own else "no call is retried (a timed-out call would wait twice its timeout)"))
        if name not in allowed:
            tls = " (ssl_* ones with rediss:// only)" if name.startswith("ssl_") and parts.scheme != "rediss" else ""
            raise ValueError(f"unknown parameter {name!r} in the url's query{tls}; known: {', '.join(sorted(allowed))}")
        kind = allowed[name]
        if kind is int and not value.isdigit():
            raise ValueError(f"the url's {name!r} must be a whole number")
        if name == "protocol" and value not in ("2", "3"):
            raise ValueError("the url's 'protocol' must be 2 or 3")
        if name == "db":
            db = int(value)
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// url needs the socket's path, e.g. unix:///run/redis/redis.sock")
        return db
    if not parts.hostname:
        raise ValueError("the url has no host, e.g. redis://127.0.0.1:6379/0")
    path = parts.path.strip("/")
    if path:
        if not path.isdigit():
            raise ValueError("the url's path is the database number (redis://host:6379/0), and it is not a number")
        if "db" not in dict(query):
            db = int(path)
    if db > 2**31 - 1:
        raise ValueError("the url's database number is out of range")
    return db


class RedisOptions(BackendOptions):
    url: SecretURL = SecretURL("redis://127.0.0.1:6379/0")
    """``redis://``, ``rediss://`` (TLS) or ``unix://`` URL, checked when the config is loaded
    (host, port, database number, query parameters); use ``${REDIS_URL}`` so a password stays
    out of the file. Its credentials are a secret: shown as ``redis://:***@host:6379/0``."""
    cluster: bool = False
    """Connect to a Redis Cluster (the URL or ``startup_nodes`` name any of its nodes)."""
    startup_nodes: list[str] | None = None
    """Cluster nodes as ``host:port``; implies ``cluster: true``."""
    username: str | None = None
    password: SecretStr | None = None
    """Overrides a password in the URL."""
    timeout: Duration | None = Field(default=0.25, gt=0)
    """The deadline of every call, connecting and all its reads included: no call waits longer
    because of Redis (a slow link included)."""
    max_connections: int = Field(default=64, ge=1, le=10_000)
    """Connection pool size (per process, per node)."""
    prefix: str = ""
    """Put before every key, followed by ``:`` (``app`` and ``app:`` are the same prefix), to
    share one Redis database with other applications."""
    log_max: int = Field(default=100_000, ge=1000, le=10**9)
    """How many index changes the shared semantic-index log keeps (a Redis stream, trimmed
    approximately): a process started later catches up from these."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretURL) -> SecretURL:
        _check_url(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _cluster_url(self) -> RedisOptions:
        if self.cluster or self.startup_nodes:
            url = self.url.get_secret_value()
            if urlsplit(url).scheme == "unix":
                raise ValueError("a Redis Cluster is reached over redis:// or rediss://, not a unix socket")
            if _check_url(url) != 0:
                raise ValueError("a Redis Cluster has only database 0: drop the database number from the url")
        return self

    @field_validator("startup_nodes")
    @classmethod
    def _nodes(cls, value: list[str] | None) -> list[str] | None:
        for node in value or ():
            host, _, port = node.rpartition(":")
            if not host or not port.isdigit() or any(c in host for c in "@/ "):
                # never echo the value: a URL with a password pasted here must not reach a log
                raise ValueError("a startup node is not host:port (credentials go in `password`, not in the node list)")
        return value


def _display(url: str) -> str:
    """The URL without credentials, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisBackend(CacheBackend):
    name: ClassVar[str] = "redis"
    Options: ClassVar[type[RedisOptions]] = RedisOptions

    def __init__(self, options: RedisOptions | None = None, namespace: str = "dspy-turbo"):
        super().__init__(options)
        self.namespace = namespace
        prefix = self.options.prefix
        # Always a colon between prefix and namespace: run together, prefix "app" and namespace
        # "x" were namespace "appx".
        self.prefix = prefix if not prefix or prefix.endswith(":") else prefix + ":"
        self.is_cluster = bool(self.options.cluster or self.options.startup_nodes)
        self._client_obj = None
        self._lock = threading.Lock()
        self._timeout = float(self.options.timeout) if self.options.timeout is not None else None

    @classmethod
    def from_options(cls, options: RedisOptions, turbo: Any = None) -> RedisBackend:
        return cls(options, getattr(turbo, "namespace", "dspy-turbo"))

    def __repr__(self) -> str:
        return f"<RedisBackend {_display(self.options.url.get_secret_value())} cluster={self.is_cluster}>"

    # -- connection ------------------------------------------------------------------------

    def _client(self):
        """The client, built on first use (a Cluster client connects when built, and a
        server that is down at start must not stop the program from loading)."""
        client = self._client_obj
        if client is None:
            with self._lock, unbounded():
                if self._client_obj is None:
                    self._client_obj = self._connect()
                client = self._client_obj
        return client

    def _connect(self):
        import redis
        from redis.backoff import NoBackoff
        from redis.connection import Connection, parse_url
        from redis.retry import Retry

        opts = self.options
        timeout = self._timeout
        common: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # One immediate retry, for a pooled connection the server dropped (a restart);
            # a timeout is never retried, so no call waits past `timeout`.
            "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            "max_connections": opts.max_connections,
        }
        if opts.username is not None:
            common["username"] = opts.username
        if opts.password is not None:
            common["password"] = opts.password.get_secret_value()
        url = opts.url.get_secret_value()
        if not self.is_cluster:
            # A blocking pool: past max_connections a caller waits (within its deadline) for a free
            # connection instead of failing at once, so a busy but healthy server is no error.
            pool = DeadlinePool.from_url(url, timeout=timeout, connection_class=deadline_class(
                parse_url(url).get("connection_class", Connection)), **common)
            return redis.Redis(connection_pool=pool)
        from redis.cluster import ClusterNode, RedisCluster

        # No cluster-level retry loop either: a timed-out call would be tried again after a
        # slot-map refresh, several times the timeout in all.
        common["retry"] = Retry(NoBackoff(), 0)
        # Built from a URL in either case: only then does RedisCluster build each node's pool with
        # connection_pool_class, which makes its connections deadline-bound (TLS or not).
        nodes = []
        if opts.startup_nodes:
            url = f"redis://{opts.startup_nodes[0]}"
            nodes = [ClusterNode(host, int(port)) for host, _, port in (n.rpartition(":") for n in opts.startup_nodes[1:])]
        return RedisCluster(url=url, startup_nodes=nodes, connection_pool_class=DeadlineClusterPool, **common)

    def coordinator(self) -> RedisCoordinator:
        return RedisCoordinator(self._client, f"{self.prefix}{self.namespace}:", self.options.log_max,
                                timeout=self._timeout)

    # -- reads -----------------------------------------------------------------------------

    def _corrupt(self, key: str, error: DecodeError) -> None:
        try:
            self._client().delete(self.prefix + key)
        finally:
            self.corrupt(key, error)

    @bounded
    def get(self, key: str) -> Entry | None:
        blob = self._client().get(self.prefix + key)
        if blob is None:
            return None
        try:
            return Entry.from_bytes(blob) if self.signer is None else self.decode_entry(key, blob)
        except DecodeError as exc:
            self._corrupt(key, exc)
            return None

    @bounded
    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]:
        keys = list(keys)
        if not keys:
            return {}
        client = self._client()
        full = [self.prefix + k for k in keys]
        blobs = client.mget_nonatomic(full) if self.is_cluster else client.mget(full)
        signer = self.signer
        if signer is not None or None in blobs:  # misses or signatures: keep the keys that have bytes to decode
            present = []
            for key, blob in zip(keys, blobs, strict=True):
                if blob is not None:
                    try:
                        present.append((key, blob if signer is None else signer.verify(key, blob)))
                    except DecodeError as exc:
                        self._corrupt(key, exc)
            keys, blobs = [key for key, _ in present], [blob for _, blob in present]
        found = dict(zip(keys, Entry.from_many(blobs), strict=True))
        for key in [key for key, entry in found.items() if type(entry) is not Entry]:
            self._corrupt(key, found.pop(key))  # a miss, deleted and reported
        return found

    # -- writes ----------------------------------------------------------------------------

    def _tag_key(self, namespace: str, tag: str) -> str:
        return f"{self.prefix}{namespace}:tag:{tag}"

    @bounded
    def set(self, key: str, entry: Entry, ttl: float | None = None) -> None:
        ttl = effective_ttl(ttl if ttl is not None else self.options.ttl, entry)
        client = self._client()
        if ttl is not None and ttl <= 0:
            client.delete(self.prefix + key)  # already expired: an older value must not stay readable either
            return
        px = max(1, int(ttl * 1000)) if ttl is not None else None
        if not entry.tags:
            client.set(self.prefix + key, self.encode_entry(key, entry), px=px)
            return
        namespace = key.split(":", 1)[0]
        pipe = client.pipeline(transaction=False)
        pipe.set(self.prefix + key, self.encode_entry(key, entry), px=px)
        for tag in entry.tags:
            tag_key = self._tag_key(namespace, tag)
            pipe.sadd(tag_key, key)
            if px is not None:
                # The index lives as long as its longest entry: NX sets a first expiry (GT alone
                # treats "no expiry" as infinite and never sets one), GT extends it.
                pipe.pexpire(tag_key, px, nx=True)
                pipe.pexpire(tag_key, px, gt=True)
            else:
                pipe.persist(tag_key)
        pipe.execute()

    @bounded
    def delete(self, key: str) -> None:
        self._client().delete(self.prefix + key)

    @bounded
    def _unlink_chunk(self, chunk: list[str]) -> int:
        client = self._client()
        if self.is_cluster:  # keys of a chunk live in different slots
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.unlink(key)
            return sum(pipe.execute())
        return client.unlink(*chunk)

    def _unlink(self, keys: list[str]) -> int:
        return sum(self._unlink_chunk(keys[i:i + _DELETE_CHUNK]) for i in range(0, len(keys), _DELETE_CHUNK))

    def _each(self, iterator):
        """``iterator``'s items, each ``next`` (a SCAN round trip when its buffer is empty) under
        a deadline of its own: a namespace of any size can be cleared."""
        step = bounded(lambda self: next(iterator, _DONE))
        while (item := step(self)) is not _DONE:
            yield item

    def clear(self, prefix: str = "") -> int:
        """Remove the keys under ``prefix`` with ``SCAN`` (never ``KEYS``, never ``FLUSHDB``)."""
        pattern = _glob_escape(self.prefix + prefix) + "*"
        client = self._client()
        batch, removed = [], 0
        for key in self._each(client.scan_iter(match=pattern, count=_SCAN_COUNT)):
            batch.append(key)
            if len(batch) >= _DELETE_CHUNK:
                removed += self._unlink(batch)
                batch = []
        if batch:
            removed += self._unlink(batch)
        return removed

    def entries(self, prefix: str = "") -> Iterator[tuple[str, Entry]]:
        """The live entries under ``prefix``: ``SCAN`` with the prefix as a literal pattern
        (never ``KEYS``), read ``_DELETE_CHUNK`` keys at a time with one ``MGET`` each."""
        pattern = _glob_escape(self.prefix + prefix) + "*"
        client = self._client()
        strip = len(self.prefix)
        batch: list[str] = []
        for raw in self._each(client.scan_iter(match=pattern, count=_SCAN_COUNT)):
            key = (raw.decode() if isinstance(raw, bytes) else raw)[strip:]
            if key.startswith(prefix):
                batch.append(key)
            if len(batch) >= _DELETE_CHUNK:
                yield from self._live(batch)
                batch = []
        if batch:
            yield from self._live(batch)

    def _live(self, keys: list[str]) -> Iterator[tuple[str, Entry]]:
        found = self.get_many(keys)
        for key in keys:
            entry = found.get(key)
            if entry is not None and not entry.expired():
                yield key, entry

    def delete_tagged(self, prefix: str, tag: str) -> int:
        namespace = prefix.split(":", 1)[0]
        tag_key = self._tag_key(namespace, tag)
        client = self._client()
        members = [m.decode() if isinstance(m, bytes) else m
                   for m in self._each(client.sscan_iter(tag_key, count=_SCAN_COUNT))]
        doomed = [m for m in members if m.startswith(prefix)]
        removed = self._unlink([self.prefix + m for m in doomed]) if doomed else 0
        if doomed:
            bounded(lambda self: client.srem(tag_key, *doomed))(self)
        return removed

    def close(self) -> None:
        client, self._client_obj = self._client_obj, None
        if client is not None:
            client.close()


_DONE = object()


def _glob_escape(text: str) -> str:
    """Escape SCAN MATCH's glob characters so a prefix matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
