"""The suite's isolation, set before any test module (or the library) is imported: each test
process (pytest, or each pytest-xdist worker) gets a private folder for everything the project
would keep in the checkout (servers' state, secrets, the embedded PostgreSQL, dbt's artifacts,
the job's files) and its own claimed port for the embedded server. Two suites on one machine, or
two workers of one suite, then share no folder and no port (streamflow/processes.py claims ports
machine-wide). The folder is removed when the process exits."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from streamflow import processes

ISOLATED = (
    "STREAMFLOW_STATE_DIR",
    "STREAMFLOW_PG_PORT_EMBEDDED",
    "DATA_DIR",
    "DBT_TARGET_PATH",
    "DBT_LOG_PATH",
    "PYSPARK_SUBMIT_ARGS",
)


def _isolate() -> None:
    root = tempfile.mkdtemp(prefix=f"streamflow-tests-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    os.environ.update(
        {
            "STREAMFLOW_STATE_DIR": os.path.join(root, "state"),
            "STREAMFLOW_PG_PORT_EMBEDDED": str(processes.free_port()),
            "DATA_DIR": os.path.join(root, "data"),
            "DBT_TARGET_PATH": os.path.join(root, "dbt-target"),
            "DBT_LOG_PATH": os.path.join(root, "dbt-logs"),
            # the Spark driver's web UI would take 4040 and up, outside the port claims: off,
            # but where a test asks for it on a claimed port (the worker-kill tests)
            "PYSPARK_SUBMIT_ARGS": "--conf spark.ui.enabled=false pyspark-shell",
        }
    )


_isolate()
