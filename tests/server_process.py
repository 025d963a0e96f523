"""Helpers to run the real API server process (uvicorn) and a private PostgreSQL for fault tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
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
def api_server(database_url: str, workers: int = 1, extra_env: dict | None = None) -> Iterator[str]:
    """Start `python -m serving` on a free port against `database_url`; yields its base URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "PORT": str(port), "HOST": "127.0.0.1",
           "WORKERS": str(workers), **(extra_env or {})}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "serving"], env=env, cwd=settings.PROJECT_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/ready")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        output = process.stdout.read() if process.stdout else ""
        assert "Traceback" not in output, output
