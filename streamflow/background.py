"""Work that runs beside the API and takes what CPU it leaves: the replay of the served log, at
nice 19. (SCHED_IDLE was tried: no better for the API's p99 here, and a process at it starves
under a load that does not stop: a collector beside a loaded API took minutes to fail fast.)

A query's CPU is spent by its PostgreSQL backend, not by us: when the server runs on this host
(the embedded server, or a server beside the API) and its backend is a process we may change,
the backend of each of our sessions is reniced too. Anything else (a server elsewhere, another
user's process) is left as it is.

Priority is not enough on a small machine: two vCPUs that share a core's caches and the host's
time make any second busy process lengthen the API's slowest requests (the replay at nice 19 or
SCHED_IDLE beside wrk: p99 1.8-8x). So work that can wait also waits: between its bounded slices
it asks for room (`wait_for_room`), and while the machine's CPUs are busy it sleeps, up to a
bound that keeps it moving under a load that never ends."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
# Room for a slice: a whole CPU idle (half the machine on one of two CPUs or fewer). On these two
# vCPUs the API under wrk leaves 0.3-0.5 of one; a share (35 % idle) let slices start beside it.
ROOM_CPUS = 1.0
SAMPLE_S = 0.5  # how long each look at the CPUs lasts
MAX_WAIT_S = 120.0  # a slice starts after this long whatever the load: the work finishes
_yielding = False


def yielding() -> bool:
    return _yielding


def _lower(pid: int) -> bool:
    """`pid` (0: this process) at nice 19; False where that may not be done."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, 19)
        return True
    except OSError:  # not ours to change, or gone
        return False


def yield_the_cpu() -> None:
    """This process, the processes it starts (a local Spark's JVM) and, from now on, the
    backends of its database sessions on this host: at the lowest CPU priority."""
    global _yielding
    _lower(0)
    _yielding = True


def _our_backend(conn: psycopg.Connection, pid: int) -> bool:
    """Whether process `pid` on this host is the backend serving `conn`: PostgreSQL titles each
    backend with its client's address and port (`postgres: user db 127.0.0.1(53412) idle`), and
    our socket's port is ours alone, so a pid of another namespace (a container's) never matches."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if not title.startswith("postgres"):
        return False
    if conn.info.host.startswith("/"):  # a Unix socket: the title says [local]
        return "[local]" in title
    with socket.socket(fileno=os.dup(conn.fileno())) as ours:
        port = ours.getsockname()[1]
    return f"({port})" in title


def follow(conn: psycopg.Connection) -> None:
    """`conn`'s backend at the lowest priority too, when this process yields and the backend is
    on this host (called by every connection `database.connect` makes)."""
    if not _yielding:
        return
    host = conn.info.host
    if not (host.startswith("/") or host in LOCAL_HOSTS):
        return
    pid = conn.info.backend_pid
    if _our_backend(conn, pid):
        _lower(pid)


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of every CPU since boot: /proc/stat's first line."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; without guest (counted in user)


def idle_cpus(seconds: float = SAMPLE_S) -> float:
    """How many of the machine's CPUs were idle, on average, over the next `seconds`."""
    idle0, total0 = _cpu_times()
    time.sleep(seconds)
    idle1, total1 = _cpu_times()
    return (os.cpu_count() or 1) * (idle1 - idle0) / max(total1 - total0, 1)


def room() -> float:
    return min(ROOM_CPUS, (os.cpu_count() or 1) / 2)


def wait_for_room(look: Callable[[], float] = idle_cpus, max_wait_s: float = MAX_WAIT_S) -> float:
    """Until the machine has room (`look()`, idle CPUs, >= `room()`) or `max_wait_s` passed; the
    seconds waited. Only a process that yields waits: anything else goes on at once."""
    if not _yielding:
        return 0.0
    started, needed = time.monotonic(), room()
    while look() < needed and time.monotonic() - started < max_wait_s:
        time.sleep(SAMPLE_S)
    return time.monotonic() - started
