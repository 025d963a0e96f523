"""Helpers to run the real API server process (uvicorn) and a private PostgreSQL for fault tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx

from scripts import settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, status: int = 200, timeout: float = 60.0) -> float:
    """Seconds until `url` answers `status`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == status:
                return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} within {timeout}s")


@contextlib.contextmanager
def running(
    command: list[str],
    ready_path: str,
    env: dict | None = None,
    cwd=settings.PROJECT_ROOT,
    timeout: float = 120,
) -> Iterator[str]:
    """Start a server process on a free port (`{port}` in `command`, and $PORT), wait until
    `ready_path` answers 200, yield its base URL, stop it. Its output is returned for checks."""
    port = free_port()
    process = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in command],
        env={**os.environ, **(env or {}), "PORT": str(port), "HOST": "127.0.0.1"},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
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


@contextlib.contextmanager
def api_server(database_url: str, workers: int = 1, extra_env: dict | None = None) -> Iterator[str]:
    """`python -m serving` against `database_url`; fails the test if it ever printed a traceback."""
    env = {"DATABASE_URL": database_url, "WORKERS": str(workers), **(extra_env or {})}
    with running([sys.executable, "-m", "serving"], "/ready", env) as base:
        yield base
    assert "Traceback" not in running.last_output, running.last_output
