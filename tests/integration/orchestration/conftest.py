"""The orchestration tests' fixtures: a Prefect server of the module's own, the environment of a
run; and the browser fixtures of tests/browser/, for the Prefect UI's page of a flow run."""

import os

import pytest

from tests.browser.chromium import browser, watched  # noqa: F401 - fixtures, by name
from tests.integration.orchestration import streamflow_run
from tests.support import free_port

RETRY = {"FLOW_RETRIES": "3", "FLOW_RETRY_DELAY": "2"}  # 2, 4, 8 s: a 14 s window


@pytest.fixture(scope="module")
def prefect(tmp_path_factory):
    """`streamflow orchestrator up` on a free port, its state in a folder of the module's own."""
    env = {
        **os.environ,
        "STREAMFLOW_STATE_DIR": str(tmp_path_factory.mktemp("state")),
        "PREFECT_PORT": str(free_port()),
    }
    up = streamflow_run(["orchestrator", "up"], env)
    assert up.returncode == 0, up.stderr
    url = streamflow_run(["orchestrator", "url"], env).stdout.strip()
    assert url.endswith("/api")
    yield url
    assert streamflow_run(["orchestrator", "down"], env).returncode == 0


@pytest.fixture(scope="module")
def job(private_pg, prefect, seeds):
    """The environment of a run: the module's database, the server, the exports, quick retries."""
    return {**os.environ, "PREFECT_API_URL": prefect, "SEEDS_DIR": str(seeds), **RETRY}
