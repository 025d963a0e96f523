"""Server processes on free loopback ports, for the tests and the benchmarks: start one, wait
until it answers, stop it, keep what it printed."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

from streamflow import config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (signal 0 checks without sending anything)."""
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


_HANDED_OUT: set[int] = set()  # ports given out but perhaps not bound yet


def free_cluster_ports(count: int) -> tuple[int, ...]:
    """`count` free loopback ports whose cluster bus ports (+10,000) are free too, all <= 55535."""
    ports: list[int] = []
    candidate = 20000 + (os.getpid() * 37) % 20000  # processes at once start apart
    while len(ports) < count:
        candidate += 1
        if candidate > 45535:
            candidate = 20000
        if candidate in _HANDED_OUT or candidate - 10000 in _HANDED_OUT or candidate + 10000 in _HANDED_OUT:
            continue
        try:
            for port in (candidate, candidate + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        ports.append(candidate)
        _HANDED_OUT.add(candidate)
    return tuple(ports)
