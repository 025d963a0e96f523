"""The replay and the collector run beside the API at the lowest CPU priority: their own process
and, on this host, the PostgreSQL backends their queries run in (streamflow/background.py); the
API's sessions, and any process that did not ask, keep theirs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streamflow import database
from streamflow.background import LOCAL_HOSTS

YIELDING = """
import os
from streamflow import background, database, targets
background.yield_the_cpu()
with database.connect(targets.admin_target().with_database("postgres")) as conn:
    print(os.sched_getscheduler(0), os.sched_getscheduler(conn.info.backend_pid))
"""


@pytest.fixture
def local_server(server):
    if not (server.host.startswith("/") or server.host in LOCAL_HOSTS):
        pytest.skip(f"the server at {server.safe_url} is not on this host: its backends are not ours")
    return server


def test_a_yielding_process_and_its_backends_run_at_sched_idle(local_server):
    done = subprocess.run([sys.executable, "-c", YIELDING], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    own, backend = map(int, done.stdout.split())
    assert (own, backend) == (os.SCHED_IDLE, os.SCHED_IDLE)


def test_a_process_that_does_not_yield_leaves_its_backends_alone(local_server):
    with database.connect(local_server.with_database("postgres")) as conn:
        assert os.sched_getscheduler(conn.info.backend_pid) == os.SCHED_OTHER
