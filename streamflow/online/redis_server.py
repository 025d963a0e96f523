"""The project's own Redis: one node, or a cluster of masters (and replicas) on loopback, run by
the OS's `redis-server` with its data under `.streamflow/redis`. Append-only files keep a node's
data across a restart (a master killed and started again comes back with its keys).

No one gets in without a password: the default user is off; the writer (`streamflow`, every
command: the pipeline, `make redis-up`, the replicas' link) and the API's reader
(`streamflow_reader`: reads only) have generated passwords (settings.local_redis_passwords)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from streamflow import config, targets
from streamflow.online.redis_target import LOCAL_CLUSTER_PORTS, LOCAL_SINGLE_PORT, READER, WRITER, RedisTarget
from streamflow.plugins import PrerequisiteMissing
from streamflow.processes import alive

MAX_CLUSTER_PORT = 55535  # the cluster bus listens 10,000 ports above each node
INSTALL_HINT = "redis-server is not installed: `apt-get install redis-server` (Debian/Ubuntu)"
# The API's reader: read commands on any key, what a cluster client asks at start, nothing else
# (no write, no admin, no CLIENT KILL; Redis 7.0's names: the packaged server's).
READER_RULES = (
    "~* resetchannels -@all +@read +ping +echo +hello +readonly +readwrite +select +command "
    "+cluster|slots +cluster|shards +cluster|nodes +cluster|info +cluster|myid"
)


class RedisServerMissing(PrerequisiteMissing):
    pass


def redis_binary(name: str = "redis-server") -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        raise RedisServerMissing(INSTALL_HINT)
    return path


class LocalRedis:
    """Nodes on 127.0.0.1 `ports`; a cluster when `cluster`, with `replicas` per master (the
    ports after the masters' are the replicas')."""

    def __init__(self, root: Path, ports: tuple[int, ...], cluster: bool, replicas: int = 0):
        if cluster and max(ports) > MAX_CLUSTER_PORT:
            raise ValueError(f"cluster ports must be <= {MAX_CLUSTER_PORT} (the bus is 10,000 above)")
        if cluster and len(ports) < 3 * (1 + replicas):
            raise ValueError("a Redis Cluster needs at least 3 masters")
        self.root, self.ports, self.cluster, self.replicas = root, ports, cluster, replicas
        self.passwords = targets.local_redis_passwords()

    @property
    def masters(self) -> tuple[int, ...]:
        return self.ports[: len(self.ports) // (1 + self.replicas)] if self.cluster else self.ports

    def target(self, user: str = WRITER) -> RedisTarget:
        nodes = tuple(("127.0.0.1", p) for p in self.masters)
        return RedisTarget(nodes, self.cluster, self.passwords[user], user)

    def variables(self) -> dict[str, str]:
        """The variables that point every project tool at this Redis (the API at its reader)."""
        return {
            config.ONLINE_STORE: "redis",
            config.REDIS_URL: self.target().url,
            config.REDIS_READER_URL: self.target(READER).url,
            config.REDIS_CLUSTER: "1" if self.cluster else "0",
        }

    def node_client(self, port: int, **options):
        """A plain client of one node, as the writer."""
        import redis

        return redis.Redis(port=port, username=WRITER, password=self.passwords[WRITER], **options)

    def master_clients(self) -> list:
        return [self.node_client(port) for port in self.masters]

    def node_dir(self, port: int) -> Path:
        return self.root / str(port)

    def pid(self, port: int) -> int | None:
        try:
            pid = int((self.node_dir(port) / "redis.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if alive(pid) else None

    def _config(self, port: int) -> str:
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f"dir {self.node_dir(port)}",
            "daemonize yes",
            f"pidfile {self.node_dir(port) / 'redis.pid'}",
            f"logfile {self.node_dir(port) / 'redis.log'}",
            "save ''",
            "appendonly yes",
            # every write on disk before it is acknowledged: the months log (on another shard)
            # must never outlive the values it counts as written, not even across a power cut
            "appendfsync always",
            # No one may log in as the default user, but it keeps every right: Redis 7.0 replays
            # the append-only file's MULTI/EXEC blocks (our scripts' writes) as that user, and a
            # default user without them silently drops those writes when a node restarts.
            "user default off resetpass ~* &* +@all",
            f"user {WRITER} on #{_sha256(self.passwords[WRITER])} ~* &* +@all",
            f"user {READER} on #{_sha256(self.passwords[READER])} {READER_RULES}",
            # a replica follows its master as the writer (the file is private: umask 077)
            f"masteruser {WRITER}",
            f"masterauth {self.passwords[WRITER]}",
        ]
        if self.cluster:
            # 2 s without an answer marks a node failed: replicas take over quickly, as tests need
            lines += ["cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 2000"]
        return "\n".join(lines) + "\n"

    def start_node(self, port: int) -> None:
        if self.pid(port):
            return
        node = self.node_dir(port)
        node.mkdir(parents=True, exist_ok=True)
        (node / "redis.conf").write_text(self._config(port))
        subprocess.run([redis_binary(), str(node / "redis.conf")], check=True, capture_output=True)
        self._wait(port, lambda c: c.ping())

    def kill_node(self, port: int, sig: int = signal.SIGKILL) -> None:
        """Stop one node the hard way (a crash) or with SIGTERM (a clean shutdown)."""
        pid = self.pid(port)
        if pid:
            os.kill(pid, sig)
            deadline = time.monotonic() + 30
            while self.pid(port) and time.monotonic() < deadline:
                time.sleep(0.05)

    def _wait(self, port: int, ready, timeout: float = 30.0) -> None:
        import redis

        client = self.node_client(port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready(client):
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                pass
            if time.monotonic() > deadline:
                log = self.node_dir(port) / "redis.log"
                tail = log.read_text()[-500:] if log.exists() else ""
                raise RuntimeError(f"redis on port {port} did not become ready: {tail}")
            time.sleep(0.1)

    def _cluster_info(self, port: int) -> dict[str, str]:
        import redis

        try:
            info = self.node_client(port, socket_timeout=1, decode_responses=True).cluster("INFO")
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return {}
        return {name: str(value) for name, value in info.items()}

    def cluster_ok(self, port: int) -> bool:
        return self._cluster_info(port).get("cluster_state") == "ok"

    def up(self) -> str:
        """Start every node (running ones are left alone); form the cluster the first time."""
        for port in self.ports:
            self.start_node(port)
        if self.cluster:
            formed = self._cluster_info(self.ports[0]).get("cluster_slots_assigned") == "16384"
            if not formed:
                subprocess.run(
                    [
                        redis_binary("redis-cli"),
                        "--cluster",
                        "create",
                        *[f"127.0.0.1:{p}" for p in self.ports],
                        "--cluster-replicas",
                        str(self.replicas),
                        "--cluster-yes",
                        "--user",
                        WRITER,
                    ],
                    check=True,
                    capture_output=True,
                    # the writer's password from the environment, never on a command line
                    env=config.child_environment({"REDISCLI_AUTH": self.passwords[WRITER]}),
                )
            for port in self.ports:
                self._wait(port, lambda c, p=port: self.cluster_ok(p))
        kind = f"{len(self.masters)}-master cluster" if self.cluster else "single node"
        extra = f" + {len(self.ports) - len(self.masters)} replicas" if self.cluster and self.replicas else ""
        return f"redis {kind}{extra} up at {self.target().safe_url} (data {self.root})"

    def down(self) -> bool:
        """Stop every node (a clean shutdown: append-only files flushed). False if none ran."""
        running = [p for p in self.ports if self.pid(p)]
        for port in running:
            self.kill_node(port, signal.SIGTERM)
        return bool(running)

    def wipe(self) -> None:
        self.down()
        shutil.rmtree(self.root, ignore_errors=True)


def _sha256(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def default_server(cluster: bool = True) -> LocalRedis:
    """What `make redis-up` runs: 3 masters (or one node with REDIS_CLUSTER=0)."""
    root = targets.STATE_DIR / "redis" / ("cluster" if cluster else "single")
    return LocalRedis(root, LOCAL_CLUSTER_PORTS if cluster else (LOCAL_SINGLE_PORT,), cluster)
