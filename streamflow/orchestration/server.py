"""A Prefect server on 127.0.0.1:PREFECT_PORT (`make orchestrator-up` / `-down`): its API and UI,
its SQLite database and log under .streamflow/prefect. Starting twice is harmless; the state file
says which process and port are ours, so `down` never stops someone else's server."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from streamflow import config
from streamflow.orchestration import prefect_environment, prefect_home
from streamflow.processes import alive, free_port, stop_groups, wait_for


@dataclass(frozen=True)
class Server:
    pid: int
    port: int

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui}/api"


class PortInUse(RuntimeError):
    """PREFECT_PORT is taken by a process that is not our server."""


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is free
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _state_file() -> Path:
    return prefect_home() / "server.json"


def log_file() -> Path:
    return prefect_home() / "server.log"


def running() -> Server | None:
    try:
        state = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return None
    return Server(state["pid"], state["port"]) if alive(state["pid"]) else None


def _spawn(port: int, log_path: Path, *options: str) -> subprocess.Popen:
    """`prefect server start` on 127.0.0.1:port, in a process group of its own, its output in `log_path`."""
    prefect_home().mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [*command, *options],
            # the UI's pages call the API at this address (Prefect's default assumes port 4200)
            env=config.child_environment(
                {
                    **prefect_environment(),
                    "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
                    "PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
                }
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopping it stops its children too
        )


def _stop_child(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def up(timeout: float = 120.0) -> Server:
    existing = running()
    if existing is not None:
        return existing
    port = config.get(config.PREFECT_PORT)
    if not port_free(port):
        raise PortInUse(f"127.0.0.1:{port} is in use by another program: set PREFECT_PORT to a free port")
    process = _spawn(port, log_file())
    server = Server(process.pid, port)
    _state_file().write_text(json.dumps({"pid": server.pid, "port": port}))
    try:
        wait_for(f"{server.api_url}/health", timeout=timeout)
    except TimeoutError:
        down()
        tail = log_file().read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(
            f"the Prefect server did not answer within {timeout:.0f}s: {' | '.join(tail)}"
        ) from None
    return server


def down() -> bool:
    """Stop our server; True when it was running."""
    found = running()
    _state_file().unlink(missing_ok=True)
    if found is None:
        return False
    stop_groups([found.pid], grace_s=20)
    return True


def temporary() -> str:
    """A Prefect server for this process's run (no UI, no scheduler), started at once so it boots
    while the pipeline's modules load; PREFECT_API_URL points at it (set before Prefect is imported:
    Prefect reads its settings then); `ready` waits for it. It is stopped when the process exits,
    after Prefect has sent its last logs and events (exit handlers run last-registered first, and
    Prefect registers its own once the run has started)."""
    port = free_port()
    process = _spawn(
        port, prefect_home() / "temporary-server.log", "--no-ui", "--no-scheduler", "--no-late-runs"
    )
    atexit.register(_stop_child, process)
    url = Server(process.pid, port).api_url
    config.export({"PREFECT_API_URL": url})
    return url


def ready(api_url: str, timeout: float = 120.0) -> None:
    try:
        wait_for(f"{api_url}/health", timeout=timeout)
    except TimeoutError:
        raise RuntimeError(f"the temporary Prefect server did not answer within {timeout:.0f}s") from None
