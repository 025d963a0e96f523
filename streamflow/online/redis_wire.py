"""The Redis online store on the wire: the guarded-write script, writes grouped by shard and sent
in pipelines (the shards in parallel), the months log, and deleting a project.

Every write goes through one server-side script, per slot: a view's field is only replaced by a
newer event, or by the same event with other values (a restatement), exactly the guard of the
PostgreSQL store. A user's whole feature service is one HMGET on one node:
    key <project>:user:<user_id>   field <view>@<layout digest>   JSON [event time in us, values...]

Why not Feast's own Redis layout: it keeps one protobuf per feature (16 fields and 16 decodes per
user read) and writes row by row through Python protobufs; this layout reads one field per view
and decodes it with one JSON call, and materialize never builds a protobuf.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from redis.crc import key_slot
from redis.exceptions import RedisError

from streamflow.online import layout

KEYS_PER_CALL = 100  # one node: users per script call (a cluster groups by slot instead)
CALLS_PER_PIPELINE = 500
REPLICATED_WITHIN_MS = 10_000  # how long a master's replicas get to acknowledge a batch's writes


# -- the keys: one hash per user, the months log, the generation ------------------------------
def key_prefix(project: str) -> bytes:
    return f"{project}:user:".encode()


def user_key(project: str, user_id: str) -> bytes:
    return key_prefix(project) + user_id.encode()


def months_key(project: str) -> str:
    """The Redis hash of the months log."""
    return f"{project}:materialized_months"


def generation_key(project: str) -> str:
    """The Redis counter every change of served values increments (the API's caches watch it)."""
    return f"{project}:generation"


class NotReplicated(RedisError):
    """A master's replicas did not acknowledge its writes in time: the month is not logged (a
    failover could promote a replica without them) and the next materialize writes it again."""


# KEYS: user keys. ARGV[1]: key TTL in seconds (0: none); then per key: n, and n pairs
# (field, blob). A blob's event time is its first element. Returns how many users changed.
GUARDED_WRITE = """
local ttl = tonumber(ARGV[1])
local at = 2
local changed = 0
for i = 1, #KEYS do
  local key = KEYS[i]
  local n = tonumber(ARGV[at])
  at = at + 1
  local fields = {}
  for j = 0, n - 1 do fields[j + 1] = ARGV[at + 2 * j] end
  local current = redis.call('HMGET', key, unpack(fields))
  local out = {}
  for j = 0, n - 1 do
    local blob, cur = ARGV[at + 2 * j + 1], current[j + 1]
    local write = not cur
    if not write then
      local old = tonumber(string.match(cur, '^%[(%-?%d+)'))
      local new = tonumber(string.match(blob, '^%[(%-?%d+)'))
      write = old < new or (old == new and cur ~= blob)
    end
    if write then
      out[#out + 1] = fields[j + 1]; out[#out + 1] = blob
    end
  end
  at = at + 2 * n
  if #out > 0 then
    redis.call('HSET', key, unpack(out))
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    changed = changed + 1
  end
end
return changed
"""
SCRIPT_SHA = hashlib.sha1(GUARDED_WRITE.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

# (user key, [(field, JSON blob), ...])
Entry = tuple[bytes, list[tuple[str, bytes]]]


# -- writes ------------------------------------------------------------------------------------
def _call_args(entries: Sequence[Entry], ttl: int) -> tuple[list[bytes], list]:
    keys, args = [], [ttl]
    for key, fields in entries:
        keys.append(key)
        args.append(len(fields))
        for field, blob in fields:
            args += (field, blob)
    return keys, args


def _node_batches(client, entries: Iterable[Entry]) -> dict[object, list[Sequence[Entry]]]:
    """Script calls grouped by the node that must run them: a call's keys share one slot."""
    if not _is_cluster(client):
        entries = list(entries)
        if not entries:
            return {}
        return {client: [entries[i : i + KEYS_PER_CALL] for i in range(0, len(entries), KEYS_PER_CALL)]}
    by_slot: dict[int, list[Entry]] = defaultdict(list)
    for entry in entries:
        by_slot[key_slot(entry[0])].append(entry)
    by_node: dict[object, list[Sequence[Entry]]] = defaultdict(list)
    for slot, group in by_slot.items():
        node = client.nodes_manager.get_node_from_slot(slot)
        by_node[node.redis_connection].append(group)
    return by_node


def _is_cluster(client) -> bool:
    return hasattr(client, "nodes_manager")


def primaries(client) -> list:
    """A plain client for each master (the client itself on one node)."""
    if not _is_cluster(client):
        return [client]
    return [node.redis_connection for node in client.get_primaries()]


def _run_calls(node, calls: list[Sequence[Entry]], ttl: int) -> int:
    """The calls in pipelines; the last one ends with WAIT for every replica the master has, on
    the connection that wrote (WAIT covers what its client wrote, and all before it on the node)."""
    node.script_load(GUARDED_WRITE)  # idempotent; a restarted node has lost its script cache
    replicas = int(node.info("replication").get("connected_slaves", 0))
    changed = 0
    for start in range(0, len(calls), CALLS_PER_PIPELINE):
        pipe = node.pipeline(transaction=False)
        for entries in calls[start : start + CALLS_PER_PIPELINE]:
            keys, args = _call_args(entries, ttl)
            pipe.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
        last = start + CALLS_PER_PIPELINE >= len(calls)
        if last and replicas:
            pipe.execute_command("WAIT", replicas, REPLICATED_WITHIN_MS)
        answers = pipe.execute()
        if last and replicas:
            acknowledged = answers.pop()
            if acknowledged < replicas:
                raise NotReplicated(f"{acknowledged} of {replicas} replicas acknowledged the writes in time")
        changed += sum(answers)
    return changed


def write(client, entries: Iterable[Entry], ttl: int = 0) -> int:
    """Guarded writes of `entries`, each shard's calls in one thread; returns users changed."""
    batches = _node_batches(client, entries)
    if not batches:
        return 0
    if len(batches) == 1:
        ((node, calls),) = batches.items()
        return _run_calls(node, calls, ttl)
    with ThreadPoolExecutor(len(batches)) as pool:
        return sum(pool.map(lambda item: _run_calls(item[0], item[1], ttl), batches.items()))


# -- reads (the Feast SDK path; the API reads the same fields asynchronously) ----------------
def read(client, keys: Sequence[bytes], field: str) -> list[bytes | None]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hget(key, field)
    return pipe.execute()


# -- the months log ------------------------------------------------------------------------------
def materialized_months(client, project: str) -> dict[tuple[str, datetime], datetime]:
    log = client.hgetall(months_key(project))
    return {
        layout.parse_months_entry(name): datetime.fromtimestamp(float(at), UTC) for name, at in log.items()
    }


def months_log(conn, project: str, timeout: float = 1.0) -> dict[tuple[str, datetime], datetime]:
    """The months log of the Redis the commands write to (REDIS_URL, or the project's own), read
    without Feast: `streamflow status` (`conn`, the control plane's, is not needed here)."""
    from streamflow.online import redis_target

    client = redis_target.from_env().client(timeout=timeout)
    try:
        return materialized_months(client, project)
    finally:
        client.close()


def record_months(client, project: str, fields: Sequence[str], month: datetime) -> None:
    now = str(time.time())
    entries = {layout.months_entry(field, month): now for field in fields}
    client.hset(months_key(project), mapping=entries)


def delete_project(client, project: str) -> int:
    """Every key of the project, on every master."""
    deleted = 0
    for node in primaries(client):
        batch = []
        for key in node.scan_iter(match=f"{project}:*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                deleted += _unlink(node, batch)
                batch = []
        deleted += _unlink(node, batch)
    return deleted


def _unlink(node, keys: list[bytes]) -> int:
    if not keys:
        return 0
    pipe = node.pipeline(transaction=False)
    for key in keys:  # one key a command: keys on a node span many slots
        pipe.unlink(key)
    return sum(pipe.execute())
