"""The replay runs beside the API at the lowest CPU priority (nice 19): its own process and, on
this host, the PostgreSQL backends its queries run in (streamflow/background.py); the API's
sessions, and any process that did not ask, keep theirs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamflow import database
from streamflow.background import LOCAL_HOSTS

YIELDING = """
import os
from streamflow import background, database, targets
background.yield_the_cpu()
with database.connect(targets.admin_target().with_database("postgres")) as conn:
    print(os.getpriority(os.PRIO_PROCESS, 0), os.getpriority(os.PRIO_PROCESS, conn.info.backend_pid))
"""


@pytest.fixture
def local_server(server):
    if not (server.host.startswith("/") or server.host in LOCAL_HOSTS):
        pytest.skip(f"the server at {server.safe_url} is not on this host: its backends are not ours")
    return server


def test_a_yielding_process_and_its_backends_run_at_nice_19(local_server):
    done = subprocess.run([sys.executable, "-c", YIELDING], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    own, backend = map(int, done.stdout.split())
    assert (own, backend) == (19, 19)


def test_a_process_that_does_not_yield_leaves_its_backends_alone(local_server):
    with database.connect(local_server.with_database("postgres")) as conn:
        backend = conn.info.backend_pid
        status = Path(f"/proc/{backend}/status").read_text()
        postmaster = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        assert os.getpriority(os.PRIO_PROCESS, backend) == os.getpriority(os.PRIO_PROCESS, postmaster)
