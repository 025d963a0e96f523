"""The process helpers the project's servers are stopped with (streamflow/processes.py)."""

from __future__ import annotations

import subprocess
import sys
import time

from streamflow.processes import alive, stop_groups


def test_a_child_that_ended_is_not_alive_before_anyone_waits_for_it():
    """Until it is reaped an ended child is a zombie, which signal 0 still finds."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child.pid)


def test_a_stopped_child_group_is_gone_within_the_grace_period():
    child = subprocess.Popen(["sleep", "600"], start_new_session=True)
    started = time.monotonic()
    assert stop_groups([child.pid], grace_s=60)
    assert not alive(child.pid)
    assert time.monotonic() - started < 30, "it ended on SIGTERM: nothing to wait out"
