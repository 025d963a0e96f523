"""The README's promise, literally: on a clean checkout `make demo` goes from nothing to served
features (a 200 for a known user, a 404 for an unknown one)."""

from __future__ import annotations

import os
import signal
import subprocess

import httpx
import pytest

from streamflow import targets
from tests import ISOLATED
from tests.support import free_port, wait_for

pytestmark = pytest.mark.slow


def test_make_demo_on_a_clean_checkout(tmp_path, seeds):
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "--quiet", str(targets.PROJECT_ROOT), str(checkout)], check=True)
    readme = (checkout / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    port, pg_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "PGHOST", "SERVING_CACHE_MB", *ISOLATED)  # the checkout's defaults
    }
    env |= {
        "SEEDS_DIR": str(seeds),
        "PORT": str(port),
        "STREAMFLOW_PG_PORT_EMBEDDED": str(pg_port),
    }
    demo = subprocess.Popen(
        ["make", "demo"], cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    output = ""
    try:
        known = _first_user(seeds)
        try:
            wait_for(f"http://127.0.0.1:{port}/features/{known}", 200, timeout=600)
        except TimeoutError:
            os.killpg(demo.pid, signal.SIGTERM)
            output = demo.communicate(timeout=30)[0]
            raise AssertionError(f"make demo never served; its last output:\n{output[-4000:]}") from None
        body = httpx.get(f"http://127.0.0.1:{port}/features/{known}").json()
        assert body["user_id"] == known and len(body["features"]) == 14
        assert httpx.get(f"http://127.0.0.1:{port}/features/0000-NOBODY").status_code == 404
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGTERM)
            output = demo.communicate(timeout=30)[0]
        subprocess.run(["make", "db-down"], cwd=checkout, env=env, capture_output=True)
    assert "curl http://127.0.0.1" in output, "the demo prints the commands to try"
    assert (checkout / "data" / "processed" / "training_df.csv").exists()


def _first_user(seeds) -> str:
    return (seeds / "month_000" / "users.csv").read_text().splitlines()[1].split(",")[0]
