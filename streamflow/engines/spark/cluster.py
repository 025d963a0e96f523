"""A Spark standalone cluster from pyspark's own distribution (`bin/spark-class`): one master and
two workers of one core each, on 127.0.0.1 (SPARK_LOCAL_IP), every port and web UI, no kill links;
logs and work folders under `.streamflow/spark`.
`make spark-up` prints the master's `spark://` URL (what SPARK_MASTER takes) and its web UI;
starting twice is harmless; `make spark-down` stops them."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from streamflow import config, targets
from streamflow.engines.spark.session import JDBC_JAR, check_prerequisites, jvm_options
from streamflow.processes import alive, free_port, stop_groups

WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "2g"
MAX_PORT = 55535


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def root() -> Path:
    return targets.STATE_DIR / "spark"


@dataclass(frozen=True)
class Cluster:
    master_url: str
    web_ui: str

    def status(self) -> dict:
        """The master's JSON status: its workers, their cores, the applications it ran."""
        with urllib.request.urlopen(f"{self.web_ui}/json/", timeout=5) as response:  # noqa: S310
            return json.load(response)

    def alive_workers(self) -> int:
        return sum(1 for worker in self.status().get("workers", []) if worker.get("state") == "ALIVE")


def _port() -> int:
    for _ in range(100):
        port = free_port()
        if port <= MAX_PORT:
            return port
    raise RuntimeError(f"no free port <= {MAX_PORT}")


def _state_file() -> Path:
    return root() / "cluster.json"


def _start(name: str, main_class: str, *args: str) -> int:
    env = config.child_environment(
        {
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOG_DIR": str(root() / "logs"),
            # the workers' executors find the metastore's JDBC driver and run in UTC, like the driver;
            # no kill links in the web UIs
            "SPARK_DAEMON_JAVA_OPTS": f"{jvm_options()} -Dspark.ui.killEnabled=false",
            # every port, web UIs included (they bind 0.0.0.0 without it), on loopback by default
            "SPARK_LOCAL_IP": config.get(config.SPARK_LOCAL_IP),
            "SPARK_DIST_CLASSPATH": str(JDBC_JAR),
        }
    )
    with (root() / "logs" / f"{name}.log").open("ab") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), main_class, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process.pid


def running() -> Cluster | None:
    """The cluster `up()` started, when its master still runs."""
    try:
        state = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return None
    if not all(alive(pid) for pid in state["pids"]):
        return None
    return Cluster(state["master_url"], state["web_ui"])


def pids() -> list[int]:
    """The cluster's process ids, the master's first (each leads its process group)."""
    return json.loads(_state_file().read_text())["pids"]


def up(timeout: float = 90.0) -> Cluster:
    existing = running()
    if existing is not None:
        return existing
    down()  # whatever is left of an earlier cluster
    check_prerequisites()
    (root() / "logs").mkdir(parents=True, exist_ok=True)
    port, ui, host = _port(), _port(), config.get(config.SPARK_LOCAL_IP)
    master_url, web_ui = f"spark://{host}:{port}", f"http://{host}:{ui}"
    pids = [
        _start("master", "org.apache.spark.deploy.master.Master",
               "--host", host, "--port", str(port), "--webui-port", str(ui))
    ]  # fmt: skip
    for n in range(WORKERS):
        work = root() / f"worker-{n}"
        work.mkdir(parents=True, exist_ok=True)
        pids.append(
            _start(f"worker-{n}", "org.apache.spark.deploy.worker.Worker",
                   "--host", host, "--port", str(_port()), "--webui-port", str(_port()),
                   "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY,
                   "--work-dir", str(work), master_url)
        )  # fmt: skip
    _state_file().write_text(json.dumps({"master_url": master_url, "web_ui": web_ui, "pids": pids}))
    cluster = Cluster(master_url, web_ui)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cluster.alive_workers() == WORKERS:
                return cluster
        except OSError:
            pass
        time.sleep(0.5)
    down()
    raise RuntimeError(f"the Spark cluster did not come up within {timeout:.0f}s: see {root() / 'logs'}")


def down() -> bool:
    """Stop the cluster's processes; True when something was running."""
    try:
        pids = json.loads(_state_file().read_text())["pids"]
    except (OSError, ValueError):
        return False
    stopped = stop_groups(pids, grace_s=20)
    _state_file().unlink(missing_ok=True)
    return stopped
