"""The monthly job as a Prefect flow against the plain runner, on the same exports, in the same
run: `streamflow pipeline --checks` (the flow's steps, check-skew and the report included) and
`streamflow flow`, reporting to a Prefect server started here and with Prefect's temporary
server (no PREFECT_API_URL, what `make flow` does alone). Each in its own process, on a fresh
database (a first run), then again on that database (nothing new: the monthly run with no new
month), in alternating rounds; medians. The overhead target: <= 10 % or <= 5 s."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.pipeline_bench import measured
from streamflow import config
from streamflow.processes import free_port

ROUNDS = 3
MODES = {
    "plain: streamflow pipeline --checks": ["pipeline", "--checks"],
    "flow, Prefect server": ["flow"],
    "flow, temporary server": ["flow"],
}


def _orchestrator(action: str, env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "streamflow", "orchestrator", action],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def run(seeds: Path, workdir: Path, fresh_database: Callable[[str], object]) -> pd.DataFrame:
    server_env = config.child_environment(
        {"STREAMFLOW_STATE_DIR": str(workdir / "prefect-state"), "PREFECT_PORT": str(free_port())}
    )
    _orchestrator("up", server_env)
    api_url = _orchestrator("url", server_env).strip()
    times: dict[tuple[str, str], list[float]] = {}
    try:
        for round_ in range(ROUNDS):
            for mode, args in MODES.items():
                fresh_database("flow")
                env = {
                    "SEEDS_DIR": str(seeds),
                    "PREFECT_API_URL": api_url if "Prefect server" in mode else "",
                }
                command = [sys.executable, "-m", "streamflow", *args]
                for run_kind in ("first run", "no new month"):
                    step, _ = measured(f"{mode}, {run_kind}", command, env)
                    times.setdefault((mode, run_kind), []).append(step.seconds)
                    print(f"  round {round_ + 1}: {mode}, {run_kind}: {step.seconds:.1f}s", flush=True)
    finally:
        _orchestrator("down", server_env)
    rows = []
    for run_kind in ("first run", "no new month"):
        plain = statistics.median(times[(next(iter(MODES)), run_kind)])
        for mode in MODES:
            median = statistics.median(times[(mode, run_kind)])
            rows.append(
                {
                    "run": run_kind,
                    "runner": mode,
                    "median s": round(median, 1),
                    "overhead s": round(median - plain, 1),
                    "overhead %": round(100 * (median - plain) / plain, 1),
                }
            )
    table = pd.DataFrame(rows)
    print("\n" + table.to_string(index=False), flush=True)
    return table
