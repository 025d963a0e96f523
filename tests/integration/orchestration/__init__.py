"""The orchestration tests (the flow, its server, its deployments) and what they share."""

import subprocess
import sys


def streamflow_run(args, env, **kwargs) -> subprocess.CompletedProcess:
    """`streamflow` in a process of its own with exactly `env`; the test reads its exit code."""
    return subprocess.run(
        [sys.executable, "-m", "streamflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        **kwargs,
    )
