"""Server processes on free loopback ports, for the tests and the benchmarks: start one, wait
until it answers, stop it, keep what it printed."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from streamflow import config

# Ports are claimed, not just found free: a lock file per port in one folder every checkout on
# the machine shares, held (flock) by the claiming process until it exits. A port bound only
# later by a child server (PostgreSQL, Redis, Prefect, Spark, the API) is then never handed to
# a second suite or bench meanwhile. The kernel drops a dead process's locks, so nothing goes stale.
# Below the kernel's ephemeral range (32768+), where no outgoing connection takes one.
PORT_LOCKS = Path(tempfile.gettempdir()) / "streamflow-ports"
FIRST_PORT, LAST_PORT = 10000, 32767
_CLAIMED: dict[int, int] = {}  # port -> the open lock file that holds it, for this process's life


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def claim(port: int) -> bool:
    """Lock `port` for this process if no process holds it and nothing listens on it."""
    if port in _CLAIMED:
        return False
    PORT_LOCKS.mkdir(mode=0o777, exist_ok=True)
    fd = os.open(PORT_LOCKS / f"{port}.lock", os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    if not _bindable(port):
        os.close(fd)  # closing drops the lock
        return False
    _CLAIMED[port] = fd
    return True


def claim_ports(count: int, offset: int = 0) -> tuple[int, ...]:
    """`count` loopback ports held for this process; with `offset`, each port's partner
    `port + offset` is held too (a Redis Cluster node's bus listens 10,000 above it)."""
    span = LAST_PORT - offset - FIRST_PORT
    candidate = FIRST_PORT + (os.getpid() * 97) % span  # processes at once start apart
    ports: list[int] = []
    for _ in range(span):
        candidate = FIRST_PORT + (candidate + 1 - FIRST_PORT) % span
        if not claim(candidate):
            continue
        if offset and not claim(candidate + offset):
            os.close(_CLAIMED.pop(candidate))
            continue
        ports.append(candidate)
        if len(ports) == count:
            return tuple(ports)
    raise RuntimeError(f"fewer than {count} free ports in {FIRST_PORT}-{LAST_PORT}")


def free_port() -> int:
    """A loopback port nobody listens on, held for this process (see PORT_LOCKS)."""
    return claim_ports(1)[0]


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (signal 0 checks without sending anything). A child of
    ours that ended is reaped first: until then it is a zombie, which signal 0 still finds (a
    cluster stopped by the process that started it waited out the whole grace period)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # running, as another user
        return True
    return True


def stop_groups(pids: list[int], grace_s: float) -> bool:
    """SIGTERM to each process group still alive, SIGKILL to any left after `grace_s`; True
    when one was running."""
    running = [pid for pid in pids if alive(pid)]
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(alive(pid) for pid in running) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in running:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    return bool(running)


def wait_for(url: str, status: int = 200, timeout: float = 60.0) -> float:
    """Seconds until `url` answers `status`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own http:// URL
                answered = response.status
        except urllib.error.HTTPError as exc:
            answered = exc.code
        except OSError:
            answered = None
        if answered == status:
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} within {timeout}s")


@contextlib.contextmanager
def running(
    command: list[str],
    ready_path: str,
    env: dict | None = None,
    cwd=config.PROJECT_ROOT,
    timeout: float = 120,
) -> Iterator[str]:
    """Start a server process on a free port (`{port}` in `command`, and $PORT), wait until
    `ready_path` answers 200, yield its base URL, stop it. Its output is returned for checks."""
    port = free_port()
    process = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in command],
        env=config.child_environment({**(env or {}), "PORT": str(port), "HOST": "127.0.0.1"}),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    running.last_pid = process.pid  # for a caller measuring the server (its memory, say)
    output: list[str] = []
    drain = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    drain.start()  # a full pipe would block the server
    try:
        wait_for(f"{base}{ready_path}", timeout=timeout)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        drain.join(timeout=5)
        running.last_output = "".join(output)


def free_cluster_ports(count: int) -> tuple[int, ...]:
    """`count` free loopback ports whose cluster bus ports (+10,000) are held too."""
    return claim_ports(count, offset=10000)
