"""The Redis the online store talks to when `ONLINE_STORE=redis`.

`REDIS_URL` is one URL
(`redis://[[user]:password@]host:port/db`, `rediss://` for TLS) or, with `REDIS_CLUSTER=1`, seed
nodes separated by commas, each a full URL. Without `REDIS_URL` the project's local server is used
(`make redis-up`: a 3-master cluster, or one node with `REDIS_CLUSTER=0`), as its ACL users: the
writer for the commands, a read-only user for the API. `REDIS_READER_URL` names the API's user on
a Redis of your own (the same nodes); without it the API reads as `REDIS_URL`'s user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from streamflow import config, targets
from streamflow.config import ConfigError

LOCAL_CLUSTER_PORTS = (17001, 17002, 17003)  # cluster bus at +10000: ports must stay <= 55535
LOCAL_SINGLE_PORT = 16379


class RedisConfigError(ConfigError):
    """An online store setting that cannot work; the message says which and why."""


@dataclass(frozen=True)
class RedisTarget:
    """Seed nodes (host, port), the credentials and TLS shared by all of them, the database."""

    nodes: tuple[tuple[str, int], ...]
    cluster: bool
    password: str = field(default="", repr=False)
    username: str = ""
    tls: bool = False
    db: int = 0

    @property
    def safe_url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        auth = "***@" if self.password else ""
        return ",".join(f"{scheme}://{auth}{host}:{port}" for host, port in self.nodes)

    @property
    def url(self) -> str:
        """The full URL list, password included (for the Feast configuration only)."""
        scheme = "rediss" if self.tls else "redis"
        auth = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}@" if self.password else ""
        suffix = "" if self.cluster else f"/{self.db}"
        return ",".join(f"{scheme}://{auth}{host}:{port}{suffix}" for host, port in self.nodes)

    def connection_kwargs(self) -> dict:
        kwargs: dict = {"password": self.password or None, "username": self.username or None}
        if self.tls:
            kwargs["ssl"] = True
        return kwargs

    def client(self, timeout: float = 5.0):
        """A synchronous client: `RedisCluster` for a cluster, `Redis` otherwise."""
        import redis
        from redis.cluster import ClusterNode, RedisCluster

        common = {"socket_timeout": timeout, "socket_connect_timeout": timeout, **self.connection_kwargs()}
        if self.cluster:
            return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in self.nodes], **common)
        host, port = self.nodes[0]
        return redis.Redis(host=host, port=port, db=self.db, **common)

    def async_client(self, timeout: float, max_connections: int):
        """An asyncio client for the API; commands fail after `timeout` seconds."""
        from redis import asyncio as aioredis
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        common = {"socket_timeout": timeout, "socket_connect_timeout": timeout, **self.connection_kwargs()}
        if self.cluster:
            return RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in self.nodes],
                max_connections=max_connections,
                **common,
            )
        host, port = self.nodes[0]
        return aioredis.Redis(host=host, port=port, db=self.db, max_connections=max_connections, **common)


def parse(urls: str, cluster: bool) -> RedisTarget:
    """`REDIS_URL` as documented above; every seed must share scheme and credentials."""
    parts = [u.strip() for u in urls.split(",") if u.strip()]
    if not parts:
        raise RedisConfigError("REDIS_URL is empty")
    if len(parts) > 1 and not cluster:
        raise RedisConfigError("REDIS_URL lists several nodes: set REDIS_CLUSTER=1 for a cluster")
    nodes, seen = [], set()
    for part in parts:
        url = urlsplit(part)
        if url.scheme not in ("redis", "rediss") or not url.hostname:
            raise RedisConfigError(f"REDIS_URL entry {part.split('@')[-1]!r}: expected redis://host:port")
        try:
            port = url.port or 6379
        except ValueError:
            raise RedisConfigError(f"REDIS_URL entry {url.hostname!r}: the port is not a number") from None
        nodes.append((url.hostname, port))
        seen.add((url.scheme, unquote(url.username or ""), unquote(url.password or ""), url.path))
    if len(seen) > 1:
        raise RedisConfigError("REDIS_URL seeds must share one scheme, user, password and database")
    scheme, username, password, path = seen.pop()
    db = int(path.strip("/") or 0) if path.strip("/").isdigit() or not path.strip("/") else -1
    if db < 0:
        raise RedisConfigError(f"REDIS_URL database {path!r}: expected a number")
    if cluster and db:
        raise RedisConfigError("a Redis Cluster has database 0 only: drop the /N from REDIS_URL")
    return RedisTarget(tuple(nodes), cluster, password, username, scheme == "rediss", db)


WRITER, READER = "streamflow", "streamflow_reader"  # the local Redis' ACL users


def from_env(reader: bool = False) -> RedisTarget:
    """The Redis the commands write to, or (`reader`) the one the API reads as."""
    cluster = config.get(config.REDIS_CLUSTER)
    if cluster is None:  # the project's own Redis is a cluster unless told otherwise
        cluster = not config.is_set(config.REDIS_URL)
    if config.is_set(config.REDIS_URL):
        given = (reader and config.raw(config.REDIS_READER_URL)) or config.raw(config.REDIS_URL)
        return parse(given, cluster)
    user = READER if reader else WRITER
    password = quote(targets.local_redis_passwords()[user], safe="")
    ports = LOCAL_CLUSTER_PORTS if cluster else (LOCAL_SINGLE_PORT,)
    return parse(",".join(f"redis://{user}:{password}@127.0.0.1:{port}" for port in ports), cluster)
