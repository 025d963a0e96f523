"""The pipeline at scale: generate, ingest (vs PostgreSQL's own COPY), dbt build, apply,
materialize, monitor, training set (vs Feast's naive DataFrame call), each step's time and peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import psycopg

from streamflow import config, targets
from streamflow.exports import TABLES

NAIVE_LIMIT = 10_000  # Feast's DataFrame path grows with the square of the rows: 35k users took 348 s


@dataclass
class Step:
    name: str
    seconds: float
    peak_mb: float
    note: str = ""


def measured(name: str, command: list[str], env: dict | None = None) -> tuple[Step, str]:
    """Run a step in its own process; wall time and the peak RSS of it and its children."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=config.child_environment({**(env or {}), config.LOG_FORMAT: "json"}),
        cwd=targets.PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                rss = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(recursive=True))
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.communicate()[0]
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{name} failed:\n{output[-3000:]}")
    return Step(name, time.perf_counter() - started, peak / 2**20), output


def records(output: str, event: str) -> list[dict]:
    """The JSON records of one kind a step wrote (LOG_FORMAT=json): figures, not scraped text."""
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


def postgres_copy_seconds(target: targets.PgTarget, seeds: Path) -> float:
    """The floor for ingest: plain COPY of the same files into untyped-checked tables, no validation."""
    started = time.perf_counter()
    with psycopg.connect(target.url) as conn:
        conn.execute("create schema if not exists bench")
        for month in sorted(p for p in seeds.iterdir() if p.name.startswith("month_")):
            for table in TABLES:
                name = f"bench.copy_{table.name}"
                cols = ", ".join(f"{c.name} {c.pg_type}" for c in table.columns)
                conn.execute(f"drop table if exists {name}")
                conn.execute(f"create table {name} ({cols})")
                with (
                    conn.cursor().copy(f"copy {name} from stdin (format csv, header true)") as copy,
                    (month / table.file_name).open("rb") as fh,
                ):
                    while block := fh.read(1 << 20):
                        copy.write(block)
        conn.execute("drop schema bench cascade")
    return time.perf_counter() - started


def run_size(
    users: int, workdir: Path, target: targets.PgTarget, real_seeds: Path | None = None
) -> list[Step]:
    python = sys.executable
    env = {"DATABASE_URL": target.url}
    steps = []
    if real_seeds is not None:
        seeds = real_seeds
    else:
        seeds = workdir / f"users_{users}"
        step, _ = measured(
            "generate",
            [
                python,
                "-m",
                "streamflow",
                "generate-data",
                "--users",
                str(users),
                "--months",
                "2",
                "--out",
                str(seeds),
            ],
        )
        steps.append(step)
    step, out = measured(
        "ingest (validate + COPY)", [python, "-m", "streamflow", "ingest", "--seeds-dir", str(seeds)], env
    )
    copy_s = postgres_copy_seconds(target, seeds)
    inside = sum(r["seconds"] for r in records(out, "month_loaded"))  # without interpreter start
    step.note = (
        f"plain COPY {copy_s:.1f}s; ratio {step.seconds / copy_s:.1f}x, "
        f"{inside / copy_s:.1f}x on the {inside:.1f}s inside"
    )
    steps.append(step)
    step, _ = measured("dbt build", [python, "-m", "streamflow", "dbt", "build", "--quiet"], env)
    steps.append(step)
    step, _ = measured("feast apply", [python, "-m", "streamflow", "apply"], env)
    steps.append(step)
    step, out = measured("materialize (2 months)", [python, "-m", "streamflow", "materialize"], env)
    months = records(out, "month_materialized")
    user_rows, work = sum(r["users"] for r in months), sum(r["seconds"] for r in months)
    with psycopg.connect(target.url) as conn:
        features = conn.execute(
            "select count(*) from information_schema.columns where table_schema = 'feast_online' "
            "and column_name <> 'user_id' and column_name !~ '__(event|created)_ts$'"
        ).fetchone()[0]
    step.note = (
        f"{user_rows:,} user rows x {features} features: "
        f"{user_rows * features / work:,.0f} feature values/s (SQL work {work:.1f}s)"
    )
    steps.append(step)
    step, out = measured(
        "monitor (2 months, Feast metrics + drift)", [python, "-m", "streamflow", "monitor"], env
    )
    [monitored] = records(out, "monitored")
    step.note = f"{monitored['seconds']:.1f}s inside; {monitored['drifts']} features' drift"
    steps.append(step)
    out_csv = workdir / f"training_{users}.csv"
    step, out = measured(
        "training set (1 as_of, all users)",
        [python, "-m", "streamflow", "training-set", "--out", str(out_csv)],
        env,
    )
    [written] = records(out, "training_set_written")
    inner = written["seconds"]
    step.note = f"{written['rows']:,} rows, {inner:.1f}s inside"
    if users <= NAIVE_LIMIT:
        naive = naive_training_seconds(target)
        step.note += f"; Feast naive DataFrame call {naive:.1f}s ({naive / inner:.0f}x slower)"
    else:
        step.note += "; naive call not run (quadratic: 35k users took 348 s)"
    steps.append(step)
    return steps


def naive_training_seconds(target: targets.PgTarget) -> float:
    """What the course does (bench/naive_training.py), in a process of its own on `target`."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.naive_training"],
        env=config.child_environment({config.DATABASE_URL: target.url}),
        capture_output=True,
        text=True,
        check=True,
        cwd=targets.PROJECT_ROOT,
    )
    return float(out.stdout.strip().splitlines()[-1])


def table(steps_by_size: dict[str, list[Step]]) -> pd.DataFrame:
    rows = [
        {
            "users x 2 months": size,
            "step": s.name,
            "seconds": round(s.seconds, 1),
            "peak MB": round(s.peak_mb),
            "notes": s.note,
        }
        for size, steps in steps_by_size.items()
        for s in steps
    ]
    return pd.DataFrame(rows)
